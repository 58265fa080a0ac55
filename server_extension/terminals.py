"""Terminals that answer keystrokes without Nagle's delay, and whose ending can be
taken over (the run's terminal)."""

import shutil
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

from jupyter_server_terminals.terminalmanager import TerminalManager

from .upstream import TerminalOutputHook

# The system's and the user's bash set-up, then a prompt without the host's paths.
BASHRC = Path(__file__).with_name("terminal.bashrc")


class WorkspaceTerminalManager(TerminalOutputHook, TerminalManager):
    """jupyter-server-terminals' manager with TCP_NODELAY on every terminal websocket.

    A shell echoes each keystroke and command line in several small writes. With Nagle's
    algorithm on, every write after the first waits for the browser's delayed ACK, about
    40 ms per command line; with no-delay the echo leaves at once.

    ``configure_terminals`` makes it the manager unless
    ``c.TerminalsExtensionApp.terminal_manager_class`` says otherwise.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._nodelay_clients = weakref.WeakSet()
        self._enders: dict[str, Callable[[], Awaitable[None]]] = {}

    def end_with(self, name: str, ender: Callable[[], Awaitable[None]]) -> None:
        """End terminal ``name`` with ``ender`` whenever it is terminated: its DELETE in
        the terminals API (JupyterLab's Running panel), the culler, the server's stop.
        terminado signals a terminal's first process only; the run's first process is
        its root, and killing it first would set loose what it adopted."""
        self._enders[name] = ender

    async def terminate(self, name: str, force: bool = False) -> None:
        ender = self._enders.get(name)
        if ender is not None and name in self.terminals:
            await ender()
        if name in self.terminals:  # not ended, or its end not noticed yet
            await super().terminate(name, force=force)

    def before_output(self, clients):
        # terminado gives the manager no hook when a websocket attaches, but every
        # attached websocket is among `clients` before the first output reaches it.
        for client in clients:
            if client not in self._nodelay_clients:
                client.set_nodelay(True)
                self._nodelay_clients.add(client)


def configure_terminals(serverapp) -> None:
    """Set up the terminals extension for workspaces, where config leaves it at defaults.

    Runs while extensions are linked, before any of them loads, so the terminals extension
    builds its manager with these settings.
    """
    for app in serverapp.extension_manager.extension_apps.get("jupyter_server_terminals", ()):
        if app.terminal_manager_class is TerminalManager:
            app.terminal_manager_class = WorkspaceTerminalManager
    if "shell_command" not in serverapp.terminado_settings:
        # Interactive, not login: a login shell sources /etc/profile, which resets PATH
        # and hides the workspace's Python and Node from the user.
        bash = shutil.which("bash")
        shell = [bash, "--rcfile", str(BASHRC), "-i"] if bash else ["/bin/sh", "-i"]
        serverapp.terminado_settings = {**serverapp.terminado_settings, "shell_command": shell}
