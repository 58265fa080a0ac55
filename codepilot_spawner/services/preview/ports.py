"""Which ports of a server its previews may reach, as the kernel of its namespace says.

On one machine as root the gateway reads the listening sockets of a server's network
namespace itself (``appconnection.listeners_in_namespace``), never taking the server's
word for them: a ``<port>--<label>`` host reaches a port only if something in that
namespace listens there, on the loopback, and it is none of the server's own ports (its
IDE's, those forwarded to the hub). The main host follows the app there when ``PORT``
refuses (Vite on 5173). A reading is shared for ``FRESH_SECONDS`` by every request of
that server, so the data path pays for it about once a second per server at most.
"""

import asyncio
import logging
import time

from codepilot_contracts.listening import app_port, previewable_ports

from ...spawners.previewroute import PreviewRoute
from .appconnection import listeners_in_namespace

FRESH_SECONDS = 1.0


class NamespacePorts:
    """Previewable ports per server start, read from its namespace at most every
    ``fresh`` seconds; concurrent requests share one reading."""

    def __init__(self, fresh: float = FRESH_SECONDS, log: logging.Logger | None = None):
        self.fresh = fresh
        self.log = log or logging.getLogger(__name__)
        self._read: dict[tuple[str, str], tuple[float, list[int]]] = {}
        self._reading: dict[tuple[str, str], asyncio.Future] = {}

    async def previewable(self, route: PreviewRoute) -> list[int]:
        """The ports of ``route``'s namespace a preview may reach, lowest first."""
        key = (route.netns, route.start_id)
        read = self._read.get(key)
        if read is not None and time.monotonic() - read[0] < self.fresh:
            return read[1]
        if key not in self._reading:
            self._reading[key] = asyncio.ensure_future(self._read_namespace(key, route))
        return await asyncio.shield(self._reading[key])

    async def main_port(self, route: PreviewRoute) -> int:
        """The port the main preview host reaches: the app's (``PORT``) if it listens,
        else the one the server's app listens on instead (the lowest), else ``PORT``."""
        return app_port(route.app_port, await self.previewable(route)) or route.app_port

    async def _read_namespace(self, key, route: PreviewRoute) -> list[int]:
        try:
            listeners = await asyncio.to_thread(listeners_in_namespace, route.netns)
        except OSError as error:  # the namespace is gone: the server stopped
            self.log.debug("Preview gateway: ports of %s unread: %s", route.netns, error)
            listeners = []
        finally:
            self._reading.pop(key, None)
        ports = previewable_ports(listeners, frozenset(route.reserved_ports))
        self._read[key] = (time.monotonic(), ports)
        return ports

    def keep_only(self, live: set[tuple[str, str]]) -> None:
        """Forget the readings of server starts that are not in ``live`` (netns, start)."""
        for key in [key for key in self._read if key not in live]:
            del self._read[key]
