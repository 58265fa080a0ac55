/**
 * Requests to the Code Pilot REST API of the user's own jupyter-server.
 *
 * ServerConnection.makeRequest adds the token or XSRF header JupyterLab uses for every
 * other API call, so these requests are authenticated the same way.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const SYNC_PATH = 'codepilot/api/sync';
export const PREVIEW_PATH = 'codepilot/api/preview';
export const APP_PATH = 'codepilot/api/app';
export const LANGUAGE_SERVERS_PATH = 'codepilot/api/language-servers';

/** A reply that was not 2xx, with the server's own message when it gave one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export async function requestJSON<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    const message =
      body && typeof body === 'object' && typeof (body as any).message === 'string'
        ? (body as any).message
        : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  if (body === null || typeof body !== 'object') {
    throw new ApiError(response.status, `${path}: the server did not answer with JSON`);
  }
  return body as T;
}
