"""What the user server relies on in the installed jupyter-server, jupyter-server-terminals,
terminado, jupyterhub-singleuser and jupyter-lsp.

``server_extension/upstream.py`` names what those projects do not document as API. Each
test exercises the installed package and checks the behaviour the server relies on, one
test per use, so an upgrade that breaks it fails here, by name, and not in a student's
server. Most run on one jupyter-server initialized in this process with a probe
extension (tests/apps/upstream_probe.py) that uses the hooks as ``CodePilot`` does.
"""

import asyncio
import os
import signal
import time
import tomllib
from importlib.metadata import version

import nbformat
import pytest
from jupyter_lsp import LanguageServerManager, lsp_message_listener
from jupyter_server.auth import User
from jupyter_server.serverapp import ServerApp
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server_terminals.handlers import TermSocket
from jupyter_server_terminals.terminalmanager import TerminalManager
from packaging.requirements import Requirement
from tornado import web
from tornado.httputil import HTTPServerRequest
from tornado.websocket import WebSocketHandler
from traitlets.config import Config

from server_extension import upstream

from .apps.upstream_probe import ProbeContentsManager, ProbeTerminalManager, UpstreamProbe
from .support.paths import REPO_ROOT

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
EXTENSIONS = ("jupyter_lsp", "jupyter_server_terminals", "tests.apps.upstream_probe")


def test_the_checked_versions_are_named():
    # Not a pin: what the comments and checks were made on, in the range the server
    # side declares.
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["optional-dependencies"]["runner"]
    runner = {requirement.name: requirement.specifier for requirement in map(Requirement, declared)}
    for package, checked in upstream.CHECKED_VERSIONS.items():
        assert checked.count(".") == 2, package
        assert version(package), package
        assert runner[package].contains(checked), (package, checked)


# --- the contents manager --------------------------------------------------------------


def test_os_path_joins_the_path_as_written_under_the_root(tmp_path):
    root = tmp_path / "workspace"
    (root / "src").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)  # a symlink out of the workspace
    manager = AsyncLargeFileManager(root_dir=str(root))
    assert upstream.os_path(manager, "") == str(root)
    assert upstream.os_path(manager, "src/app.py") == str(root / "src" / "app.py")
    # Not resolved: the path through the symlink stays under the root.
    assert upstream.os_path(manager, "out/secret") == str(root / "out" / "secret")
    with pytest.raises(web.HTTPError) as refused:
        upstream.os_path(manager, "../secret")
    assert refused.value.status_code == 404


class OffTheLoopManager(upstream.SavesOffTheEventLoop, AsyncLargeFileManager):
    pass


SLOW_FSYNC_S = 0.3  # a disk that classmates' installs keep busy


async def longest_stall(work) -> tuple[float, object]:
    """The event loop's longest pause (s) while ``work`` runs, and what it returned."""
    stalls, running = [0.0], True

    async def ticker():
        last = asyncio.get_running_loop().time()
        while running:
            await asyncio.sleep(0.01)
            now = asyncio.get_running_loop().time()
            stalls.append(now - last)
            last = now

    ticks = asyncio.create_task(ticker())
    try:
        result = await work
    finally:
        running = False
        await ticks
    return max(stalls), result


@pytest.mark.parametrize("kind", ["file", "notebook"])
def test_saves_run_stocks_blocking_writer_in_a_thread(tmp_path, monkeypatch, kind):
    real_fsync = os.fsync

    def slow_fsync(fd):
        time.sleep(SLOW_FSYNC_S)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    if kind == "file":
        model, name = {"type": "file", "format": "text", "content": "print(1)\n"}, "app.py"
    else:
        model, name = {"type": "notebook", "content": nbformat.v4.new_notebook()}, "a.ipynb"
    (tmp_path / name).write_text("old")
    (tmp_path / name).chmod(0o750)
    stalls = {}
    for manager in (
        AsyncLargeFileManager(root_dir=str(tmp_path)),
        OffTheLoopManager(root_dir=str(tmp_path)),
    ):
        stalls[type(manager)], saved = asyncio.run(longest_stall(manager.save(dict(model), name)))
        assert saved["name"] == name
    # Stock copies the old file aside and fsyncs twice on the event loop; ours does the
    # same in a thread, and the loop keeps answering.
    assert stalls[AsyncLargeFileManager] >= SLOW_FSYNC_S
    assert stalls[OffTheLoopManager] < SLOW_FSYNC_S / 2
    written = (tmp_path / name).read_text()
    assert written == "print(1)\n" if kind == "file" else nbformat.reads(written, 4).cells == []
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o750  # written in place, as stock
    assert not list(tmp_path.glob(".~*"))  # stock's copy of the old file is gone


def test_a_save_that_fails_off_the_loop_keeps_the_old_file(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"old")
    manager = OffTheLoopManager(root_dir=str(tmp_path))
    model = {"type": "file", "format": "base64", "content": "not base64!"}
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(manager.save(model, "data.bin"))
    assert refused.value.status_code == 400
    assert (tmp_path / "data.bin").read_bytes() == b"old"


# --- a server app and its extensions ---------------------------------------------------


# Initializing a server app starts a process (jupyter-server's sysinfo runs git).
with_serverapp = pytest.mark.integration


@pytest.fixture(scope="module")
def serverapp(tmp_path_factory):
    """A jupyter-server initialized in this process (not listening) with the terminals
    extension and the probe; signal handlers as they were afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    root = tmp_path_factory.mktemp("root")
    UpstreamProbe.seen.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path_factory.mktemp("runtime")))
        app = ServerApp(
            config=Config({"UpstreamProbe": {"marker": "from config"}}),
            jpserver_extensions=dict.fromkeys(EXTENSIONS, True),
            root_dir=str(root),
            open_browser=False,
            log_level="ERROR",
        )
        try:
            app.initialize(argv=[], find_extensions=False, new_httpserver=False)
            yield app
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
            ServerApp.clear_instance()


@with_serverapp
def test_the_link_hook_runs_after_config_and_before_the_contents_manager(serverapp):
    seen = UpstreamProbe.seen
    assert seen["marker at link"] == "from config"
    assert seen["contents manager at link"] is None
    assert type(serverapp.contents_manager) is ProbeContentsManager  # set at link


@with_serverapp
def test_the_link_hook_runs_before_the_terminals_extension_makes_its_manager(serverapp):
    assert isinstance(upstream.terminal_manager(serverapp), ProbeTerminalManager)


@with_serverapp
def test_a_later_extension_finds_the_terminal_manager_in_the_web_app_settings(serverapp):
    found = UpstreamProbe.seen["terminal manager"]
    (terminals_app,) = serverapp.extension_manager.extension_apps["jupyter_server_terminals"]
    assert found is terminals_app.terminal_manager
    assert found is upstream.terminal_manager(serverapp)
    extra_env = upstream.terminal_extra_env(found)
    assert isinstance(extra_env, dict)
    assert extra_env["JUPYTER_SERVER_ROOT"] == serverapp.root_dir


@with_serverapp
async def test_the_start_hook_is_awaited_once_the_loop_runs(serverapp):
    # What the server app awaits once its event loop runs (ServerApp._post_start).
    await serverapp.extension_manager.start_all_extensions()
    assert UpstreamProbe.seen["started in"] is asyncio.get_running_loop()


@with_serverapp
def test_the_stop_signal_handler_stops_the_server_as_sigterm_does(serverapp, monkeypatch):
    handler = upstream.stop_signal_handler(serverapp)
    assert signal.getsignal(signal.SIGTERM) == handler  # what the server set for SIGTERM
    stops = []
    monkeypatch.setattr(serverapp, "stop", lambda **kwargs: stops.append(kwargs))
    handler(signal.SIGINT, None)
    assert stops == [{"from_signal": True}]


# --- terminals --------------------------------------------------------------------------


class FakeWebSocket:
    """What terminado calls on an attached websocket."""

    size = (None, None)

    def __init__(self):
        self.output: list[str] = []

    def on_pty_read(self, text):
        self.output.append(text)

    def on_pty_died(self):
        pass


@pytest.mark.integration
async def test_the_output_hook_sees_each_attached_websocket_before_output_reaches_it():
    manager = ProbeTerminalManager(shell_command=["sh", "-c", "read line; echo out-$line"])
    try:
        name = manager.create()["name"]
        terminal = manager.get_terminal(name)
        websocket = FakeWebSocket()
        terminal.clients.append(websocket)  # as terminado's TermSocket.open attaches
        assert upstream.terminal_viewers(terminal) == [websocket]
        activity = terminal.last_activity
        terminal.ptyproc.write("go\n")
        for _ in range(100):
            if "out-go" in "".join(websocket.output):
                break
            await asyncio.sleep(0.05)
        assert "out-go" in "".join(websocket.output)
        # Before the first output reached it, the hook had it, with nothing received.
        first = next(clients for clients in manager.before_outputs if clients)
        assert first == [(websocket, 0)]
        assert all(clients == [(websocket, n)] for n, clients in enumerate(manager.before_outputs))
        # jupyter-server-terminals' own hook still runs: activity is counted.
        assert terminal.last_activity > activity
    finally:
        await manager.terminate_all()
        await manager.shutdown()


@with_serverapp
def test_terminal_websockets_are_served_by_the_class_the_route_is_given(serverapp):
    class ProbeTermSocket(TermSocket):
        pass

    route = f"{serverapp.base_url}terminals/websocket/1"
    found = serverapp.web_app.find_handler(HTTPServerRequest(method="GET", uri=route))
    assert found.handler_class is TermSocket
    assert upstream.serve_terminal_websockets(serverapp.web_app, ProbeTermSocket)
    found = serverapp.web_app.find_handler(HTTPServerRequest(method="GET", uri=route))
    assert found.handler_class is ProbeTermSocket
    # Its initialize gets what the extension routed to it.
    assert found.handler_kwargs["term_manager"] is upstream.terminal_manager(serverapp)


def test_extra_env_reaches_the_terminals_opened_after_a_change():
    manager = TerminalManager(shell_command=["sh"], extra_env={"JUPYTER_SERVER_ROOT": "/work"})
    upstream.terminal_extra_env(manager).update(PORT="3000")
    env = manager.make_term_env()  # what each new terminal starts with
    assert (env["PORT"], env["JUPYTER_SERVER_ROOT"]) == ("3000", "/work")


# --- jupyterhub-singleuser --------------------------------------------------------------


def test_the_hub_model_is_behind_the_current_user_of_a_singleuser_server():
    from jupyterhub.singleuser.extension import JupyterHubUser

    model = {"name": "ana", "admin": False, "groups": ["class-a"], "kind": "user"}
    assert upstream.hub_model(JupyterHubUser(model)) == model
    assert upstream.hub_model(User(username=os.environ.get("USER", "someone"))) == {}
    assert upstream.hub_model(None) == {}


# --- jupyter-server-ydoc ------------------------------------------------------------------


def test_documents_websockets_take_the_servers_origin_check_and_a_message_cap():
    import inspect

    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server_ydoc.handlers import YDocWebSocketHandler
    from tornado.websocket import WebSocketHandler, WebSocketProtocol13

    # tornado asks the handler for both, per connection and per message.
    assert "self.check_origin" in inspect.getsource(WebSocketHandler.get)
    assert "max_message_size" in inspect.getsource(WebSocketProtocol13)
    before = (YDocWebSocketHandler.check_origin, YDocWebSocketHandler.max_message_size)
    try:
        upstream.harden_collaboration_websocket(1234)
        assert YDocWebSocketHandler.check_origin is JupyterHandler.check_origin
        assert YDocWebSocketHandler.max_message_size == 1234
    finally:
        YDocWebSocketHandler.check_origin, YDocWebSocketHandler.max_message_size = before


# --- jupyter-lsp ------------------------------------------------------------------------


@with_serverapp
def test_jupyter_lsp_leaves_its_manager_on_the_server_app(serverapp):
    assert isinstance(upstream.language_server_manager(serverapp), LanguageServerManager)


class ProbeLspSocket(WebSocketHandler):
    """An editor's websocket as jupyter-lsp's session holds it (a ``WebSocketHandler``)."""

    def __init__(self, language_server):
        self.language_server = language_server
        self.received = []

    def write_message(self, message, binary=False):
        self.received.append(message)


async def wait_for(condition, what, seconds=10.0):
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


@pytest.mark.integration
async def test_a_session_keeps_a_dead_process_and_restarts_behind_the_same_websockets():
    # ``cat`` as the language server: what it is sent comes back to the editors.
    spec = {"argv": ["cat"], "languages": ["echo"], "version": 2, "display_name": "echo"}
    manager = LanguageServerManager(language_servers={"echo": spec}, autodetect=False)
    manager.initialize()
    heard = []

    async def listener(scope, message, language_server, manager):
        heard.append((scope, message["method"]))

    lsp_message_listener("client")(listener)
    session = (await upstream.language_server_sessions(manager))["echo"]
    started = []
    session.observe(lambda change: started.append(change["new"]), names="process")
    websocket = ProbeLspSocket("echo")
    try:
        manager.subscribe(websocket)  # the first editor starts the process
        first = upstream.session_process(session)
        assert first is not None and started == [first]
        assert upstream.session_websockets(session) == [websocket]
        await manager.on_client_message('{"method": "m1"}', websocket)
        await wait_for(lambda: '{"method": "m1"}' in websocket.received, "echo")
        assert heard == [("client", "m1")]

        first.kill()
        first.wait()
        await asyncio.sleep(0.3)  # jupyter-lsp's reader has seen the end of its stdout
        # jupyter-lsp does not notice: the dead process stays the session's.
        assert upstream.session_process(session) is first
        assert session.status.value == "started"

        upstream.restart_session(session)
        second = upstream.session_process(session)
        assert second not in (None, first) and started[-1] is second
        assert upstream.session_websockets(session) == [websocket]
        upstream.send_to_language_server(session, '{"method": "m2"}')
        await wait_for(lambda: '{"method": "m2"}' in websocket.received, "echo after restart")

        upstream.stop_session(session)
        assert upstream.session_process(session) is None and started[-1] is None
        second.wait(timeout=10)
        manager.unsubscribe(websocket)
        assert upstream.session_websockets(session) == []
    finally:
        manager.unregister_message_listener(listener)
        upstream.stop_session(session)
