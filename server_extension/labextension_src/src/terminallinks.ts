/**
 * Links printed in a terminal to the app on this server's port (`http://localhost:3000/x`,
 * as dev servers print them) open the preview at that path; other links open as before.
 *
 * JupyterLab's terminals find links with xterm.js's WebLinksAddon, whose default handler
 * opens an empty window (`window.open()`, no arguments) and then sets its
 * `location.href`. JupyterLab gives no access to the xterm instance (its field is
 * private), so a link provider of our own cannot be registered, and it would rank after
 * the addon's anyway. Instead `window.open` is wrapped for that one call shape, made while
 * a click in a terminal is being handled: the caller gets a stand-in window whose
 * `location.href` receives the link, still inside the click, so no popup blocker objects.
 */
import { localAppPath, openPreview } from './previewlink';

type Open = typeof window.open;

/** What the addon touches of the window it opened: `opener` and `location.href`. */
function linkWindow(open: Open, appPort: () => number | null): Window {
  const location = {
    set href(link: string) {
      const port = appPort();
      const path = port === null ? null : localAppPath(link, port);
      if (path !== null) {
        openPreview(path);
      } else {
        open.call(window, link, '_blank', 'noopener');
      }
    }
  };
  return { opener: null, location } as unknown as Window;
}

/**
 * Routes terminal links; returns what undoes it. `inTerminal`: whether a click's target is in a
 * terminal; `appPort`: the app's port, null while not yet known.
 */
export function routeTerminalLinks(
  inTerminal: (target: Node) => boolean,
  appPort: () => number | null
): () => void {
  const original = window.open;
  const wrapper = function (this: Window, ...args: Parameters<Open>): ReturnType<Open> {
    // window.event: the event being dispatched, here the terminal's mouseup.
    const event = window.event;
    if (
      args.length === 0 &&
      event instanceof MouseEvent &&
      event.target instanceof Node &&
      inTerminal(event.target)
    ) {
      return linkWindow(original, appPort);
    }
    return original.apply(this, args);
  };
  window.open = wrapper;
  return () => {
    if (window.open === wrapper) {
      window.open = original;
    }
  };
}
