/**
 * The Run button: Run / Stop / Restart in the top bar, the palette and a shortcut; a Run
 * panel (a main-area tab docked below the editors, as JupyterLab opens a console) showing
 * the run's terminal (JupyterLab's own Terminal widget
 * on the run's terminado terminal, so colours, input and every viewer come with it); and
 * a status bar item `Running` / `Starting` / `Stopped` / `Crashed (exit 1)`.
 *
 * The server keeps the run (`codepilot/api/run`); this tab asks for its state every
 * second while visible, and attaches to each new run's terminal.
 */
import { Contents, ServerConnection, Terminal as TerminalAPI } from '@jupyterlab/services';
import { ITerminal, Terminal } from '@jupyterlab/terminal';
import { runIcon } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import { BoxPanel, Widget } from '@lumino/widgets';

import { requestJSON } from './api';
import { canRun, IRunModel, runHeadline } from './runstate';

export const RUN_PATH = 'codepilot/api/run';
const POLL_MS = 1000;
const POLL_MAX_MS = 15000;

/** The run as the server last described it; `changed` on each answer. */
export class RunModel {
  model: IRunModel | null = null;
  error: string | null = null;
  private readonly _changed = new Signal<this, void>(this);
  private readonly poll: Poll;

  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly contents: Contents.IManager
  ) {
    this.poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: POLL_MS, backoff: true, max: POLL_MAX_MS },
      standby: 'when-hidden',
      name: '@codepilot/lab:run'
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  async refresh(): Promise<void> {
    await this.request('GET');
  }

  run(): Promise<void> {
    return this.request('POST');
  }

  restart(): Promise<void> {
    return this.request('POST', { restart: true });
  }

  stop(): Promise<void> {
    return this.request('DELETE');
  }

  /** Write the guessed command into codepilot.toml (through the contents API, so it is
   * saved as any file is), then Run. */
  async useGuess(): Promise<void> {
    const config = this.model?.next.config;
    if (!config) {
      return;
    }
    await this.contents.save('codepilot.toml', { type: 'file', format: 'text', content: config });
    await this.run();
  }

  dispose(): void {
    this.poll.dispose();
  }

  private async request(method: string, body?: unknown): Promise<void> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
    }
    try {
      this.model = await requestJSON<IRunModel>(RUN_PATH, init, this.settings);
      this.error = null;
    } catch (error) {
      this.error = `The run could not be read: ${(error as Error).message}`;
      throw error;
    } finally {
      this._changed.emit();
    }
  }
}

function button(label: string, className: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.className = `jp-Button jp-mod-styled ${className}`;
  node.textContent = label;
  node.addEventListener('click', onClick);
  return node;
}

/** Run / Stop / Restart, shown as the run allows; in the top bar and the Run panel. */
export class RunButtons extends Widget {
  private readonly runButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly restartButton: HTMLButtonElement;

  constructor(
    private readonly model: RunModel,
    actions: { run: () => void; stop: () => void; restart: () => void }
  ) {
    super();
    this.addClass('jp-codepilot-RunButtons');
    this.runButton = button('▶ Run', 'jp-mod-accept jp-codepilot-run', actions.run);
    this.stopButton = button('■ Stop', 'jp-mod-warn jp-codepilot-stop', actions.stop);
    this.restartButton = button('↻ Restart', 'jp-codepilot-restart', actions.restart);
    this.node.append(this.runButton, this.stopButton, this.restartButton);
    model.changed.connect(this.update, this);
    this.update();
  }

  update(): void {
    const idle = canRun(this.model.model);
    this.runButton.hidden = !idle;
    this.stopButton.hidden = idle;
    this.restartButton.hidden = idle;
  }
}

/** What the Run panel's terminal takes from the user's terminal settings (font, theme,
 * screen-reader mode...), as JupyterLab's own terminals do. */
export type TerminalOptions = () => Partial<ITerminal.IOptions>;

/** The Run panel, a main-area tab: a headline with Run / Stop / Restart, "Use: <guess>"
 * when nothing says what to run, and the run's terminal, or the last output of a run
 * that ended before this tab attached. */
export class RunPanel extends BoxPanel {
  private readonly headline = document.createElement('div');
  private readonly useButton: HTMLButtonElement;
  private readonly tail = new Widget({ node: document.createElement('pre') });
  private terminal: Terminal | null = null;
  private session: TerminalAPI.ITerminalConnection | null = null;
  private attachedRun: number | null = null;
  private sawOutput = false;

  constructor(
    private readonly model: RunModel,
    private readonly terminals: TerminalAPI.IManager,
    buttons: RunButtons,
    private readonly terminalOptions: TerminalOptions = () => ({})
  ) {
    super({ direction: 'top-to-bottom', spacing: 0 });
    this.id = 'codepilot-run';
    this.title.label = 'Run';
    this.title.caption = "Your project's app: its output, and Run, Stop, Restart";
    this.title.icon = runIcon;
    this.title.closable = true;
    this.addClass('jp-codepilot-RunPanel');
    const bar = new Widget();
    bar.addClass('jp-codepilot-RunBar');
    this.headline.className = 'jp-codepilot-RunHeadline';
    this.useButton = button('', 'jp-mod-accept jp-codepilot-use-guess', () => {
      void model.useGuess();
    });
    bar.node.append(this.headline, this.useButton, buttons.node);
    this.addWidget(bar);
    BoxPanel.setStretch(bar, 0);
    this.tail.addClass('jp-codepilot-RunTail');
    this.addWidget(this.tail);
    BoxPanel.setStretch(this.tail, 1);
    model.changed.connect(this.render, this);
    this.render();
  }

  dispose(): void {
    this.session?.dispose();
    super.dispose();
  }

  private render(): void {
    const model = this.model.model;
    if (!model) {
      this.headline.textContent = this.model.error ?? 'Reading the run…';
      return;
    }
    this.headline.textContent = runHeadline(model);
    this.node.dataset.state = model.state;
    const guess = model.next.kind === 'missing' ? model.next.guess : undefined;
    this.useButton.hidden = !guess;
    this.useButton.textContent = guess ? `Use: ${guess}` : '';
    const run = model.run;
    if (model.terminal && run && run.number !== this.attachedRun) {
      this.attach(model.terminal, run.number);
    }
    // A run that ended before this tab saw its output (a reload, a command that failed
    // at once): its last output, from the server.
    const unseen = run?.number !== this.attachedRun || !this.sawOutput;
    const showTail = !!run && run.tail !== null && unseen;
    this.tail.node.textContent = showTail ? (run?.tail ?? '') : '';
    this.tail.setHidden(!showTail);
    this.terminal?.setHidden(showTail);
  }

  private attach(name: string, runNumber: number): void {
    this.terminal?.dispose();
    this.session?.dispose(); // the last run's websocket
    this.attachedRun = runNumber;
    this.session = this.terminals.connectTo({ model: { name } });
    this.sawOutput = false;
    this.session.messageReceived.connect((_, message) => {
      this.sawOutput ||= message.type === 'stdout';
    });
    // closeOnExit off: a crashed run's output stays on screen; shutdownOnClose off:
    // closing the tab leaves the run alone (Stop ends it).
    this.terminal = new Terminal(this.session, {
      ...this.terminalOptions(),
      closeOnExit: false,
      shutdownOnClose: false,
      initialCommand: '',
      autoFit: true
    });
    this.terminal.addClass('jp-codepilot-RunTerminal');
    this.addWidget(this.terminal);
    BoxPanel.setStretch(this.terminal, 1);
  }
}

/** The status bar item: `Running`, `Starting`, `Stopped`, `Crashed (exit 1)`. */
export class RunStatusWidget extends Widget {
  constructor(
    private readonly model: RunModel,
    onClick: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-codepilot-RunStatus');
    this.node.title = 'The run of your project: click for its output';
    this.node.addEventListener('click', onClick);
    model.changed.connect(this.render, this);
    this.render();
  }

  private render(): void {
    const model = this.model.model;
    this.node.textContent = model ? `▶ ${model.label}` : '▶ …';
    this.node.dataset.state = model?.state ?? '';
  }
}
