/**
 * Holds this tab's requests to its server once that server has stopped.
 *
 * When a project is stopped under an open tab, the hub answers the tab's requests (424,
 * or a redirect to its own pages), or, when the student's default project runs, the
 * proxy hands them to that other server, which answers 404 pages. JupyterLab then retries
 * without end: the file browser falls back to its root on a 404 and asks again at once,
 * hundreds of requests a second. The gate sits in the fetch and WebSocket of the settings
 * every JupyterLab service shares: on an answer that looks like "not this server", or a
 * socket that closes, it asks the server itself; while it asks, and for good once it is
 * stopped, requests wait instead of failing, so no poller retries, no error dialog opens
 * and no request leaves.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

export type Verdict = 'running' | 'stopped' | 'unreachable';

type Fetch = (input: RequestInfo, init?: RequestInit) => Promise<Response>;

/** What a request waits on once the server has stopped: nothing settles it. */
const FOREVER = new Promise<never>(() => undefined);

/** Answers to `<base>/api` that mean "no such server here": another server's 404, the
 * hub's 424 (503 before JupyterHub 2, and the proxy's when the server's process died). */
const GONE = new Set([404, 424, 503]);

/** Whether an answer may come from something other than this server. */
export function looksStopped(response: Response, baseUrl: string): boolean {
  if (response.status === 424 || response.status === 503) {
    return true;
  }
  if (response.redirected && !response.url.startsWith(baseUrl)) {
    return true; // to the hub's "not running" or login page
  }
  // This server's API says 404 in JSON; a page is another server's (or the hub's).
  const type = response.headers.get('Content-Type') ?? '';
  return response.status === 404 && !type.includes('json');
}

/** Asks `<base>/api`, which every running jupyter-server answers with its version, to
 * anyone (no sign-in, so never a redirect). For a stopped server the hub redirects it to
 * `/hub/user/...`: on the server's own host too (subdomains), where following it would
 * cross to the hub's origin and fail as a network error, so the redirect itself is the
 * answer. */
export async function checkServer(fetch: Fetch, baseUrl: string): Promise<Verdict> {
  let response: Response;
  try {
    response = await fetch(`${URLExt.join(baseUrl, 'api')}?${Date.now()}`, {
      cache: 'no-store',
      credentials: 'same-origin',
      redirect: 'manual'
    });
  } catch {
    return 'unreachable'; // the network or the hub: JupyterLab's own handling applies
  }
  if (response.type === 'opaqueredirect') {
    return 'stopped';
  }
  if (!response.ok) {
    return GONE.has(response.status) ? 'stopped' : 'unreachable';
  }
  try {
    const body = await response.json();
    return typeof body?.version === 'string' ? 'running' : 'stopped';
  } catch {
    return 'stopped';
  }
}

export class ServerGate {
  private readonly realFetch: Fetch;
  private checking: Promise<Verdict> | null = null;
  private _isStopped = false;
  private readonly _stopped = new Signal<this, void>(this);

  constructor(private readonly settings: ServerConnection.ISettings) {
    const original = settings.fetch;
    this.realFetch = (input, init) => original.call(null, input, init);
    // Read by ServerConnection at each request, so every service goes through the gate.
    const writable = settings as { fetch: Fetch; WebSocket: typeof WebSocket };
    writable.fetch = (input, init) => this.fetch(input, init);
    writable.WebSocket = gatedWebSocket(
      settings.WebSocket,
      () => this._isStopped,
      () => void this.suspect()
    );
    // Real-time collaboration's document and awareness sockets (y-websocket) are opened
    // with the page's own WebSocket, not the services': those to this server wait too.
    gatePageWebSockets(settings.wsUrl, () => this._isStopped);
  }

  /** Emitted once, when the server is found stopped. */
  get stopped(): ISignal<this, void> {
    return this._stopped;
  }

  /** Ask the server now; requests wait for the answer. Resolves to the verdict. */
  suspect(): Promise<Verdict> {
    if (this._isStopped) {
      return Promise.resolve('stopped'); // for good: only a new page load starts over
    }
    this.checking ??= checkServer(this.realFetch, this.settings.baseUrl).then(verdict => {
      this.checking = null;
      if (verdict === 'stopped' && !this._isStopped) {
        this._isStopped = true;
        this._stopped.emit();
      }
      return verdict;
    });
    return this.checking;
  }

  private async fetch(input: RequestInfo, init?: RequestInit): Promise<Response> {
    await this.open();
    const response = await this.realFetch(input, init);
    if (looksStopped(response, this.settings.baseUrl)) {
      await this.suspect();
      await this.open();
    }
    return response;
  }

  /** Resolves when requests may go (now, or after a check); never once stopped. */
  private async open(): Promise<void> {
    if (this.checking) {
      await this.checking;
    }
    if (this._isStopped) {
      await FOREVER;
    }
  }
}

/**
 * The services' WebSocket: a socket that closes makes the gate ask the server (a stopping
 * server ends its sockets before any poll asks it again); once it has stopped, a new socket
 * (a terminal's or kernel's reconnection) waits as requests do, and never connects.
 */
function gatedWebSocket(
  Base: typeof WebSocket,
  isStopped: () => boolean,
  onClose: () => void
): typeof WebSocket {
  function GatedWebSocket(url: string | URL, protocols?: string | string[]): WebSocket {
    if (isStopped()) {
      return new HeldSocket(url) as unknown as WebSocket;
    }
    const socket = new Base(url, protocols);
    socket.addEventListener('close', onClose);
    return socket;
  }
  // `new GatedWebSocket(...)` returns the object above; the constants are read off the class.
  return Object.assign(GatedWebSocket, {
    CONNECTING: 0,
    OPEN: 1,
    CLOSING: 2,
    CLOSED: 3
  }) as unknown as typeof WebSocket;
}

/** Makes the page's `WebSocket` hold every new socket to `wsUrl` once the server stopped;
 * sockets elsewhere, and those opened before, are the browser's own. */
function gatePageWebSockets(wsUrl: string, isStopped: () => boolean): void {
  const PageWebSocket = window.WebSocket;
  function PageGatedWebSocket(url: string | URL, protocols?: string | string[]): WebSocket {
    if (isStopped() && String(url).startsWith(wsUrl)) {
      return new HeldSocket(url) as unknown as WebSocket;
    }
    return new PageWebSocket(url, protocols);
  }
  PageGatedWebSocket.prototype = PageWebSocket.prototype; // `instanceof WebSocket` holds
  window.WebSocket = Object.assign(PageGatedWebSocket, {
    CONNECTING: 0,
    OPEN: 1,
    CLOSING: 2,
    CLOSED: 3
  }) as unknown as typeof WebSocket;
}

/** A socket that stays "connecting": no handshake, no event, no retry by its owner. */
class HeldSocket extends EventTarget {
  readonly readyState = 0;
  readonly bufferedAmount = 0;
  readonly extensions = '';
  readonly protocol = '';
  readonly url: string;
  binaryType: BinaryType = 'blob';
  onopen: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  onmessage: unknown = null;

  constructor(url: string | URL) {
    super();
    this.url = String(url);
  }

  send(): void {
    // Nothing is sent to a stopped server.
  }

  close(): void {
    // Never opened: nothing to close.
  }
}
