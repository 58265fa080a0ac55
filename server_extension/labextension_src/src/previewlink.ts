/**
 * Where the preview opens: `<server>/preview/<path>`, which the server redirects to the
 * preview's own origin, in a new tab that gets no handle on the IDE (the app is the
 * student's own code).
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

/** How a terminal names the app on this server's port; the browser's own localhost is
 * the student's machine, where nothing listens. */
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '0.0.0.0', '[::1]']);

export function previewAddress(path = ''): string {
  return URLExt.join(PageConfig.getBaseUrl(), 'preview/') + path.replace(/^\/+/, '');
}

export function openPreview(path = ''): void {
  window.open(previewAddress(path), '_blank', 'noopener');
}

/** The path, query and fragment that `link` asks of the app on `port`; null for a link
 * anywhere else (another host, another port, not http). */
export function localAppPath(link: string, port: number): string | null {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' || !LOCAL_HOSTS.has(url.hostname)) {
    return null;
  }
  if ((url.port === '' ? 80 : Number(url.port)) !== port) {
    return null;
  }
  return url.pathname + url.search + url.hash;
}
