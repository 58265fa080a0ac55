/**
 * The preview panel (right sidebar) and its status bar item "Preview: only me|class|public".
 *
 * The panel shows the preview's own URL, opens it in a new tab, copies it, and sets its
 * share level through `PUT codepilot/api/preview`. Below, the server's other listening
 * ports (`GET codepilot/api/app`), each with its process and a link to its own preview
 * (`<port>--<label>`), shared as the main one is.
 */
import { Clipboard } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ApiError, PREVIEW_PATH, requestJSON } from './api';
import { AppWatcher, IListeningPort } from './apprunning';
import { isSignedOut, signedOutMessage } from './session';
import {
  IPreviewModel,
  previewStatusText,
  safePreviewUrl,
  SHARE_LEVELS,
  shareLevelInfo
} from './sharelevels';

/** The share level can change from another tab or by REST: refresh now and then. */
const REFRESH_MS = 30000;

export const previewIcon = new LabIcon({
  name: '@codepilot/lab:preview',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    // An inline fill: theme rules recolour every element with a fill attribute.
    '<rect class="jp-icon3" x="2" y="4" width="20" height="16" rx="2" style="fill:none" ' +
    'stroke="#616161" stroke-width="2"/>' +
    '<path class="jp-icon3" d="M2 8h20" stroke="#616161" stroke-width="2"/>' +
    '<path class="jp-icon-warn0" d="M10 11l5 3-5 3z" fill="#f37726"/></svg>'
});

/** The preview's settings as the server last stated them; `changed` fires on news. */
export class PreviewModel {
  model: IPreviewModel | null = null;
  /** Why the model could not be read (null when it could). */
  problem: string | null = null;
  /** False when this server has no preview API (404). */
  available = true;
  /** The hub's session ended: the server refuses until the student signs in again. */
  signedOut = false;
  private readonly _changed = new Signal<this, void>(this);
  private readonly poll: Poll;

  /** `settings`: the app's, whose requests wait while the server is stopped. */
  constructor(private readonly settings: ServerConnection.ISettings) {
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: REFRESH_MS, backoff: true, max: 5 * REFRESH_MS },
      standby: 'when-hidden',
      name: '@codepilot/lab:preview'
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  async refresh(): Promise<void> {
    try {
      this.accept(await requestJSON<IPreviewModel>(PREVIEW_PATH, {}, this.settings));
    } catch (error) {
      this.available = !(error instanceof ApiError && error.status === 404);
      this.signedOut = isSignedOut(error);
      this.problem = this.signedOut
        ? null // not an error of the preview: the panel offers to sign in again
        : this.available
          ? `Could not read the preview settings: ${(error as Error).message}`
          : 'This server has no preview settings.';
      this._changed.emit();
      throw error;
    }
  }

  /** Ask the server for a new share level; rejects with the server's message. */
  async setShare(level: string): Promise<void> {
    const body = JSON.stringify({ share: level });
    const init = { method: 'PUT', body };
    this.accept(await requestJSON<IPreviewModel>(PREVIEW_PATH, init, this.settings));
  }

  dispose(): void {
    this.poll.dispose();
  }

  private accept(model: IPreviewModel): void {
    this.model = model;
    this.problem = null;
    this.available = true;
    this.signedOut = false;
    this._changed.emit();
  }
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No async clipboard (an insecure origin, a denied permission): the older way.
    Clipboard.copyToSystem(text);
  }
}

export class PreviewPanel extends Widget {
  private readonly urlField: HTMLElement;
  private readonly openLink: HTMLAnchorElement;
  private readonly copyButton: HTMLButtonElement;
  private readonly select: HTMLSelectElement;
  private readonly explanation: HTMLParagraphElement;
  private readonly message: HTMLParagraphElement;
  private readonly portsHeading: HTMLElement;
  private readonly portList: HTMLUListElement;
  private busy = false;

  constructor(
    private readonly preview: PreviewModel,
    private readonly ports: AppWatcher | null = null
  ) {
    super();
    this.id = 'codepilot-preview';
    this.addClass('jp-codepilot-Preview');
    this.title.icon = previewIcon;
    this.title.caption = 'Preview: link and sharing';

    const heading = element('h2', 'jp-codepilot-Preview-heading', 'Preview');
    const intro = element(
      'p',
      'jp-codepilot-Preview-intro',
      'Your app (on $PORT, or the port it listens on instead) is served at its own address:'
    );
    // Text that wraps, not an input: the whole address stays readable in a narrow sidebar.
    this.urlField = element('code', 'jp-codepilot-Preview-url');
    this.urlField.setAttribute('aria-label', 'Preview URL');

    this.openLink = element('a', 'jp-mod-styled jp-codepilot-Button', 'Open');
    this.openLink.target = '_blank';
    // The preview is the student's own untrusted code: it gets no handle on this tab.
    this.openLink.rel = 'noopener noreferrer';
    this.copyButton = element('button', 'jp-mod-styled jp-codepilot-Button', 'Copy link');
    this.copyButton.type = 'button';
    this.copyButton.addEventListener('click', () => void this.copy());
    const buttons = element('div', 'jp-codepilot-Preview-buttons');
    buttons.append(this.openLink, this.copyButton);

    const selectId = 'codepilot-preview-share';
    const label = element('label', 'jp-codepilot-Preview-label', 'Who can open it');
    label.htmlFor = selectId;
    this.select = element('select', 'jp-mod-styled jp-codepilot-Preview-share');
    this.select.id = selectId;
    for (const info of SHARE_LEVELS) {
      const option = element('option', '', info.label);
      option.value = info.level;
      this.select.append(option);
    }
    this.select.addEventListener('change', () => void this.changeShare(this.select.value));
    this.explanation = element('p', 'jp-codepilot-Preview-explanation');
    this.message = element('p', 'jp-codepilot-Preview-message');
    this.message.setAttribute('role', 'alert');
    this.portsHeading = element('h3', 'jp-codepilot-Preview-portsHeading', 'Other ports');
    this.portList = element('ul', 'jp-codepilot-Preview-ports');
    this.portList.setAttribute('aria-label', 'Other listening ports');

    this.node.append(
      heading,
      intro,
      this.urlField,
      buttons,
      label,
      this.select,
      this.explanation,
      this.message,
      this.portsHeading,
      this.portList
    );
    preview.changed.connect(this.render, this);
    ports?.changed.connect(this.renderPorts, this);
    this.render();
    this.renderPorts();
  }

  protected onAfterShow(): void {
    // The panel opens on the latest settings, not the last poll's.
    void this.preview.refresh().catch(() => undefined);
    void this.ports?.refreshNow().catch(() => undefined);
  }

  /** One line per other listening port: its number, its process, a link to its preview. */
  private renderPorts(): void {
    const status = this.ports?.status;
    const shown = (status?.ports ?? []).filter(
      (port: IListeningPort) => port.port !== status?.app_port && safePreviewUrl(port.url)
    );
    this.portsHeading.hidden = shown.length === 0;
    this.portList.replaceChildren(
      ...shown.map(port => {
        const item = element('li', 'jp-codepilot-Preview-port');
        item.dataset.port = String(port.port);
        const open = element('a', 'jp-codepilot-Preview-portLink', `Port ${port.port}`);
        open.href = safePreviewUrl(port.url) ?? '';
        open.target = '_blank';
        open.rel = 'noopener noreferrer'; // the port's app is untrusted code too
        open.title = `Open ${port.url}`;
        const what = port.run ? `${port.process} (your run)` : port.process;
        item.append(open, element('span', 'jp-codepilot-Preview-process', what));
        return item;
      })
    );
  }

  private render(): void {
    const model = this.preview.model;
    const url = safePreviewUrl(model?.url);
    this.urlField.textContent = url ?? '';
    if (url) {
      this.openLink.href = url;
      this.openLink.removeAttribute('aria-disabled');
    } else {
      this.openLink.removeAttribute('href');
      this.openLink.setAttribute('aria-disabled', 'true');
    }
    this.copyButton.disabled = !url;
    const allowed = new Set(model?.allowed ?? []);
    for (const option of Array.from(this.select.options)) {
      // The current level stays selectable even if the admin no longer offers it.
      option.disabled = !allowed.has(option.value) && option.value !== model?.share;
    }
    if (model && !this.busy) {
      this.select.value = model.share;
    }
    this.select.disabled = !model || this.busy;
    const info = model ? shareLevelInfo(model.share) : undefined;
    this.explanation.textContent = info
      ? info.level === 'public'
        ? 'Anyone who has the link can open your app, without logging in. Do not ' +
          'put secrets in it.'
        : info.explanation
      : '';
    this.explanation.dataset.level = info?.level ?? '';
    if (this.preview.signedOut) {
      signedOutMessage(this.message);
    } else if (this.preview.problem) {
      this.message.textContent = this.preview.problem;
    } else if (this.message.querySelector('.jp-codepilot-SignIn')) {
      this.message.textContent = ''; // signed in again
    }
  }

  private async copy(): Promise<void> {
    const url = safePreviewUrl(this.preview.model?.url);
    if (!url) {
      return;
    }
    await copyText(url);
    this.copyButton.textContent = 'Copied';
    window.setTimeout(() => (this.copyButton.textContent = 'Copy link'), 2000);
  }

  private async changeShare(level: string): Promise<void> {
    const before = this.preview.model?.share;
    if (level === before) {
      return;
    }
    this.busy = true;
    this.message.textContent = '';
    this.render();
    try {
      await this.preview.setShare(level);
      this.message.textContent = '';
    } catch (error) {
      this.message.textContent = `Not changed: ${(error as Error).message}`;
    } finally {
      this.busy = false;
      this.render();
    }
  }
}

/** "Preview: only me": the share level at a glance; a click opens the panel. */
export class PreviewStatusWidget extends Widget {
  private readonly _activeChanged = new Signal<this, void>(this);
  private wasActive = false;

  constructor(
    private readonly preview: PreviewModel,
    open: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-codepilot-PreviewStatus');
    (this.node as HTMLButtonElement).type = 'button';
    this.node.addEventListener('click', open);
    preview.changed.connect(this.render, this);
    this.render();
  }

  get isActive(): boolean {
    return this.preview.model !== null;
  }

  get activeChanged(): ISignal<this, void> {
    return this._activeChanged;
  }

  private render(): void {
    const model = this.preview.model;
    if (model) {
      this.node.textContent = previewStatusText(model);
      this.node.dataset.level = model.share;
      this.node.title = this.preview.signedOut
        ? 'Your session ended: sign in again to see or change who can open your app.'
        : `${safePreviewUrl(model.url) ?? ''}\n${
            shareLevelInfo(model.share)?.explanation ?? ''
          }\nClick for the link and sharing.`;
    }
    if (this.isActive !== this.wasActive) {
      this.wasActive = this.isActive;
      this._activeChanged.emit();
    }
  }
}
