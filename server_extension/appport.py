"""Whether the student's app listens on its port, for the IDE's "Your app is running",
and which other ports of the server are listened on, each a preview of its own.

``GET <server url>/codepilot/api/app`` answers ``{"port": 3000, "listening": true,
"app_port": 3000, "ports": [{"port": 5173, "process": "node", "run": true, "url":
"<its preview URL>"}]}``: ``listening`` for ``PORT``; ``app_port``, the port the main
preview shows (``PORT`` if listened on, else a port of the run's processes, else
another of the server's; null when none), ``ports`` every previewable port
(``listeningports.py``), each at ``<port>--<label>`` of the preview domain. The
check of ``PORT`` is a TCP connect to 127.0.0.1, then ::1, on the app's port, made by this server's
process: inside the server's own network namespace (or pod), where the app listens, and
never from the hub. The connection is closed at once, before any byte is sent, so the app
sees at most an empty connection, and only while a tab asks.

A burst of requests (many tabs, a script) costs one connect per second at most: answers
are shared for ``FRESH_SECONDS`` and concurrent requests wait on the same check.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from codepilot_contracts.listening import app_port
from codepilot_contracts.porthosts import port_url

from .listeningports import ListeningPort, listening_ports

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


class ServerPorts:
    """The server's previewable ports, read from /proc (off the event loop) at most once
    per ``fresh`` seconds; concurrent requests share a reading."""

    def __init__(
        self,
        own_ports: Callable[[], set[int]],
        run_processes: Callable[[], set[int]],
        fresh: float = FRESH_SECONDS,
    ):
        self.own_ports = own_ports
        self.run_processes = run_processes  # blocking: called off the event loop
        self.fresh = fresh
        self._read_at = float("-inf")
        self._ports: list[ListeningPort] = []
        self._reading: asyncio.Future | None = None

    async def current(self) -> list[ListeningPort]:
        if time.monotonic() - self._read_at < self.fresh:
            return self._ports
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._reading)

    async def _read(self) -> list[ListeningPort]:
        try:
            own = self.own_ports()
            self._ports = await asyncio.to_thread(
                lambda: listening_ports(own, self.run_processes())
            )
            self._read_at = time.monotonic()
            return self._ports
        finally:
            self._reading = None


def app_model(port: int, listening: bool, ports: list[ListeningPort], preview_url: str) -> dict:
    """The answer of ``GET codepilot/api/app``."""
    numbers = [p.port for p in ports]
    run_ports = [p.port for p in ports if p.in_run]
    return {
        "port": port,
        "listening": listening,
        "app_port": port if listening else app_port(port, numbers, run_ports),
        "ports": [
            {
                "port": p.port,
                "process": p.process,
                "run": p.in_run,
                "url": port_url(preview_url, p.port) if preview_url else "",
            }
            for p in ports
            if p.port != port
        ],
    }


class AppStatusHandler(APIHandler):
    """``GET codepilot/api/app``: the app's port, whether something listens on it, and
    the server's other previewable ports."""

    auth_resource = "servers"

    def initialize(self, probe: PortProbe, ports: ServerPorts, preview_url: str):
        self.probe = probe
        self.ports = ports
        self.preview_url = preview_url

    @web.authenticated
    @authorized
    async def get(self):
        listening, ports = await asyncio.gather(self.probe.listening(), self.ports.current())
        self.finish(app_model(self.probe.port, listening, ports, self.preview_url))


def app_status_handler(port: int, ports: ServerPorts, preview_url: str) -> tuple:
    """The route for the extension app (it prefixes base_url); one probe per server."""
    return (
        APP_STATUS_PATH,
        AppStatusHandler,
        {"probe": PortProbe(port), "ports": ports, "preview_url": preview_url},
    )
