/**
 * The status bar item "Saved / Saving… / Not saved", polled from
 * `GET codepilot/api/sync`, its detail (a click, or Enter or Space on it, opens the why),
 * and the notification a student gets when sync is stuck.
 */
import { Notification } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { Popup, showPopup } from '@jupyterlab/statusbar';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { requestJSON, SYNC_PATH } from './api';
import { isSignedOut, SIGNED_OUT_TEXT, signedOutMessage } from './session';
import {
  describeSignedOut,
  describeSync,
  describeUnreachable,
  ISyncModel,
  ISyncView,
  SyncProblem
} from './syncstate';

/** Poll period while the page is visible; Poll stands by while it is hidden. */
const POLL_MS = 3000;
/** Longest wait between polls when the server does not answer. */
const POLL_MAX_MS = 30000;
/** A failing S3 is announced once it has failed this long: a blip is not news. */
const FAILING_GRACE_MS = 20000;

const PROBLEM_MESSAGES: Record<SyncProblem, string> = {
  stalled:
    'Workspace sync is stalled: recent changes have not reached S3. They are safe on ' +
    'this server for now; keep working, and do not stop the server until the status bar ' +
    'says "Saved".',
  failing:
    'Workspace sync cannot reach S3: recent changes are waiting on this server. Keep the ' +
    'server running until the status bar says "Saved".',
  unwatched:
    'Workspace sync stopped watching for changes made in terminals: they no longer reach ' +
    'S3 (editor saves still do). Restart your server from the Hub Control Panel to resume.'
};

/**
 * Decides when to raise, and when to settle, the one notification of a sync problem.
 * Kept apart from the DOM so that its rules read in one place.
 */
export class SyncAlerts {
  private notificationId: string | null = null;
  private failingSince: number | null = null;
  private told: SyncProblem | null = null;

  update(view: ISyncView, now: number = Date.now()): void {
    if (view.problem === null) {
      this.failingSince = null;
      if (this.notificationId !== null) {
        Notification.update({
          id: this.notificationId,
          message: 'Workspace sync is back: your files are saved in S3 again.',
          type: 'success',
          autoClose: 8000
        });
        this.notificationId = null;
        this.told = null;
      }
      return;
    }
    if (this.notificationId !== null) {
      // Once per episode; a problem that changes kind (failing, then stalled) is reworded.
      if (view.problem !== this.told) {
        this.told = view.problem;
        Notification.update({ id: this.notificationId, message: PROBLEM_MESSAGES[view.problem] });
      }
      return;
    }
    if (view.problem === 'failing') {
      this.failingSince ??= now;
      if (now - this.failingSince < FAILING_GRACE_MS) {
        return;
      }
    }
    this.told = view.problem;
    this.notificationId = Notification.emit(PROBLEM_MESSAGES[view.problem], 'warning', {
      autoClose: false
    });
  }
}

/** The detail under the item: the view's lines, and "Sign in again" when signed out. */
class SyncDetail extends Widget {
  constructor() {
    super();
    this.addClass('jp-codepilot-SyncDetail');
    this.node.setAttribute('role', 'dialog');
    this.node.setAttribute('aria-label', 'Saving your files');
    this.node.tabIndex = -1;
  }

  render(view: ISyncView): void {
    this.node.replaceChildren();
    const heading = document.createElement('p');
    heading.className = 'jp-codepilot-SyncDetail-heading';
    heading.textContent = view.text;
    this.node.append(heading);
    if (view.signedOut) {
      const message = document.createElement('p');
      signedOutMessage(message, view.tooltip);
      this.node.append(message);
      return;
    }
    for (const line of view.tooltip.split('\n').filter(Boolean)) {
      const paragraph = document.createElement('p');
      paragraph.textContent = line;
      this.node.append(paragraph);
    }
  }
}

export class SyncStatusWidget extends Widget {
  private readonly dot: HTMLSpanElement;
  private readonly label: HTMLSpanElement;
  private readonly alerts = new SyncAlerts();
  private readonly poll: Poll;
  private view: ISyncView | null = null;
  private detail: SyncDetail | null = null;
  private popup: Popup | null = null;
  private readonly _activeChanged = new Signal<this, void>(this);

  /** `settings`: the app's, whose requests wait while the server is stopped. */
  constructor(private readonly settings: ServerConnection.ISettings) {
    // A button: reached with Tab, and Enter or Space open the detail.
    super({ node: document.createElement('button') });
    const button = this.node as HTMLButtonElement;
    button.type = 'button';
    button.setAttribute('aria-haspopup', 'dialog');
    button.setAttribute('aria-expanded', 'false');
    this.addClass('jp-codepilot-SyncStatus');
    this.dot = document.createElement('span');
    this.dot.className = 'jp-codepilot-dot';
    this.dot.setAttribute('aria-hidden', 'true');
    // Read as "Your files: Saved"; only the word is shown.
    const name = document.createElement('span');
    name.className = 'jp-codepilot-visually-hidden';
    name.textContent = 'Your files: ';
    this.label = document.createElement('span');
    this.label.className = 'jp-codepilot-SyncStatus-text';
    // Changes of the word are announced, politely.
    this.label.setAttribute('aria-live', 'polite');
    this.node.append(this.dot, name, this.label);
    this.node.addEventListener('click', () => this.toggleDetail());
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: POLL_MS, backoff: true, max: POLL_MAX_MS },
      standby: 'when-hidden',
      name: '@codepilot/lab:sync'
    });
  }

  /** Shown in sync and s3 modes, once the server has answered; never in `local` mode. */
  get isActive(): boolean {
    return this.view?.visible ?? false;
  }

  /** For the status bar: `isActive` changed. */
  get activeChanged(): ISignal<this, void> {
    return this._activeChanged;
  }

  dispose(): void {
    this.poll.dispose();
    this.popup?.dispose();
    super.dispose();
  }

  private async refresh(): Promise<void> {
    let model: ISyncModel;
    try {
      model = await requestJSON<ISyncModel>(SYNC_PATH, {}, this.settings);
    } catch (error) {
      // Shown only where the server has said it syncs: nothing to say in local mode.
      if (this.view?.visible) {
        this.render(
          isSignedOut(error)
            ? describeSignedOut(SIGNED_OUT_TEXT)
            : describeUnreachable(String((error as Error).message ?? error))
        );
      }
      throw error; // Poll backs off
    }
    const view = describeSync(model);
    this.render(view);
    this.alerts.update(view);
    if (!view.visible) {
      // Local storage does not change while the server runs: stop asking.
      this.poll.dispose();
    }
  }

  private render(view: ISyncView): void {
    const wasActive = this.isActive;
    this.view = view;
    this.label.textContent = view.text;
    this.node.title = view.tooltip;
    this.node.dataset.level = view.level;
    this.detail?.render(view);
    if (this.isActive !== wasActive) {
      this._activeChanged.emit();
    }
  }

  private toggleDetail(): void {
    if (this.popup && !this.popup.isDisposed) {
      this.popup.dispose();
      return;
    }
    if (!this.view) {
      return;
    }
    const detail = new SyncDetail();
    detail.render(this.view);
    this.detail = detail;
    this.popup = showPopup({ body: detail, anchor: this, align: 'left' });
    this.node.setAttribute('aria-expanded', 'true');
    this.popup.disposed.connect(() => {
      this.detail = null;
      this.popup = null;
      this.node.setAttribute('aria-expanded', 'false');
      // Escape, or a click elsewhere: the keyboard goes back to where it was.
      if (document.activeElement === document.body || detail.node.contains(document.activeElement)) {
        this.node.focus();
      }
    });
    detail.node.focus(); // Escape closes it from there; Tab reaches its link
  }
}
