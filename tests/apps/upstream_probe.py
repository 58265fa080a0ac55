"""A jupyter-server extension for tests/test_server_upstream_api.py: it records what the
hooks of ``server_extension.upstream`` see, and sets the server up from its link hook as
the ``CodePilot`` extension does (its own contents manager, its own terminal manager).

Its module name sorts after ``jupyter_server_terminals``, as ``server_extension`` does.
"""

import asyncio

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server_terminals.terminalmanager import TerminalManager
from traitlets import Unicode

from server_extension.upstream import ExtensionHooks, TerminalOutputHook, terminal_manager


class ProbeContentsManager(AsyncLargeFileManager):
    pass


class ProbeTerminalManager(TerminalOutputHook, TerminalManager):
    """Records, before each output, each websocket's output so far."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.before_outputs: list[list[tuple[object, int]]] = []

    def before_output(self, clients):
        self.before_outputs.append([(client, len(client.output)) for client in clients])


class UpstreamProbe(ExtensionHooks, ExtensionApp):
    name = "upstream_probe"
    marker = Unicode("", help="Set in config: the link hook must see it.").tag(config=True)
    seen: dict = {}

    def linked_to_server(self, serverapp):
        self.seen["marker at link"] = self.marker
        self.seen["contents manager at link"] = getattr(serverapp, "contents_manager", None)
        serverapp.contents_manager_class = ProbeContentsManager
        for app in serverapp.extension_manager.extension_apps.get("jupyter_server_terminals", ()):
            app.terminal_manager_class = ProbeTerminalManager

    def initialize_settings(self):
        self.seen["terminal manager"] = terminal_manager(self.serverapp)

    async def started_with_server(self, serverapp):
        self.seen["started in"] = asyncio.get_running_loop()


def _jupyter_server_extension_points():
    return [{"module": "tests.apps.upstream_probe", "app": UpstreamProbe}]
