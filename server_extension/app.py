"""The ``CodePilot`` extension app: settings, terminal environment and routes."""

import asyncio
import getpass
import os
import signal

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode, default

from codepilot_contracts import defaults
from codepilot_contracts.env import env_name

from .appport import ServerPorts, app_status_handler
from .codeintel import configure_language_servers, hide_frontend, use_lab_defaults
from .codeintel.handlers import LANGUAGE_SERVERS_PATH, LanguageServersHandler
from .codeintel.watchdog import LanguageServerWatchdog
from .collaboration import configure_collaboration, page_config_hook_without_collaboration
from .envconfig import EnvDefaultsMixin
from .extensionmanager import use_read_only_extension_manager
from .preview import preview_handlers
from .projects import project_handlers
from .run.handlers import project_run, run_handlers
from .run.runner import RUN_TERMINAL
from .storage import wiring
from .storage.handlers import SYNC_STATUS_PATH, SyncStatusHandler
from .storage.location import WorkspaceLocation
from .terminals import WorkspaceTerminalManager, configure_terminals
from .terminalsocket import BACKLOG_SETTING, DEFAULT_BACKLOG_BYTES, WorkspaceTermSocket
from .upstream import (
    ExtensionHooks,
    language_server_manager,
    serve_terminal_websockets,
    stop_signal_handler,
    terminal_extra_env,
    terminal_manager,
)

# Seconds a stop may take beyond ``sync_flush_timeout``: snapshots, the manifest, closing.
STOP_MARGIN = 3.0


class CodePilot(ExtensionHooks, EnvDefaultsMixin, ExtensionApp):
    """Code Pilot workspace features for one user server.

    Every setting is ``c.CodePilot.<name>`` or the ``CODEPILOT_<NAME>`` environment
    variable, which is how the spawners pass them.
    """

    name = "codepilot"
    load_other_extensions = True

    preview_port = Int(
        defaults.PREVIEW_PORT,
        help="""Port where the user's web app listens (``npm run dev``, ``flask run``);
        terminals get it as ``PORT`` and ``CODEPILOT_PREVIEW_PORT``. 3000 in a pod and in
        a server's own network namespace on one machine; without isolation the
        one-machine spawner picks a free port per server.""",
    ).tag(config=True)

    terminal_backlog_bytes = Int(
        DEFAULT_BACKLOG_BYTES,
        help="""Bytes of a terminal's output (the Run panel's too) the server holds for one
        viewer that has not taken them yet (a stalled tab, a slow network). Output beyond
        that is not sent to it: it is closed with code 4002 and reattaches, getting the
        terminal's recent output. Viewers that keep up are not affected.""",
    ).tag(config=True)

    preview_url = Unicode(
        "",
        help="""URL of this server's preview, on an origin of its own
        (``http://<label>.preview.localhost:8002/``), set by the spawner. The app is
        served there at ``/``, so dev servers need no base path; ``<server url>/preview/``
        redirects there.""",
    ).tag(config=True)

    preview_api_url = Unicode(
        "",
        help="""Base URL of the preview gateway's API, where this server reads and sets its
        preview's share level with its own token; set by the spawner.""",
    ).tag(config=True)

    storage = CaselessStrEnum(
        ["local", "sync", "s3"],
        default_value=None,
        allow_none=True,
        help="""Where the workspace lives. ``local``: on this server's disk only.
        ``sync``: on disk, where terminals see it, and mirrored to S3; a save is
        acknowledged only once S3 holds it, and a watcher mirrors files that terminal
        processes make. ``s3``: in S3 only, through s3contents' S3ContentsManager, for
        notebook-only classes; terminals do NOT see those files. Unset: ``sync`` when
        ``s3_bucket`` is set, ``local`` otherwise. All modes share one bucket layout, so
        a workspace can switch between them.""",
    ).tag(config=True)

    s3_bucket = Unicode(
        "",
        help="""S3 bucket of workspaces and starters. Credentials come from the
        standard AWS chain (environment, profile, web identity, instance role).""",
    ).tag(config=True)

    s3_prefix = Unicode(
        defaults.S3_PREFIX,
        help="""Key prefix inside the bucket (empty: the bucket's root): a workspace is
        ``<prefix>/users/<user>/<server or "default">/``, a starter
        ``<prefix>/templates/<name>/`` (``templates``: the starters folder's stored
        name).""",
    ).tag(config=True)

    s3_endpoint_url = Unicode(
        "",
        help="""S3 endpoint URL, for MinIO or another S3 API. Empty: AWS, or the standard
        ``AWS_ENDPOINT_URL_S3`` variable.""",
    ).tag(config=True)

    s3_region = Unicode(
        defaults.S3_REGION,
        help="S3 region. Empty: the standard AWS configuration (``AWS_REGION``).",
    ).tag(config=True)

    credentials_url = Unicode(
        "",
        help="""The hub's credential broker, where this server renews its short-lived S3
        credentials with its own API token before they expire; set by the spawner when
        the hub mints per-user credentials. Empty: S3 credentials from the standard AWS
        chain, which do not expire.""",
    ).tag(config=True)

    starter = Unicode(
        "",
        help="""Starter copied into a new workspace (one with nothing in S3 yet) by the
        restore command: ``python``, ``flask``, ``node-express``, ``react-vite``, or any
        folder under ``<prefix>/templates/``. Empty: start with an empty workspace.""",
    ).tag(config=True)

    workspace_user = Unicode(
        help="""User name in the workspace's S3 key. Defaults to ``JUPYTERHUB_USER``, or
        the Unix user when the server runs without a hub.""",
    ).tag(config=True)

    @default("workspace_user")
    def _default_workspace_user(self):
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()

    workspace_server = Unicode(
        help="""Server name in the workspace's S3 key; empty means ``default``. Defaults
        to ``JUPYTERHUB_SERVER_NAME``.""",
    ).tag(config=True)

    @default("workspace_server")
    def _default_workspace_server(self):
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    sync_flush_timeout = Float(
        4.0,
        help="""Seconds a stopping server (the hub's Stop and the culler, which send
        SIGINT; SIGTERM, as a pod gets) spends pushing what is still pending to S3;
        anything left is logged by name. The whole stop takes at most a few seconds
        more. Keep it below the time the spawner waits before it escalates
        (JupyterHub's ``Spawner.interrupt_timeout``, a pod's grace period).""",
    ).tag(config=True)

    sync_sweep_interval = Float(
        60.0,
        help="""Seconds between two sweeps of the workspace (a stat per file) that push what
        no file event announces: writes through a memory map (numpy.memmap), an edit
        through another name of a hard-linked file.""",
    ).tag(config=True)

    sync_stall_timeout = Float(
        60.0,
        help="""Seconds pending sync work may go without any push finishing before the
        sync counts as stalled: the log gets a warning and ``/codepilot/api/sync`` says
        ``"state": "stalled"`` until pushes go through again.""",
    ).tag(config=True)

    sync_save_timeout = Float(
        10.0,
        help="""Seconds an editor save (and an upload, rename, copy, delete or new folder)
        waits for S3: it then answers 503 naming S3, whether S3 fails, hangs or its
        credentials cannot be renewed; the local copy is kept and pushed once S3
        answers.""",
    ).tag(config=True)

    restore_empty_prefix = CaselessStrEnum(
        ["refuse", "push"],
        default_value="refuse",
        help="""What the workspace restore at a start does when S3 holds nothing at all
        where the workspace's manifest says it was synced (an emptied bucket, a lifecycle
        rule, a new endpoint): ``refuse`` fails the start with a message naming the
        endpoint and prefix and keeps every local file; ``push`` keeps the local files as
        new ones, which the server then pushes. Read by the restore command.""",
    ).tag(config=True)

    project_limit = Int(
        0,
        help="""How many projects (named servers) the hub lets this server's owner have
        (``JupyterHub.named_server_limit_per_user``; 0: no limit), set by the spawner. The
        project switcher says a name is refused for it as the name is typed; the hub
        enforces it.""",
    ).tag(config=True)

    code_intelligence = Bool(
        True,
        help="""Completion, errors as you type, hover and go-to-definition in the editor:
        jupyter-lsp starts pylsp or typescript-language-server, as this server's user and
        in its sandbox, when a file of that language is first opened. False: no language
        server starts and JupyterLab loads without jupyterlab-lsp.""",
    ).tag(config=True)

    collaboration = Bool(
        True,
        help="""Real-time collaboration (jupyter-collaboration): everyone who opens this
        server (its owner, a teacher) edits the same open files live, with each other's
        cursors named by their hub user names. Its document store lives in the
        workspace's never-synced ``.codepilot/`` folder. False: neither its server
        extensions nor its JupyterLab plugins load, and the last save wins.""",
    ).tag(config=True)

    language_server_restarts = Int(
        1,
        help="""How many times a language server that crashes (pylsp,
        typescript-language-server) is restarted within
        ``language_server_restart_window``, behind the editors' open connection, so
        completion and underlines come back by themselves. One more crash stops it: the
        status bar says so and why, and the editor works on without it until a page opens
        a file of its language afresh (a reload). 0: never restarted.""",
    ).tag(config=True)

    language_server_restart_window = Float(
        300.0,
        help="""Seconds over which ``language_server_restarts`` counts restarts.""",
    ).tag(config=True)

    @property
    def storage_mode(self) -> str:
        return wiring.resolve_mode(self.storage, self.s3_bucket)

    @property
    def workspace_location(self) -> WorkspaceLocation | None:
        """Where the workspace lives in S3, from these settings; None in ``local`` mode."""
        if self.storage_mode == "local":
            return None
        return WorkspaceLocation.of_workspace(
            self.s3_bucket,
            self.s3_prefix,
            self.workspace_user,
            self.workspace_server,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            credentials_url=self.credentials_url,
        )

    def preview_environment(self) -> dict[str, str]:
        """Variables that tell processes started in a terminal where to serve."""
        return {
            "PORT": str(self.preview_port),
            env_name("preview_port"): str(self.preview_port),
            env_name("preview_url"): self.preview_url,
        }

    def linked_to_server(self, serverapp):
        configure_terminals(serverapp)
        use_read_only_extension_manager(serverapp)
        # Extensions are linked, not loaded yet: jupyter-lsp reads these when it loads.
        configure_language_servers(serverapp.config, self.code_intelligence, serverapp.root_dir)
        if self.code_intelligence:
            use_lab_defaults()
        configure_collaboration(serverapp, self.collaboration, self.log)
        # The server builds its contents manager right after linking, from these settings.
        choice = wiring.contents_manager_choice(
            self.storage_mode, self.workspace_location, self.sync_save_timeout
        )
        wiring.configure_contents_manager(serverapp, choice, self.log)

    @property
    def workspace_sync(self):
        """The S3 mirror of the workspace in ``sync`` mode, else None."""
        return getattr(self.serverapp.contents_manager, "workspace_sync", None)

    def storage_status(self) -> dict:
        sync = self.workspace_sync
        if sync is not None:
            return sync.status_model()
        mode = self.storage_mode
        status = {"storage": mode, "pending": 0, "last_error": None, "last_success": None}
        if mode == "s3":
            status["location"] = self.workspace_location.url
        return status

    def _stop_on_sigint(self, serverapp) -> None:
        """Make SIGINT stop the server as SIGTERM does, cleanup and flush included.

        JupyterHub's local spawner stops a server with SIGINT first. jupyter-server
        handles SIGINT only when stdin is a terminal, so a spawned server got Python's
        KeyboardInterrupt, which ends the event loop without any cleanup: no flush.
        """
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, stop_signal_handler(serverapp))

    async def started_with_server(self, serverapp):
        self._stop_on_sigint(serverapp)
        # JupyterLab plugins left out, once every extension has loaded: JupyterHub's
        # extension sets its own page config hook as it initializes, after this one's
        # settings. Before any await, so before the event loop serves a request.
        settings = serverapp.web_app.settings
        if not self.collaboration:
            settings["page_config_hook"] = page_config_hook_without_collaboration(
                settings.get("page_config_hook")
            )
        if not self.code_intelligence:
            hide_frontend(settings)
        elif self.language_server_watchdog is not None:
            self._watchdog_task = asyncio.create_task(
                self.language_server_watchdog.watch(), name="codepilot-lsp-watchdog"
            )
        sync = self.workspace_sync
        if sync is None:
            return
        from .storage.watcher import watch_workspace

        sync.stall_timeout = self.sync_stall_timeout
        from .storage.keeper import WorkspaceKeeper, dependency_snapshots

        self._keeper = WorkspaceKeeper(sync, dependency_snapshots(sync, parent=self))
        self._keeper.start()
        self._watch_stop = asyncio.Event()
        self._watch_task = asyncio.create_task(
            watch_workspace(sync, self._watch_stop, sweep_seconds=self.sync_sweep_interval),
            name="codepilot-watcher",
        )
        self.log.info("Code Pilot: mirroring %s to %s", sync.root, sync.location)

    async def stop_extension(self):
        """End the run, then flush the workspace, once, however many stop signals come;
        never raises, so jupyter-server's cleanup always goes on to end the process."""
        if getattr(self, "language_server_watchdog", None) is not None:
            self.language_server_watchdog.close()  # their ends now are no crash
        if getattr(self, "project_run", None) is not None:
            await self.project_run.stop_with_server()
        sync = self.workspace_sync
        if sync is None:
            return
        if getattr(self, "_flushing", None) is None:
            self._flushing = asyncio.ensure_future(self._flush_at_stop(sync))
        await asyncio.shield(self._flushing)

    async def _flush_at_stop(self, sync) -> None:
        try:
            # The flush bounds its pushes; this bounds the rest (snapshots, the manifest).
            await asyncio.wait_for(self._flush(sync), self.sync_flush_timeout + STOP_MARGIN)
        except Exception:
            self.log.exception("Code Pilot: the flush at stop failed; local files are kept")

    async def _flush(self, sync) -> None:
        if getattr(self, "_watch_stop", None) is not None:
            self._watch_stop.set()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        keeper = getattr(self, "_keeper", None)
        if keeper is None:  # stopped before it started: files only
            from .storage.keeper import WorkspaceKeeper

            keeper = WorkspaceKeeper(sync)
        left = await keeper.stop(self.sync_flush_timeout)
        if left:
            self.log.error(
                "Code Pilot: could not push to S3 before stopping (kept on local disk): %s",
                ", ".join(left),
            )
        else:
            self.log.info("Code Pilot: workspace flushed to %s", sync.location)

    def initialize_settings(self):
        # jupyter_server_terminals loads before us (extensions load in name order), so its
        # manager exists; a server with terminals disabled has none.
        terminals = terminal_manager(self.serverapp)
        if terminals is None:
            self.log.warning("Code Pilot: terminals are disabled on this server")
        else:
            if not isinstance(terminals, WorkspaceTerminalManager):
                self.log.warning(
                    "Code Pilot: terminal manager is %s, not WorkspaceTerminalManager; "
                    "terminal echo will be delayed by Nagle's algorithm",
                    type(terminals).__name__,
                )
            terminal_extra_env(terminals).update(self.preview_environment())
            if not serve_terminal_websockets(self.serverapp.web_app, WorkspaceTermSocket):
                self.log.warning(
                    "Code Pilot: no terminal websocket route; a viewer that does not read "
                    "makes the server buffer a terminal's output without bound"
                )
        self.settings[BACKLOG_SETTING] = self.terminal_backlog_bytes
        self.log.info(
            "Code Pilot: workspace %s (storage %s), app on port %s, preview at %s",
            self.serverapp.root_dir,
            self.storage_mode,
            self.preview_port,
            self.preview_url or "(no preview URL)",
        )

    def initialize_handlers(self):
        self.handlers.extend(preview_handlers(self.preview_url, self.preview_api_url))
        self.handlers.extend(project_handlers(self.project_limit, self.storage_mode))
        self.project_run = project_run(self.serverapp, self.preview_port, self)
        ports = ServerPorts(lambda: {self.serverapp.port}, self.project_run.process_ids)
        self.handlers.append(app_status_handler(self.preview_port, ports, self.preview_url))
        terminals = terminal_manager(self.serverapp)
        if isinstance(terminals, WorkspaceTerminalManager):
            # Before terminado's own ending of it, as the server stops and from the API.
            terminals.end_with(RUN_TERMINAL, self.project_run.stop_with_server)
        self.handlers.extend(run_handlers(self.project_run))
        self.handlers.append(
            (SYNC_STATUS_PATH, SyncStatusHandler, {"status_source": self.storage_status})
        )
        self.language_server_watchdog = self._language_server_watchdog()
        self.handlers.append(
            (
                LANGUAGE_SERVERS_PATH,
                LanguageServersHandler,
                {"stopped_source": self.stopped_language_servers},
            )
        )

    def _language_server_watchdog(self):
        """A watchdog over jupyter-lsp's sessions (loaded before this extension, by name),
        or None when code intelligence is off or jupyter-lsp did not load."""
        manager = language_server_manager(self.serverapp)
        if not self.code_intelligence or manager is None:
            return None
        return LanguageServerWatchdog(
            manager,
            self.language_server_restarts,
            self.language_server_restart_window,
            self.log,
        )

    def stopped_language_servers(self) -> dict:
        watchdog = self.language_server_watchdog
        return dict(watchdog.stopped) if watchdog is not None else {}
