"""Whether the student's app listens on its port, for the IDE's "Your app is running".

``GET <server url>/codepilot/api/app`` answers ``{"port": 3000, "listening": true}``. The
check is a TCP connect to 127.0.0.1, then ::1, on the app's port, made by this server's
process: inside the server's own network namespace (or pod), where the app listens, and
never from the hub. The connection is closed at once, before any byte is sent, so the app
sees at most an empty connection, and only while a tab asks.

A burst of requests (many tabs, a script) costs one connect per second at most: answers
are shared for ``FRESH_SECONDS`` and concurrent requests wait on the same check.
"""

import asyncio
import contextlib
import time

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

APP_STATUS_PATH = "codepilot/api/app"
# Dev servers bind 127.0.0.1, 0.0.0.0, or "localhost", which Node 17+ resolves to ::1.
LOOPBACK = ("127.0.0.1", "::1")
# A loopback connect is refused at once; only an app whose backlog is full keeps it waiting.
CONNECT_SECONDS = 0.5
FRESH_SECONDS = 1.0


async def accepts_connections(host: str, port: int) -> bool:
    """True if something accepts a TCP connection on ``host``:``port``."""
    try:
        async with asyncio.timeout(CONNECT_SECONDS):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False  # refused, no such address (no IPv6 here), or no answer in time
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class PortProbe:
    """Answers "does the app listen on ``port``?", at most one check per ``fresh`` seconds."""

    def __init__(self, port: int, fresh: float = FRESH_SECONDS):
        self.port = port
        self.fresh = fresh
        self._checked_at = float("-inf")
        self._listening = False
        self._checking: asyncio.Future | None = None

    async def listening(self) -> bool:
        if time.monotonic() - self._checked_at < self.fresh:
            return self._listening
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check())
        # Shielded: a client that goes away does not cancel the check the others wait on.
        return await asyncio.shield(self._checking)

    async def _check(self) -> bool:
        try:
            listening = False
            for host in LOOPBACK:
                if await accepts_connections(host, self.port):
                    listening = True
                    break
            self._listening = listening
            self._checked_at = time.monotonic()
            return listening
        finally:
            self._checking = None


class AppStatusHandler(APIHandler):
    """``GET codepilot/api/app``: the app's port and whether something listens on it."""

    auth_resource = "servers"

    def initialize(self, probe: PortProbe):
        self.probe = probe

    @web.authenticated
    @authorized
    async def get(self):
        listening = await self.probe.listening()
        self.finish({"port": self.probe.port, "listening": listening})


def app_status_handler(port: int) -> tuple:
    """The route for the extension app (it prefixes base_url); one probe per server."""
    return (APP_STATUS_PATH, AppStatusHandler, {"probe": PortProbe(port)})
