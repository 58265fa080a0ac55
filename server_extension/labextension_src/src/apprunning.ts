/**
 * "Your app is running on port 3000", once per run of the student's app: when something
 * starts listening on the app's port, and again only after it stopped and started again.
 *
 * The server answers whether the port listens (`GET codepilot/api/app`, a loopback
 * connect inside the server's own network), which port the preview shows (`PORT`, else
 * the port the run's app listens on: Vite's 5173) and the server's other listening ports,
 * each a preview of its own; this tab asks every few seconds while it is visible.
 */
import { Notification } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { APP_PATH, requestJSON } from './api';
import { safePreviewUrl } from './sharelevels';
import { ILinkTargets } from './terminallinks';

/** The reply of `GET codepilot/api/app` (server_extension/appport.py). */
export interface IAppStatus {
  port: number;
  listening: boolean;
  /** The port the main preview shows; null when nothing listens. */
  app_port: number | null;
  /** The server's other listening ports, each at `<port>--<label>` of the preview domain. */
  ports: IListeningPort[];
}

/** One listening port of the server and the process that holds it. */
export interface IListeningPort {
  port: number;
  process: string;
  /** Held by a process of the run (Run button). */
  run: boolean;
  url: string;
}

const POLL_MS = 3000;
const POLL_MAX_MS = 30000;
/** A run has ended after this many answers in a row without a listener: a restart by a
 * file watcher (nodemon, uvicorn --reload) leaves the port closed for one answer at most. */
const STOPPED_ANSWERS = 2;
/** Long enough to be seen by someone reading a terminal; the notification centre keeps it. */
const NOTICE_MS = 20000;

/**
 * Tells the student their app answers on `port`, with an "Open preview" action; returns
 * the notification's id.
 */
export function tellAppRunning(port: number, open: () => void): string {
  return Notification.emit(`Your app is running on port ${port}`, 'success', {
    autoClose: NOTICE_MS,
    actions: [
      {
        label: 'Open preview',
        caption: 'Open your app in a new tab',
        displayType: 'accent',
        callback: () => open()
      }
    ]
  });
}

/** The app's port and whether it listens, as the server last said; `changed` on news. */
export class AppWatcher {
  status: IAppStatus | null = null;
  private readonly _changed = new Signal<this, IAppStatus>(this);
  private readonly poll: Poll;

  /** `settings`: the app's, whose requests wait while the server is stopped. */
  constructor(private readonly settings: ServerConnection.ISettings) {
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: POLL_MS, backoff: true, max: POLL_MAX_MS },
      standby: 'when-hidden',
      name: '@codepilot/lab:app'
    });
  }

  get changed(): ISignal<this, IAppStatus> {
    return this._changed;
  }

  /** Asks the server now (a panel that opens shows the latest ports). */
  async refreshNow(): Promise<void> {
    await this.poll.refresh();
  }

  dispose(): void {
    this.poll.dispose();
  }

  private async refresh(): Promise<void> {
    // A failure (signed out, server gone) rejects: Poll backs off, nothing is said.
    const status = await requestJSON<IAppStatus>(APP_PATH, {}, this.settings);
    this.status = status;
    this._changed.emit(status);
  }
}

/** Where terminal links to this server's ports open (`terminallinks.ts`). */
export function linkTargets(status: IAppStatus | null): ILinkTargets {
  if (status === null) {
    return { main: [], others: [] };
  }
  const main = [status.port];
  if (status.app_port !== null && !status.listening) {
    main.push(status.app_port); // the port the main preview follows
  }
  const others = status.ports
    .filter(port => !main.includes(port.port) && safePreviewUrl(port.url) !== null)
    .map(port => ({ port: port.port, url: port.url }));
  return { main, others };
}

let shared: AppWatcher | null = null;

/** The page's one watcher: the notices and the Preview panel read the same answers. */
export function sharedAppWatcher(settings: ServerConnection.ISettings): AppWatcher {
  shared ??= new AppWatcher(settings);
  return shared;
}

/** Whether this tab already told of the current run; kept across reloads of the tab. */
class RunMemory {
  private fallback = false;

  constructor(private readonly key: string) {}

  get told(): boolean {
    try {
      return window.sessionStorage.getItem(this.key) !== null;
    } catch {
      return this.fallback; // storage disabled: this page's memory only
    }
  }

  set told(value: boolean) {
    this.fallback = value;
    try {
      if (value) {
        window.sessionStorage.setItem(this.key, '1');
      } else {
        window.sessionStorage.removeItem(this.key);
      }
    } catch {
      // storage disabled: the fallback holds it
    }
  }
}

/** Decides when a run starts and ends, from the watcher's answers. */
export class AppRunNotices {
  private readonly memory: RunMemory;
  private notificationId: string | null = null;
  private quietAnswers = 0;

  constructor(
    watcher: AppWatcher,
    private readonly open: () => void,
    key: string
  ) {
    this.memory = new RunMemory(`codepilot:app-told:${key}`);
    watcher.changed.connect((_, status) => this.update(status));
  }

  update(status: IAppStatus): void {
    // The preview follows the app: on PORT, or the port the run listens on instead.
    const appPort = status.listening ? status.port : (status.app_port ?? null);
    if (appPort !== null) {
      this.quietAnswers = 0;
      if (!this.memory.told) {
        this.memory.told = true;
        this.notificationId = tellAppRunning(appPort, this.open);
      }
      return;
    }
    this.quietAnswers += 1;
    if (this.quietAnswers >= STOPPED_ANSWERS && this.memory.told) {
      this.memory.told = false;
      if (this.notificationId !== null) {
        // Its "Open preview" would now show the "nothing is listening" page.
        Notification.dismiss(this.notificationId);
        this.notificationId = null;
      }
    }
  }
}
