/**
 * A tab whose hub session ended (the student logged out, perhaps in another tab): its
 * server refuses every request. Items say so and offer to sign in again, rather than
 * showing the bare "Forbidden" of each refusal.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

import { ApiError } from './api';

/** A refusal of a GET this server answers anyone who may open it (sync state, preview
 * settings): no valid sign-in came with the request. */
export function isSignedOut(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 401 || error.status === 403);
}

/** The hub's login page, coming back to this very page; null outside JupyterHub. */
export function signInUrl(): string | null {
  const prefix = PageConfig.getOption('hubPrefix');
  if (!prefix) {
    return null;
  }
  const host = PageConfig.getOption('hubHost'); // "" when the hub shares this origin
  const { href, pathname, search, hash } = window.location;
  // The hub accepts a next URL on another host only when it is one of its subdomains.
  const here = host ? href : pathname + search + hash;
  return `${host}${URLExt.join(prefix, 'login')}?next=${encodeURIComponent(here)}`;
}

export const SIGNED_OUT_TEXT =
  'Your session ended (you logged out, perhaps in another tab): this tab cannot save ' +
  'until you sign in again.';

/** The text, then a "Sign in again" link styled as a button; for a message element. */
export function signedOutMessage(node: HTMLElement, text = SIGNED_OUT_TEXT): void {
  node.textContent = text;
  const url = signInUrl();
  if (url) {
    const link = document.createElement('a');
    link.className = 'jp-codepilot-Button jp-codepilot-SignIn';
    link.href = url;
    link.textContent = 'Sign in again';
    node.append(document.createElement('br'), link);
  }
}
