"""What the user server uses of jupyter-server, jupyter-server-terminals, terminado,
jupyterhub-singleuser and jupyter-lsp that they do not document as API.

Callers import these members from here only, never the upstream names themselves.
``tests/test_server_upstream_api.py`` checks the behaviour each one relies on, one named
test per use, so an upgrade that changes it fails there and not in a student's server.
"""

import asyncio

from jupyter_server.services.contents.fileio import FileManagerMixin

# What the checks were last made on; each lies in the range pyproject's runner allows.
CHECKED_VERSIONS = {
    "jupyter-server": "2.21.1",
    "jupyter-server-terminals": "0.5.4",
    "terminado": "0.18.1",
    "jupyterhub": "6.1.1",
    "jupyter-server-ydoc": "3.0.4",
    "jupyter-lsp": "2.3.1",
}


# --- jupyter-server: contents manager --------------------------------------------------


def os_path(contents_manager, api_path: str) -> str:
    """The absolute filesystem path of ``api_path`` under a file contents manager's root,
    joined as written: symlinks are not resolved; ``..`` out of the root is a 404.

    Checked on jupyter-server 2.14.0-2.21.1 (``FileManagerMixin._get_os_path``). If it
    drifts, the workspace managers no longer refuse paths that lead out of the workspace
    through a symlink, nor the renaming of its root.
    """
    return contents_manager._get_os_path(api_path)


class SavesOffTheEventLoop:
    """Mixin for an async file contents manager (listed before it): stock's saves, whole,
    in a worker thread.

    Stock's async ``_save_file`` and ``_save_notebook`` write in a thread, but copy the old
    file aside, flush and fsync twice on the event loop (``atomic_writing``). On a disk
    that classmates' installs keep busy an fsync waits for the journal, 0.1 s and more,
    and meanwhile the server answers nothing: not its terminals, not its other saves.
    This runs the blocking ``FileManagerMixin`` versions (the same decoding, atomic
    writing and fsyncs) in a thread.

    Checked on jupyter-server 2.14.0-2.21.1 (``save`` awaits ``_save_file`` and
    ``_save_notebook``; ``FileManagerMixin`` keeps blocking ones with the same
    arguments). If it drifts, saves block the event loop again, or fail loudly.
    """

    async def _save_file(self, os_path, content, format):
        await asyncio.to_thread(FileManagerMixin._save_file, self, os_path, content, format)

    async def _save_notebook(self, os_path, nb, capture_validation_error=None):
        await asyncio.to_thread(
            FileManagerMixin._save_notebook, self, os_path, nb, capture_validation_error
        )


# --- jupyter-server: extension apps and the server app ----------------------------------


class ExtensionHooks:
    """Mixin for an ``ExtensionApp`` (listed before it): jupyter-server's two private
    hooks, as ``linked_to_server`` and ``started_with_server``."""

    def _link_jupyter_server_extension(self, serverapp):
        """Runs ``linked_to_server`` while extensions are linked: after the app has read
        its config, before the server builds its contents manager and web app, and before
        any extension loads.

        Checked on jupyter-server 2.14.0-2.21.1. If it drifts, workspaces get the stock
        contents manager (no S3 mirror) and terminals the stock manager and shell.
        """
        super()._link_jupyter_server_extension(serverapp)
        self.linked_to_server(serverapp)

    async def _start_jupyter_server_extension(self, serverapp):
        """Awaits ``started_with_server`` once the server's event loop runs.

        Checked on jupyter-server 2.16.0-2.21.1 (older ones never call it; pyproject asks
        for 2.16). If it drifts, the workspace is never mirrored to S3 and SIGINT ends the
        server without its flush.
        """
        await self.started_with_server(serverapp)

    def linked_to_server(self, serverapp) -> None:
        """Override: set the server up before it builds its parts from its config."""

    async def started_with_server(self, serverapp) -> None:
        """Override: start what needs the server's event loop running."""


def extension_app_config(serverapp, name):
    """The extension app of the enabled server extension ``name``, once linked (it has
    read its config, it has not loaded); None when it is not installed or not enabled.
    Its traits and its ``config`` may still be changed: they are read when it loads.

    Checked on jupyter-server 2.16.0-2.21.1 (``ExtensionManager.extensions``,
    ``ExtensionPackage.extension_points``, ``ExtensionPoint.app``; extensions link in
    name order, all before any loads). If it drifts, collaboration keeps its document
    store in the workspace, which the sync pushes to S3.
    """
    package = serverapp.extension_manager.extensions.get(name)
    if package is None or not package.enabled:
        return None
    apps = [point.app for point in package.extension_points.values() if point.app]
    return apps[0] if apps else None


def skip_extension(serverapp, name) -> None:
    """Keep the linked server extension ``name`` from loading, starting and stopping, as
    if it were disabled in the config.

    Checked on jupyter-server 2.16.0-2.21.1 (``ExtensionManager.load_extension``,
    ``start_extension`` and ``stop_all_extensions`` skip a package whose ``enabled`` is
    false or that has no points). If it drifts, ``CODEPILOT_COLLABORATION=false`` leaves
    the collaboration's routes on the server.
    """
    package = serverapp.extension_manager.extensions.get(name)
    if package is not None:
        package.enabled = False
        package.extension_points = {}


def harden_collaboration_websocket(max_message_bytes: int) -> None:
    """Documents' websockets refuse a foreign ``Origin`` as every other websocket of the
    server does, and messages larger than ``max_message_bytes``.

    Checked on jupyter-server-ydoc 3.0.4: ``YDocWebSocketHandler.check_origin`` accepts
    every origin and its ``max_message_size`` is 1 GB (a property tornado reads for each
    message); jupyter-server 2.21.1's ``JupyterHandler.check_origin`` reads the request's
    own headers. If it drifts, a page of another origin (a student's preview, another
    student's IDE: the same site under one domain) can join a room with the cookies of
    a teacher who opens it, or a peer can make the server buffer up to 1 GB.
    """
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server_ydoc.handlers import YDocWebSocketHandler

    YDocWebSocketHandler.check_origin = JupyterHandler.check_origin
    YDocWebSocketHandler.max_message_size = max_message_bytes


def stop_signal_handler(serverapp):
    """The signal handler that stops ``serverapp`` the way SIGTERM does: cleanup, the
    extensions' ``stop_extension`` and the end of the process.

    Checked on jupyter-server 2.14.0-2.21.1 (``ServerApp._signal_stop``). If it drifts,
    a server stopped with SIGINT (the local spawner's first signal) skips its flush to S3.
    """
    return serverapp._signal_stop


# --- jupyter-server-terminals and terminado ---------------------------------------------


class TerminalOutputHook:
    """Mixin for a terminado terminal manager (listed before it): ``before_output`` runs
    before each read of a terminal's output reaches its websockets."""

    def pre_pty_read_hook(self, ptywclients):
        """Runs ``before_output(clients)`` with the terminal's websockets (tornado
        ``WebSocketHandler``), every attached one among them, before its next output is
        passed to them; the manager's own hook runs first.

        Checked on terminado 0.18.0-0.18.1 (``pre_pty_read_hook``,
        ``PtyWithClients.clients``) and jupyter-server-terminals 0.5.0-0.5.4 (whose hook
        counts activity for the culler). If it drifts, terminal echo waits on Nagle's
        algorithm again (about 40 ms per command line), or terminals stop counting
        activity.
        """
        super().pre_pty_read_hook(ptywclients)
        self.before_output(ptywclients.clients)

    def before_output(self, clients) -> None:
        """Override: act on a terminal's websockets before its next output reaches them."""


def terminal_extra_env(terminal_manager) -> dict:
    """The variables every new terminal of ``terminal_manager`` gets, as a dict to update:
    a change applies to the terminals opened after it.

    Checked on terminado 0.18.0-0.18.1 (``TermManagerBase.extra_env``) and
    jupyter-server-terminals 0.5.0-0.5.4 (which makes it a dict). If it drifts,
    terminals get no ``PORT`` and ``CODEPILOT_PREVIEW_*``: apps started there serve
    where the preview does not look.
    """
    return terminal_manager.extra_env


def terminal_manager(serverapp):
    """The terminal manager of ``serverapp``'s terminals extension; None when terminals are
    disabled. Extensions load in name order, so one named after ``jupyter_server_terminals``
    finds it when its own settings are initialized.

    Checked on jupyter-server-terminals 0.5.0-0.5.4 (the web app's ``terminal_manager``
    setting). If it drifts, the server logs that terminals are disabled and terminals
    get no preview variables.
    """
    return serverapp.web_app.settings.get("terminal_manager")


def start_named_terminal(terminal_manager, name, argv, cwd, env, scrollback):
    """Start terminal ``name`` running ``argv`` (not the shell) in ``cwd`` with ``env``
    added to a terminal's environment, its recent output kept in ``scrollback`` (a deque
    whose ``copy()`` terminado replays to each websocket that attaches); returns it.

    Checked on jupyter-server-terminals 0.5.0-0.5.4 (``TerminalManager.create`` passes its
    arguments on) and terminado 0.18.0-0.18.1 (``new_named_terminal`` takes ``name``,
    ``shell_command``, ``cwd``, ``extra_env``; ``PtyWithClients.read_buffer``, appended on
    each read and copied for each websocket that attaches). If it drifts, the Run button
    starts a shell instead of the run command, or a run's output grows without bound.
    """
    terminal_manager.create(name=name, shell_command=argv, cwd=cwd, extra_env=env)
    terminal = terminal_manager.terminals[name]
    # Before the event loop gives terminado its first read of this terminal.
    scrollback.extend(terminal.read_buffer)
    terminal.read_buffer = scrollback
    return terminal


def serve_terminal_websockets(web_app, socket_class) -> bool:
    """Serve ``/terminals/websocket/<name>`` with ``socket_class``, a subclass of
    jupyter-server-terminals' ``TermSocket``; False when there is no such route
    (terminals disabled). Call once the terminals extension has loaded.

    Checked on jupyter-server-terminals 0.5.0-0.5.4 (the extension routes its websocket to
    ``handlers.TermSocket`` as it loads) and tornado 6.6.1 (``Application.default_router``
    holds a rule per ``add_handlers`` call, whose ``target`` router holds a ``Rule`` per
    route, read on each request). If it drifts, a viewer that does not read makes the
    server buffer a terminal's output without bound.
    """
    from jupyter_server_terminals.handlers import TermSocket

    for host_rule in web_app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", ()):
            if rule.target is TermSocket:
                rule.target = socket_class
                return True
    return False


def terminal_viewers(terminal) -> list:
    """The websockets attached to a terminal now.

    Checked on terminado 0.18.0-0.18.1 (``PtyWithClients.clients``, appended to as a
    websocket opens, removed from as it closes). If it drifts, the run's API shows no
    viewers.
    """
    return list(terminal.clients)


def named_terminal(terminal_manager, name):
    """The live terminal ``name`` of ``terminal_manager``, or None: terminado drops a
    terminal once its pty closed (its process ended), after reaping the process.

    Checked on terminado 0.18.0-0.18.1 (``NamedTermManager.terminals``, ``on_eof``). If
    it drifts, a run that ended shows as running.
    """
    return terminal_manager.terminals.get(name)


def terminal_pid(terminal) -> int:
    """The pid of a terminal's first process, which leads a session of its own.

    Checked on terminado 0.18.0-0.18.1 (``PtyWithClients.ptyproc``, a ptyprocess
    ``PtyProcess`` started with ``setsid``). If it drifts, Stop cannot find the run's
    processes.
    """
    return terminal.ptyproc.pid


def terminal_exit_status(terminal) -> tuple[int | None, int | None]:
    """(exit code, signal) of a terminal whose process has ended and been reaped (the
    terminal was dropped by its manager); (None, None) when not known.

    Checked on terminado 0.18.0-0.18.1 (``on_eof`` closes the ``PtyProcess``, which reaps
    the child) and ptyprocess 0.7 (``exitstatus``, ``signalstatus``). If it drifts, a
    crashed run says ``Crashed`` without its exit code.
    """
    process = terminal.ptyproc
    return process.exitstatus, process.signalstatus


# --- jupyterhub-singleuser ----------------------------------------------------------------


def hub_model(current_user) -> dict:
    """The hub's model of the signed-in user (``name``, ``admin``, ``groups``...) behind a
    handler's ``current_user`` in a server run by jupyterhub-singleuser; {} elsewhere.

    Checked on jupyterhub 5.3.0-6.1.1 (``JupyterHubUser.hub_user``). If it drifts, nobody
    is the server's owner: its owner can neither share the preview nor manage projects.
    """
    return getattr(current_user, "hub_user", None) or {}


# --- jupyter-lsp ---------------------------------------------------------------------------


def language_server_manager(serverapp):
    """jupyter-lsp's ``LanguageServerManager`` of this server, or None when jupyter-lsp did
    not load.

    Checked on jupyter-lsp 2.3.1 (``serverapp.language_server_manager``, set as it loads).
    If it drifts, a language server that crashes is neither restarted nor reported.
    """
    return getattr(serverapp, "language_server_manager", None)


async def language_server_sessions(manager) -> dict:
    """The manager's sessions by language server name, once it made them (lazily, in a
    thread, after the server started).

    Checked on jupyter-lsp 2.3.1 (``ready()``, ``sessions``). If it drifts, crashes are
    not watched.
    """
    await manager.ready()
    return dict(manager.sessions)


def session_process(session):
    """The ``Popen`` of a session's language server: set (an observable trait) when
    jupyter-lsp starts it, None once jupyter-lsp stops it; it stays set when the process
    dies on its own.

    Checked on jupyter-lsp 2.3.1 (``LanguageServerSession.process``). If it drifts, crashes
    are not seen.
    """
    return session.process


def session_websockets(session) -> list:
    """The editors' websockets (tornado ``WebSocketHandler``) that a session answers.

    Checked on jupyter-lsp 2.3.1 (``LanguageServerSession.handlers``, an observable trait
    that is empty once the last one closed). If it drifts, editors are not told of a crash.
    """
    return list(session.handlers)


def restart_session(session) -> None:
    """Stop what is left of a session's language server and start a fresh one, behind the
    same websockets; messages then reach the fresh process.

    Checked on jupyter-lsp 2.3.1 (``LanguageServerSession.initialize``). If it drifts, a
    crashed language server stays dead until the editors reconnect.
    """
    session.initialize()


def stop_session(session) -> None:
    """Stop a session's language server, as jupyter-lsp does when the last editor leaves.

    Checked on jupyter-lsp 2.3.1 (``LanguageServerSession.stop``).
    """
    session.stop()


def send_to_language_server(session, message: str) -> None:
    """Queue a JSON-RPC message for a session's language server, after those queued.

    Checked on jupyter-lsp 2.3.1 (``LanguageServerSession.write``). If it drifts, a
    restarted language server does not know the open documents.
    """
    session.write(message)
