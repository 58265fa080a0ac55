"""Language servers that crash: restarted behind the editors' websockets while the restart
budget allows, else stopped, their websockets closed and the reason kept for the status
bar (``GET codepilot/api/language-servers``).

jupyter-lsp itself does nothing when a language server dies: its session stays
``started`` and the editors' requests go nowhere. Each process's end is seen through a
pidfd on the event loop, so nothing polls and nothing blocks.
"""

import asyncio
import json
import logging
import os

from jupyter_lsp import lsp_message_listener

from ..upstream import (
    language_server_sessions,
    restart_session,
    send_to_language_server,
    session_process,
    session_websockets,
    stop_session,
)
from .restarts import EditorConversation, RestartBudget, describe_exit, stop_message

# The websocket close code when a language server is not restarted (an application code:
# JupyterLab's client only sees that the socket closed unexpectedly).
STOPPED_CLOSE_CODE = 4010


class LanguageServerWatchdog:
    def __init__(self, manager, restarts: int, window: float, log: logging.Logger):
        self.manager = manager
        self.restarts = restarts
        self.window = window
        self.log = log
        self.conversations: dict[str, EditorConversation] = {}
        self.budgets: dict[str, RestartBudget] = {}
        # Language server name -> what the status bar says of it, while it is stopped.
        self.stopped: dict[str, str] = {}
        self._sessions: dict = {}
        self._closed = False

    async def watch(self) -> None:
        """Watch every session jupyter-lsp has (it makes them after the server starts)."""
        self._loop = asyncio.get_running_loop()
        self._sessions = await language_server_sessions(self.manager)
        for name, session in self._sessions.items():
            self.conversations[name] = EditorConversation()
            self.budgets[name] = RestartBudget(self.restarts, self.window)
            session.observe(
                lambda change, name=name: self._process_changed(name, change), names="process"
            )
            session.observe(
                lambda change, name=name: self._websockets_changed(name, change),
                names="handlers",
            )
            if session_process(session) is not None:
                self._watch_exit(name, session_process(session))
        lsp_message_listener("client")(self._from_client)
        lsp_message_listener("server")(self._from_server)

    def close(self) -> None:
        """Stop restarting: the server is stopping, and its language servers end with it."""
        self._closed = True
        for listener in (self._from_client, self._from_server):
            self.manager.unregister_message_listener(listener)

    async def _from_client(self, scope, message, language_server, manager) -> None:
        conversation = self.conversations.get(language_server)
        if conversation is not None:
            conversation.from_client(message)

    async def _from_server(self, scope, message, language_server, manager) -> None:
        conversation = self.conversations.get(language_server)
        if conversation is not None:
            conversation.from_server(message)

    def _process_changed(self, name: str, change) -> None:
        if change["new"] is not None:
            self.stopped.pop(name, None)
            self._watch_exit(name, change["new"])

    def _websockets_changed(self, name: str, change) -> None:
        if not change["new"]:
            self.conversations[name].forget()

    def _watch_exit(self, name: str, process) -> None:
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError as error:  # gone already (reaped), or no pidfd on this kernel
            self.log.warning("Code Pilot: cannot watch language server %s: %s", name, error)
            return
        self._loop.add_reader(pidfd, self._exited, name, process, pidfd)

    def _exited(self, name: str, process, pidfd: int) -> None:
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        returncode = process.poll()  # reaps it
        if self._closed:
            return
        session = self._sessions[name]
        if session_process(session) is not process:
            return  # jupyter-lsp stopped it: its last editor left, or a restart
        self._crashed(name, session, describe_exit(returncode if returncode is not None else 0))

    def _crashed(self, name: str, session, reason: str) -> None:
        conversation = self.conversations[name]
        websockets = session_websockets(session)
        for answer in conversation.failed_requests(reason):
            self._tell_editors(websockets, answer)
        if self.budgets[name].allows_restart():
            self.log.warning("Code Pilot: language server %s %s; restarting it", name, reason)
            restart_session(session)
            for message in conversation.replay():
                send_to_language_server(session, json.dumps(message))
            return
        spec = self.manager.language_servers.get(name, {})
        self.stopped[name] = stop_message(spec, reason, self.restarts, self.window)
        self.log.error("Code Pilot: %s; not restarted", self.stopped[name])
        stop_session(session)
        for websocket in websockets:
            websocket.close(STOPPED_CLOSE_CODE, "language server stopped")

    def _tell_editors(self, websockets, message: dict) -> None:
        text = json.dumps(message)
        for websocket in websockets:
            try:
                websocket.write_message(text)
            except Exception:  # closed meanwhile: that editor has nothing to wait for
                self.log.debug("Code Pilot: an editor left before a language server answer")
