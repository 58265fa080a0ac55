/**
 * Code Pilot in JupyterLab.
 *
 * - Status bar: "Saved / Saving… / Not saved" (hidden in local mode),
 *   with a notification when sync is stuck, since a student never reads server logs.
 * - Preview: a right-sidebar panel with the preview's URL, Open, Copy link and its share
 *   level; a status bar item "Preview: only me|class|public" and a palette command open it.
 *   The sidebar rather than a popup: it stays open while the student starts the app in a
 *   terminal, and the status bar keeps a public preview in sight at all times.
 * - A stopped project: the tab says so once (Restart, Home) and stops asking its server.
 * - Projects: the project and its owner in the tab title and the status bar, a line for a
 *   visitor ("You are in maya's workspace"), and a switcher between the owner's projects.
 * - A running app: "Your app is running on port 3000" once per run, with Open preview;
 *   links in terminals to that port on localhost open the preview at their path.
 * - Run: Run / Stop / Restart in the top bar and the palette, a Run panel (a tab docked
 *   below the editors) with the run's output, and its state in the status bar (./run.ts).
 * - Completion as you type in every file editor, also one opened after JupyterLab started
 *   (./completeastype.ts).
 * - A language server that crashed more often than the server restarts it: its stop and
 *   why in the status bar (./languageservers.ts).
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin,
  JupyterLab
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { PageConfig } from '@jupyterlab/coreutils';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { ILauncher } from '@jupyterlab/launcher';
import { ILSPDocumentConnectionManager } from '@jupyterlab/lsp';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITerminal, ITerminalTracker } from '@jupyterlab/terminal';
import { Widget } from '@lumino/widgets';

import {
  keepProjectTitle,
  ProjectsModel,
  ProjectsPanel,
  ProjectStatusWidget,
  VisitorBanner
} from './projects';
import { visitorLine } from './projectnames';
import { keepAutoCompletion } from './completeastype';
import { AppRunNotices, linkTargets, sharedAppWatcher } from './apprunning';
import { PreviewModel, PreviewPanel, PreviewStatusWidget, previewIcon } from './preview';
import { openPreview } from './previewlink';
import { ServerGate } from './servergate';
import { LanguageServerStatusWidget } from './languageservers';
import { hubLinks, tellStopped } from './stopped';
import { SyncStatusWidget } from './syncstatus';
import { routeTerminalLinks } from './terminallinks';
import { RunButtons, RunModel, RunPanel, RunStatusWidget } from './run';

/** A sidebar panel, and a palette command (Code Pilot's category) that shows it. */
function addSidebarPanel(
  app: JupyterFrontEnd,
  shell: ILabShell,
  palette: ICommandPalette | null,
  panel: Widget,
  options: { area: 'left' | 'right'; rank: number; command: string; label: string; caption: string }
): void {
  shell.add(panel, options.area, { rank: options.rank });
  app.commands.addCommand(options.command, {
    label: options.label,
    caption: options.caption,
    execute: () => shell.activateById(panel.id)
  });
  palette?.addItem({ command: options.command, category: 'Code Pilot' });
}

const SHOW_PREVIEW = 'codepilot:show-preview';
const OPEN_PREVIEW = 'codepilot:open-preview';

const syncStatus: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:sync-status',
  description: 'Workspace sync state in the status bar, with a notification when it is stuck.',
  autoStart: true,
  requires: [IStatusBar],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar) => {
    const item = new SyncStatusWidget(app.serviceManager.serverSettings);
    statusBar.registerStatusItem('@codepilot/lab:sync-status', {
      item,
      align: 'left',
      rank: 4,
      isActive: () => item.isActive,
      activeStateChanged: item.activeChanged
    });
  }
};

const preview: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:preview',
  description: 'The preview link, Open, Copy link and share level, in a sidebar panel.',
  autoStart: true,
  requires: [ILabShell],
  optional: [IStatusBar, ICommandPalette, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null
  ) => {
    const model = new PreviewModel(app.serviceManager.serverSettings);
    const ports = sharedAppWatcher(app.serviceManager.serverSettings);
    addSidebarPanel(app, shell, palette, new PreviewPanel(model, ports), {
      area: 'right',
      rank: 50,
      command: SHOW_PREVIEW,
      label: 'Preview: Show Link and Sharing',
      caption: 'The address of your app, a copy button and who can open it'
    });

    // The Preview tile: <server>/preview/ redirects to the preview's own origin. A new
    // tab without an opener, so the app's page gets no handle on the IDE.
    app.commands.addCommand(OPEN_PREVIEW, {
      label: 'Preview',
      caption: 'Open your app (the one you run on $PORT) in a new tab',
      icon: previewIcon,
      execute: () => openPreview()
    });
    launcher?.add({ command: OPEN_PREVIEW, category: 'Other', rank: 0 });
    palette?.addItem({ command: OPEN_PREVIEW, category: 'Code Pilot' });

    if (statusBar) {
      const item = new PreviewStatusWidget(model, () => {
        void app.commands.execute(SHOW_PREVIEW);
      });
      statusBar.registerStatusItem('@codepilot/lab:preview-status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => item.isActive,
        activeStateChanged: item.activeChanged
      });
    }
  }
};

const stoppedServer: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:stopped-server',
  description: 'Says once that the project was stopped; its requests wait from then on.',
  autoStart: true,
  optional: [JupyterLab.IInfo],
  activate: (app: JupyterFrontEnd, info: JupyterLab.IInfo | null) => {
    const links = hubLinks();
    if (!links) {
      return; // not behind JupyterHub: nothing stops the server under the tab
    }
    const gate = new ServerGate(app.serviceManager.serverSettings);
    gate.stopped.connect(() => {
      // JupyterLab's own pollers (kernels, sessions, terminals, events) stand by.
      if (info) {
        info.isConnected = false;
      }
      void tellStopped(links);
    });
  }
};

// --- projects: identity and switcher (./projects.ts) ---
const SHOW_PROJECTS = 'codepilot:show-projects';

const projects: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:projects',
  description: 'The project and its owner in the title and status bar, and a project switcher.',
  autoStart: true,
  requires: [ILabShell],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    if (!PageConfig.getOption('hubUser')) {
      return; // not behind JupyterHub: no projects
    }
    const model = new ProjectsModel(app.serviceManager.serverSettings);
    addSidebarPanel(app, shell, palette, new ProjectsPanel(model), {
      area: 'left',
      rank: 150,
      command: SHOW_PROJECTS,
      label: 'Projects: Switch, Create, Stop or Delete',
      caption: 'The projects of this workspace: open one, or create, stop or delete one'
    });
    // Not awaited: JupyterLab's start does not wait for this server's answer.
    model.loadInfo().then(
      info => {
        keepProjectTitle(info, PageConfig.getOption('appName') || 'JupyterLab');
        const visitor = visitorLine(info);
        if (visitor) {
          shell.add(new VisitorBanner(visitor), 'header');
        }
        statusBar?.registerStatusItem('@codepilot/lab:project-status', {
          item: new ProjectStatusWidget(info, () => void app.commands.execute(SHOW_PROJECTS)),
          align: 'left',
          rank: 0
        });
      },
      error => console.warn('Code Pilot: this project could not be read', error)
    );
  }
};

const appRunning: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:app-running',
  description:
    'Says once per run that the app listens on its port; terminal links to it open the preview.',
  autoStart: true,
  optional: [ITerminalTracker],
  activate: (app: JupyterFrontEnd, terminals: ITerminalTracker | null) => {
    const watcher = sharedAppWatcher(app.serviceManager.serverSettings);
    new AppRunNotices(watcher, () => openPreview(), PageConfig.getBaseUrl());
    if (terminals) {
      routeTerminalLinks(
        target => terminals.find(widget => widget.node.contains(target)) !== undefined,
        () => linkTargets(watcher.status)
      );
    }
  }
};

const RUN = 'codepilot:run';
const STOP = 'codepilot:stop';
const RESTART = 'codepilot:restart';
const SHOW_RUN = 'codepilot:show-run';

const TERMINAL_SETTINGS = '@jupyterlab/terminal-extension:plugin';

const run: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:run',
  description: 'Run / Stop / Restart the project, its output in a Run panel, its state in the status bar.',
  autoStart: true,
  requires: [ILabShell],
  optional: [IStatusBar, ICommandPalette, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    settings: ISettingRegistry | null
  ) => {
    const services = app.serviceManager;
    const model = new RunModel(services.serverSettings, services.contents);
    // The user's terminal settings (font, theme, screen reader), as every terminal has.
    let terminalSettings: Partial<ITerminal.IOptions> = {};
    void settings
      ?.load(TERMINAL_SETTINGS)
      .then(loaded => {
        terminalSettings = loaded.composite as Partial<ITerminal.IOptions>;
      })
      .catch(() => undefined);
    // The Run panel is a main-area tab docked below the editors (as JupyterLab opens a
    // console beside a file); closed, it is docked there again when shown.
    const showPanel = (activate = true) => {
      if (!panel.isAttached) {
        shell.add(panel, 'main', { mode: 'split-bottom' });
      }
      if (activate) {
        shell.activateById(panel.id);
      }
    };
    const act = (action: () => Promise<void>) => () => {
      showPanel();
      return action().catch(error => console.warn('Code Pilot: run', error));
    };
    const actions = {
      run: act(() => model.run()),
      stop: act(() => model.stop()),
      restart: act(() => model.restart())
    };
    const panel = new RunPanel(
      model,
      services.terminals,
      new RunButtons(model, actions),
      () => terminalSettings
    );
    // A run alive when JupyterLab opens (a reload, another viewer's Run): its output.
    const reattach = () => {
      if (model.model?.terminal) {
        model.changed.disconnect(reattach);
        void app.restored.then(() => showPanel(false));
      }
    };
    model.changed.connect(reattach);
    const topButtons = new RunButtons(model, actions);
    topButtons.id = 'codepilot-run-buttons';
    shell.add(topButtons, 'top', { rank: 100 });
    const commands: [string, string, string, () => unknown][] = [
      [RUN, 'Run Project', "Start the project's run command", actions.run],
      [STOP, 'Stop Project', 'End every process of the run', actions.stop],
      [RESTART, 'Restart Project', 'Stop the run, then Run', actions.restart],
      [SHOW_RUN, 'Show Run Output', "The run's output", () => showPanel()]
    ];
    for (const [id, label, caption, execute] of commands) {
      app.commands.addCommand(id, { label, caption, execute });
      palette?.addItem({ command: id, category: 'Code Pilot' });
    }
    app.commands.addKeyBinding({ command: RUN, keys: ['Accel Alt R'], selector: 'body' });
    app.commands.addKeyBinding({ command: STOP, keys: ['Accel Alt S'], selector: 'body' });
    statusBar?.registerStatusItem('@codepilot/lab:run-status', {
      item: new RunStatusWidget(model, () => showPanel()),
      align: 'left',
      rank: 3
    });
  }
};

const completeAsYouType: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:complete-as-you-type',
  description: 'Completion as you type in file editors opened after JupyterLab started.',
  autoStart: true,
  requires: [ICompletionProviderManager, IEditorTracker, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    manager: ICompletionProviderManager,
    editors: IEditorTracker,
    settings: ISettingRegistry
  ) => keepAutoCompletion(app.restored, manager, editors, settings)
};

const languageServerStatus: JupyterFrontEndPlugin<void> = {
  id: '@codepilot/lab:language-server-status',
  description: 'A language server that stopped for good, and why, in the status bar.',
  autoStart: true,
  requires: [IStatusBar, ILSPDocumentConnectionManager],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar,
    connections: ILSPDocumentConnectionManager
  ) => {
    const item = new LanguageServerStatusWidget(connections, app.serviceManager.serverSettings);
    statusBar.registerStatusItem('@codepilot/lab:language-server-status', {
      item,
      align: 'left',
      rank: 5,
      isActive: () => item.isActive,
      activeStateChanged: item.activeChanged
    });
  }
};

export default [
  syncStatus,
  preview,
  stoppedServer,
  projects,
  appRunning,
  run,
  completeAsYouType,
  languageServerStatus
];
