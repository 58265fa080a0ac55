/**
 * Links printed in a terminal to the app on this server's port (`http://localhost:3000/x`,
 * as dev servers print them) open the preview at that path, and links to another port the
 * server listens on (`http://localhost:5173/`, Vite's) open that port's own preview; other
 * links open as before.
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

/** Where links to this server's ports open, as the server last said. */
export interface ILinkTargets {
  /** The ports the main preview answers for (`PORT`, and the port it follows). */
  main: number[];
  /** The server's other listening ports, each with its own preview's URL. */
  others: { port: number; url: string }[];
}

/** The address a terminal's `link` opens at; null for a link to no port of this server. */
function previewOfLink(link: string, targets: ILinkTargets): (() => void) | null {
  for (const port of targets.main) {
    const path = localAppPath(link, port);
    if (path !== null) {
      return () => openPreview(path);
    }
  }
  for (const other of targets.others) {
    const path = localAppPath(link, other.port);
    if (path !== null) {
      const url = other.url.replace(/\/+$/, '') + path;
      return () => window.open(url, '_blank', 'noopener');
    }
  }
  return null;
}

/** What the addon touches of the window it opened: `opener` and `location.href`. */
function linkWindow(open: Open, targets: () => ILinkTargets): Window {
  const location = {
    set href(link: string) {
      const preview = previewOfLink(link, targets());
      if (preview !== null) {
        preview();
      } else {
        open.call(window, link, '_blank', 'noopener');
      }
    }
  };
  return { opener: null, location } as unknown as Window;
}

/**
 * Routes terminal links; returns what undoes it. `inTerminal`: whether a click's target is in a
 * terminal; `targets`: this server's ports, none while not yet known.
 */
export function routeTerminalLinks(
  inTerminal: (target: Node) => boolean,
  targets: () => ILinkTargets
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
      return linkWindow(original, targets);
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
