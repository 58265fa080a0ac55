/**
 * A project's identity in JupyterLab, and the switcher between the owner's projects.
 *
 * - The tab title names the project and its owner ("web — maya — Code Pilot"), after the
 *   active document when JupyterLab names one.
 * - A status bar item "Project: web" opens the switcher.
 * - Someone other than the owner (a teacher, an admin) gets a line at the top that stays:
 *   "You are in maya's workspace".
 * - The switcher (left sidebar): the owner's projects and their state, Open, Start, Stop,
 *   Delete, and a new project's name checked as it is typed by the server, whose one
 *   Python function holds the hub's rules. Others may look and open only.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { requestJSON } from './api';
import {
  deleteConsequences,
  IProjectInfo,
  IProjectList,
  IProjectRow,
  PROJECT_PATH,
  PROJECTS_PATH,
  projectOpenUrl,
  projectStatusText,
  projectTitle,
  STATE_WORDS
} from './projectnames';

/** The list refreshes this often while the switcher is on screen and a project changes
 * state; otherwise far less often. */
const BUSY_MS = 2000;
const IDLE_MS = 20000;
/** What a name may be, said before anything is typed (the server checks each name). */
const NAME_FORMAT = 'Lowercase letters, digits and hyphens, starting with a letter.';
/** A name is checked once typing pauses this long. */
const CHECK_DELAY_MS = 250;

export const projectsIcon = new LabIcon({
  name: '@codepilot/lab:projects',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
    '<path class="jp-icon3" fill="#616161" d="M3 5h7l2 2h9v12H3z M5 9v8h14V9z"/></svg>'
});

function make<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  node.textContent = text;
  return node;
}

/** This project's identity (read once) and the owner's projects (read while looked at). */
export class ProjectsModel {
  info: IProjectInfo | null = null;
  list: IProjectList | null = null;
  problem: string | null = null;
  private readonly _changed = new Signal<this, void>(this);

  constructor(readonly settings: ServerConnection.ISettings) {}

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  async loadInfo(): Promise<IProjectInfo> {
    this.info = await requestJSON<IProjectInfo>(PROJECT_PATH, {}, this.settings);
    this._changed.emit();
    return this.info;
  }

  async refresh(): Promise<void> {
    try {
      this.list = await requestJSON<IProjectList>(PROJECTS_PATH, {}, this.settings);
      this.problem = null;
    } catch (error) {
      this.problem = `Could not list the projects: ${(error as Error).message}`;
    }
    this._changed.emit();
  }

  get busy(): boolean {
    return (this.list?.projects ?? []).some(
      row => row.state === 'starting' || row.state === 'stopping'
    );
  }

  /** Why `name` cannot name a new project, as the server's rules say; null: it can. */
  async check(name: string): Promise<string | null> {
    const path = `${PROJECTS_PATH}/check?name=${encodeURIComponent(name)}`;
    const reply = await requestJSON<{ problem: string | null }>(path, {}, this.settings);
    return reply.problem;
  }

  /** `create`, or `start`, `stop`, `delete` a project; rejects with the server's words. */
  async act(action: 'create' | 'start' | 'stop' | 'delete', name: string): Promise<void> {
    const path = action === 'create' ? PROJECTS_PATH : `${PROJECTS_PATH}/${action}`;
    const init = { method: 'POST', body: JSON.stringify({ name }) };
    try {
      await requestJSON(path, init, this.settings);
    } finally {
      await this.refresh();
    }
  }
}

/** Keeps the tab title on the project whatever JupyterLab writes there. */
export function keepProjectTitle(info: IProjectInfo, appName: string): MutationObserver {
  const update = () => {
    const title = projectTitle(document.title, info, appName);
    if (title !== document.title) {
      document.title = title;
    }
  };
  const observer = new MutationObserver(update);
  observer.observe(document.head, { childList: true, subtree: true, characterData: true });
  update();
  return observer;
}

/** The line at the top for a visitor: plain text, in the page's landmarks, always shown. */
export class VisitorBanner extends Widget {
  constructor(text: string) {
    super();
    this.id = 'codepilot-visitor';
    this.addClass('jp-codepilot-Visitor');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Whose workspace');
    this.node.append(make('p', { class: 'jp-codepilot-Visitor-text' }, text));
  }
}

/** "Project: web" in the status bar; a click opens the switcher. */
export class ProjectStatusWidget extends Widget {
  constructor(info: IProjectInfo, open: () => void) {
    super({ node: make('button', { type: 'button', class: 'jp-codepilot-ProjectStatus' }) });
    this.node.textContent = projectStatusText(info);
    this.node.title = 'Switch project: open, create, stop or delete one';
    this.node.addEventListener('click', open);
  }
}

export class ProjectsPanel extends Widget {
  private readonly intro: HTMLParagraphElement;
  private readonly rows: HTMLUListElement;
  private readonly message: HTMLParagraphElement;
  private readonly form: HTMLFormElement;
  private readonly input: HTMLInputElement;
  private readonly nameHint: HTMLParagraphElement;
  private readonly createButton: HTMLButtonElement;
  private readonly poll: Poll;
  private checkTimer = 0;
  private checked: { name: string; problem: string | null } | null = null;

  constructor(private readonly model: ProjectsModel) {
    super();
    this.id = 'codepilot-projects';
    this.addClass('jp-codepilot-Projects');
    this.title.icon = projectsIcon;
    this.title.caption = 'Projects';

    const heading = make('h2', { class: 'jp-codepilot-Projects-heading' }, 'Projects');
    this.intro = make('p', { class: 'jp-codepilot-Projects-intro' });
    this.rows = make('ul', { class: 'jp-codepilot-Projects-list', 'aria-label': 'Projects' });
    this.message = make('p', { class: 'jp-codepilot-Projects-message', 'aria-live': 'polite' });

    this.form = make('form', { class: 'jp-codepilot-Projects-new' });
    const label = make('label', { for: 'codepilot-new-project' }, 'New project name');
    this.input = make('input', {
      id: 'codepilot-new-project',
      class: 'jp-mod-styled',
      type: 'text',
      autocomplete: 'off',
      spellcheck: 'false',
      'aria-describedby': 'codepilot-new-project-hint'
    });
    this.nameHint = make('p', {
      id: 'codepilot-new-project-hint',
      class: 'jp-codepilot-Projects-hint',
      'aria-live': 'polite'
    });
    this.nameHint.textContent = NAME_FORMAT;
    this.createButton = make(
      'button',
      { type: 'submit', class: 'jp-mod-styled jp-mod-accept jp-codepilot-Button' },
      'Create'
    );
    this.form.append(label, this.input, this.nameHint, this.createButton);
    this.input.addEventListener('input', () => this.scheduleCheck());
    this.form.addEventListener('submit', event => {
      event.preventDefault();
      void this.create();
    });

    this.node.append(heading, this.intro, this.rows, this.message, this.form);
    this.model.changed.connect(() => this.render());
    this.poll = new Poll({
      factory: () => this.model.refresh(),
      frequency: { interval: IDLE_MS, backoff: false },
      standby: () => !this.isVisible || document.hidden,
      name: '@codepilot/lab:projects'
    });
    this.render();
  }

  dispose(): void {
    this.poll.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.poll.refresh();
  }

  private render(): void {
    const info = this.model.info;
    const list = this.model.list;
    const manage = list?.may_manage ?? info?.may_manage ?? false;
    if (info) {
      this.intro.textContent = manage
        ? `Your projects: each has its own files, terminals and preview. This tab is ${info.label}.`
        : `${info.owner}'s projects. You can see and open them; only ${info.owner} can ` +
          'create, start, stop or delete them.';
    }
    this.form.hidden = !manage;
    this.rows.replaceChildren(...(list?.projects ?? []).map(row => this.renderRow(row, manage)));
    if (this.model.problem) {
      this.message.textContent = this.model.problem;
    }
    // Faster while a project starts or stops, so its row shows the change soon.
    const interval = this.model.busy ? BUSY_MS : IDLE_MS;
    if (this.poll.frequency.interval !== interval) {
      this.poll.frequency = { interval, backoff: false, max: IDLE_MS };
    }
  }

  private renderRow(row: IProjectRow, manage: boolean): HTMLLIElement {
    const item = make('li', { class: 'jp-codepilot-Projects-row', 'data-state': row.state });
    item.dataset.project = row.label;
    const name = make('span', { class: 'jp-codepilot-Projects-name' }, row.label);
    const state = make(
      'span',
      { class: 'jp-codepilot-Projects-state' },
      row.current ? `${STATE_WORDS[row.state]}, this tab` : STATE_WORDS[row.state]
    );
    const actions = make('span', { class: 'jp-codepilot-Projects-actions' });
    if (row.state === 'running' && !row.current) {
      // A link: the browser opens it (no pop-up blocker), without a handle on this tab.
      const open = make(
        'a',
        {
          class: 'jp-mod-styled jp-codepilot-Button',
          href: projectOpenUrl(row),
          target: '_blank',
          rel: 'noopener noreferrer',
          'aria-label': `Open ${row.label} in a new tab`
        },
        'Open'
      );
      actions.append(open);
    }
    if (manage && !row.current) {
      if (row.state === 'stopped') {
        actions.append(this.actionButton('Start', row, () => this.run('start', row)));
      } else if (row.state === 'running' || row.state === 'starting') {
        actions.append(this.actionButton('Stop', row, () => this.run('stop', row)));
      }
      if (row.name) {
        actions.append(this.actionButton('Delete', row, () => void this.confirmDelete(row)));
      }
    }
    item.append(name, state, actions);
    return item;
  }

  private actionButton(label: string, row: IProjectRow, onClick: () => void): HTMLButtonElement {
    const button = make(
      'button',
      {
        type: 'button',
        class: 'jp-mod-styled jp-codepilot-Button',
        'aria-label': `${label} ${row.label}`
      },
      label
    );
    button.addEventListener('click', onClick);
    return button;
  }

  private async run(action: 'start' | 'stop' | 'delete', row: IProjectRow): Promise<void> {
    const doing = { start: 'Starting', stop: 'Stopping', delete: 'Deleting' }[action];
    this.message.textContent = `${doing} ${row.label}…`;
    try {
      await this.model.act(action, row.name);
      const done = { start: 'is starting', stop: 'was stopped', delete: 'was deleted' }[action];
      this.message.textContent = `${row.label} ${done}.`;
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
  }

  private async confirmDelete(row: IProjectRow): Promise<void> {
    const storage = this.model.info?.storage ?? 'sync';
    const result = await showDialog({
      title: `Delete the project ${row.label}?`,
      body: deleteConsequences(row.label, storage),
      buttons: [
        Dialog.cancelButton({ label: 'Keep it' }),
        Dialog.warnButton({ label: `Delete ${row.label}` })
      ]
    });
    if (result.button.accept) {
      await this.run('delete', row);
    }
  }

  private scheduleCheck(): void {
    window.clearTimeout(this.checkTimer);
    this.checkTimer = window.setTimeout(() => void this.checkName(), CHECK_DELAY_MS);
  }

  private async checkName(): Promise<string | null> {
    const name = this.input.value;
    if (this.checked?.name === name) {
      return this.checked.problem;
    }
    let problem: string | null;
    try {
      problem = await this.model.check(name);
    } catch (error) {
      problem = `Could not check the name: ${(error as Error).message}`;
    }
    if (this.input.value !== name) {
      return problem; // typed on meanwhile: a later check will say
    }
    this.checked = { name, problem };
    this.input.setAttribute('aria-invalid', problem ? 'true' : 'false');
    this.nameHint.textContent = problem ?? `${name} is free.`;
    this.nameHint.dataset.level = problem ? 'error' : 'ok';
    return problem;
  }

  private async create(): Promise<void> {
    window.clearTimeout(this.checkTimer);
    const name = this.input.value;
    if (await this.checkName()) {
      this.input.focus();
      return;
    }
    this.createButton.disabled = true;
    this.message.textContent = `Creating ${name}…`;
    try {
      await this.model.act('create', name);
      this.message.textContent = `${name} was created and is starting.`;
      this.input.value = '';
      this.checked = null;
      this.nameHint.textContent = NAME_FORMAT;
      delete this.nameHint.dataset.level;
      this.input.removeAttribute('aria-invalid');
    } catch (error) {
      this.message.textContent = (error as Error).message;
    } finally {
      this.createButton.disabled = false;
    }
  }
}
