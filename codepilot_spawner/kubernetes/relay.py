"""A TCP relay from the pod's address to the user's app on the pod's loopback.

``python -m codepilot_spawner.kubernetes.relay --listen-port 9797 --target-port 3000``

Dev servers listen on 127.0.0.1 by default (Vite, Next), which only the pod itself can
reach. The preview gateway runs in the hub's pod, so each user pod runs this relay as a
sidecar container: it accepts on ``<pod IP>:<listen port>`` and copies bytes both ways
to ``127.0.0.1:<target port>``. It knows nothing of HTTP, so websockets (hot reload),
streaming and keep-alive pass unchanged; a half-close on one side is passed on as one.

A sidecar rather than a task in the notebook server: it has its own process (a busy
preview never slows the IDE's event loop), it is up before any user code runs (so no
user process can take its port first), and it lives in a container of its own, whose
processes the user's terminals cannot see or signal.

With ``--start-id`` every connection must begin with the gateway's start line for that
start (``codepilot_contracts.relay``): a pod IP the CNI gave to this pod after another
pod's end never carries that pod's viewers to this app.
"""

import argparse
import asyncio
import contextlib
import hmac
import logging
import signal

from codepilot_contracts.listening import app_port, previewable_ports, read_listeners
from codepilot_contracts.relay import MAX_START_LINE, START_ID, parse_start_line

log = logging.getLogger("codepilot.relay")

CHUNK = 256 * 1024
DEFAULT_MAX_CONNECTIONS = 1024
# The gateway writes the start line as soon as it connects.
START_LINE_SECONDS = 10


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on (half-close), as TCP would end to end."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError):
        await writer.wait_closed()


class Relay:
    """Accepts on ``listen`` and joins each connection to a new one to ``target``."""

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        start_id: str = "",
        reserved_ports: tuple[int, ...] = (),
    ):
        self.listen = listen
        self.target = target
        self.max_connections = max_connections
        # With a start id: what every connection's first line must name.
        self.start_id = start_id
        # Never reached for a preview: the server's own ports (its IDE's), and this relay's.
        self.reserved_ports = frozenset(reserved_ports)
        self.open_connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = listen[1]  # the kernel's choice once started, when asked for 0

    async def start(self) -> None:
        # An empty host: every address of every family the pod has (IPv4, IPv6 or both;
        # asyncio skips a family the kernel lacks), on one port.
        self._server = await asyncio.start_server(
            self._accept, self.listen[0] or None, self.listen[1], backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.reserved_ports |= {self.port}
        log.info("Preview relay: %s:%s -> %s:%s", *self.listen[:1], self.port, *self.target)

    async def close(self) -> None:
        """Stop accepting and end every open connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader, client_writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            if self.open_connections >= self.max_connections:
                log.warning(
                    "Preview relay: %s connections open, refusing one", self.max_connections
                )
                return
            self.open_connections += 1
            try:
                port = await self._port_asked(client_reader)
                if port is not None:
                    await self._join(client_reader, client_writer, port)
            finally:
                self.open_connections -= 1
        finally:
            await _close(client_writer)
            self._tasks.discard(task)

    async def _port_asked(self, client_reader) -> int | None:
        """The pod's port the connection asks for (0: the app's), None when it names
        another start (always 0 without a start id: relays of pods from before the check)."""
        if not self.start_id:
            return 0
        try:
            first = await asyncio.wait_for(client_reader.readuntil(b"\n"), START_LINE_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            first = b""
        except ConnectionError:
            first = b""
        asked = parse_start_line(first) if len(first) <= MAX_START_LINE else None
        if asked is not None and hmac.compare_digest(asked[0], self.start_id):
            return asked[1]
        log.warning("Preview relay: a connection for another server start, closed")
        return None

    async def _previewable(self) -> list[int]:
        """Ports something in the pod listens on for the loopback, but the pod's own."""
        listeners = await asyncio.to_thread(read_listeners, "/proc/self/net")
        return previewable_ports(listeners, self.reserved_ports)

    async def _connect_app(self, port: int):
        """A connection to ``port`` of the pod if it is previewable; for 0, to the app's
        port, or where nothing listens there, to the port the pod's app listens on."""
        host = self.target[0]
        if port:
            if port not in await self._previewable():
                raise ConnectionRefusedError(f"nothing to preview on port {port}")
            return await asyncio.open_connection(host, port)
        try:
            return await asyncio.open_connection(*self.target)
        except OSError:
            chosen = app_port(self.target[1], await self._previewable())
            if chosen is None or chosen == self.target[1]:
                raise
            return await asyncio.open_connection(host, chosen)

    async def _join(self, client_reader, client_writer, port: int) -> None:
        try:
            app_reader, app_writer = await self._connect_app(port)
        except OSError as error:
            # No app listening yet: closing tells the gateway, which shows its
            # "no app is running" page.
            log.debug("Preview relay: port %s unreachable: %s", port or self.target[1], error)
            return
        try:
            results = await asyncio.gather(
                _pipe(client_reader, app_writer),
                _pipe(app_reader, client_writer),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, ConnectionError):
                    log.debug("Preview relay: connection ended: %r", result)
        finally:
            await _close(app_writer)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m codepilot_spawner.kubernetes.relay", description=__doc__
    )
    parser.add_argument(
        "--listen-host",
        default="",
        help="Address to accept on (default: all addresses, IPv4 and IPv6 alike).",
    )
    parser.add_argument("--listen-port", type=int, required=True, help="Port to accept on.")
    parser.add_argument("--target-host", default="127.0.0.1", help="Address of the app.")
    parser.add_argument("--target-port", type=int, required=True, help="Port of the app.")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="Connections open at once; more are closed at once (bounds file descriptors).",
    )
    parser.add_argument(
        "--start-id",
        default="",
        help="The server start this pod serves: every connection must begin with its "
        "start line. Empty: no check (relays of pods from before the check).",
    )
    parser.add_argument(
        "--reserved-port",
        type=int,
        action="append",
        default=[],
        help="A port of the pod never previewed (the user server's own); repeatable.",
    )
    args = parser.parse_args(argv)
    for name in ("listen_port", "target_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} must be a port number (0 to 65535)")
    if args.max_connections < 1:
        parser.error("--max-connections must be at least 1")
    if args.start_id and not START_ID.fullmatch(args.start_id):
        parser.error("--start-id must be 1 to 64 letters, digits, '-' or '_'")
    return args


async def serve(args: argparse.Namespace) -> None:
    relay = Relay(
        (args.listen_host, args.listen_port),
        (args.target_host, args.target_port),
        args.max_connections,
        args.start_id,
        tuple(args.reserved_port),
    )
    await relay.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await relay.close()


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
