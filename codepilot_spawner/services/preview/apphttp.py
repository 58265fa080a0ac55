"""HTTP/1.1 from the gateway to an app: keep-alive connections pooled per server and port.

The data path of every preview request but websockets (those go through aiohttp's
client). aiohttp's general client cost about 90 µs of the gateway's CPU per request;
here the request's head is written as the gateway built it and the answer is parsed by
httptools (llhttp, the parser uvicorn uses), and a request costs the gateway 155 µs in
all instead of 240. One exchange at a time on a connection; an answer that arrived whole
is handed over whole, a longer one chunk by chunk with backpressure both ways.
"""

import asyncio
import collections
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import httptools

# An answer of more than this, not yet read by the gateway, stops reading from the app.
READ_AHEAD_LIMIT = 1 << 20
# An app whose answer's head (status line and headers) goes on longer is cut off: llhttp
# sets no bound of its own, and the headers are held in the gateway's memory.
HEAD_LIMIT = 64 * 1024
# Idle connections are dropped after this: below Node.js's own keep-alive timeout (5 s),
# so the app rarely closes one just as a request is written to it.
IDLE_SECONDS = 4.0
STATUSES_WITHOUT_BODY = {204, 304}
FRAMING_HEADERS = ("content-length", "transfer-encoding")


class AppUnreachable(ConnectionError):
    """The app refused the connection, or ended it before its answer's head."""


class AppAnswerBroken(ConnectionError):
    """The app's answer ended before its end (or could not be parsed) after its head."""


def request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """A request's head as bytes on the wire. The server that parsed the viewer's request
    refused control characters in its target and headers, so nothing here can split it;
    its headers were decoded as UTF-8 with surrogates for stray bytes, undone here."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk of a chunked body (``b""`` is the last)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class AppAnswer:
    """The app's answer to one request: status and headers once its head has arrived, then
    its body, whole (``complete``) or still coming (``chunks``)."""

    def __init__(self, head_only: bool):
        self.head_only = head_only  # a HEAD: no body follows the head whatever it says
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.complete = False
        self.close_delimited = False  # no length and not chunked: the body ends at EOF
        self.keep_alive = False
        self.error: Exception | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._changed: asyncio.Future | None = None
        self._connection: AppConnection | None = None

    @property
    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == "content-length":
                return int(value) if value.isdigit() else None
        return None

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    async def _wait(self) -> None:
        self._changed = asyncio.get_running_loop().create_future()
        try:
            await self._changed
        finally:
            self._changed = None

    def _take(self) -> bytes:
        data = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        if self._connection is not None:
            self._connection.read_more()
        return data

    async def read(self) -> bytes:
        """The whole body, once it has all arrived."""
        parts = []
        async for part in self.chunks():
            parts.append(part)
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it comes; ``AppAnswerBroken`` if it ends early."""
        while True:
            if self._body:
                yield self._take()
            elif self.error is not None:
                raise self.error
            elif self.complete:
                return
            else:
                await self._wait()


class AppConnection(asyncio.Protocol):
    """One keep-alive connection to an app: one exchange at a time."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: AppAnswer | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._can_write: asyncio.Future | None = None
        self._reading_paused = False
        self._head_bytes = 0  # of the answer's head so far

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.complete:
            self.abort()  # bytes nobody asked for: this connection is not to be reused
            return
        in_head = not self.answer.status
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(AppAnswerBroken(f"the app's answer could not be read: {error}"))
            self.abort()
            return
        if in_head and not self.answer.status:
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_LIMIT:
                self._fail(AppAnswerBroken("the app's answer's headers went on past 64 KiB"))
                self.abort()

    def connection_lost(self, exc) -> None:
        self.closed = True
        answer = self.answer
        if answer is not None and not answer.complete:
            if answer.status and answer.close_delimited and exc is None:
                self.on_message_complete()  # its end is the connection's end
            else:
                self._fail(
                    AppAnswerBroken("the app ended the connection during its answer")
                    if answer.status
                    else AppUnreachable("the app ended the connection before answering")
                )
        self._writable()

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._writable()

    # --- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.answer.headers.append(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        )

    def on_headers_complete(self) -> None:
        answer = self.answer
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the answer comes after
            answer.headers.clear()
            return
        answer.status = status
        answer.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it at the end
        framed = any(name.lower() in FRAMING_HEADERS for name, _ in answer.headers)
        answer.close_delimited = not framed and status not in STATUSES_WITHOUT_BODY
        if answer.head_only:
            # llhttp would wait for the body the head announces; the connection goes.
            answer.close_delimited = False
            self.on_message_complete()
            self.closed = True
            self.transport.close()
        answer._wake()

    def on_body(self, body: bytes) -> None:
        answer = self.answer
        answer._body.append(body)
        answer._buffered += len(body)
        if answer._buffered > READ_AHEAD_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        answer._wake()

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is None or answer.complete or not answer.status:
            return  # the end of an informational answer
        answer.complete = True
        answer._wake()

    # --- use ------------------------------------------------------------------------------

    def _fail(self, error: Exception) -> None:
        if self.answer is not None and self.answer.error is None:
            self.answer.error = error
            self.answer._wake()

    def _writable(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    def read_more(self) -> None:
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        if self._can_write is not None:
            await self._can_write

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        answer = self.answer
        return (
            not self.closed
            and answer is not None
            and answer.complete
            and answer.error is None
            and answer.keep_alive
        )

    async def exchange(
        self, head: bytes, body: AsyncIterable[bytes] | None, chunked: bool, head_only: bool
    ) -> AppAnswer:
        """Send one request; its answer once the answer's head has arrived."""
        answer = self.answer = AppAnswer(head_only)
        answer._connection = self
        self._head_bytes = 0
        self.transport.write(head)
        if body is not None:
            async for data in body:
                if self.closed:
                    break  # the app answered early (413) and closed, or went away
                if data:
                    self.transport.write(chunk(data) if chunked else data)
                    await self.drain()
            if chunked and not self.closed:
                self.transport.write(chunk(b""))
        while not answer.status and answer.error is None:
            await answer._wait()
        if answer.error is not None:
            raise answer.error
        return answer


async def _exchange(connection: AppConnection, *request) -> AppAnswer:
    try:
        return await connection.exchange(*request)
    except BaseException:  # refused, broken, or the viewer's request cancelled
        connection.abort()
        raise


Connect = Callable[[Callable[[], AppConnection]], Awaitable[AppConnection]]


class AppPool:
    """Keep-alive connections to one app port, at most ``limit`` in use at once (a
    request beyond waits for one): a flood of viewers cannot open thousands on the app."""

    def __init__(self, connect: Connect, limit: int = 64):
        self._connect = connect
        self._idle: collections.deque[AppConnection] = collections.deque()
        self._slots = asyncio.Semaphore(limit)

    async def _new(self) -> AppConnection:
        try:
            return await self._connect(AppConnection)
        except OSError as error:
            raise AppUnreachable(str(error)) from error

    def _idle_connection(self) -> AppConnection | None:
        oldest = time.monotonic() - IDLE_SECONDS
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely closed
            if not connection.closed and connection.idle_since > oldest:
                return connection
            connection.abort()
        return None

    async def request(
        self,
        head: bytes,
        body: AsyncIterable[bytes] | None = None,
        chunked: bool = False,
        head_only: bool = False,
    ) -> "Exchange":
        """Send a request; the exchange once the answer's head has arrived. A request
        without a body that meets a kept connection the app has just closed is sent
        again on a new one, as browsers do; one with a body, which cannot be sent twice,
        always goes on a new connection."""
        await self._slots.acquire()
        try:
            reused = self._idle_connection() if body is None else None
            try:
                connection = reused or await self._new()
                answer = await _exchange(connection, head, body, chunked, head_only)
            except AppUnreachable:
                if reused is None:
                    raise
                connection = await self._new()
                answer = await _exchange(connection, head, body, chunked, head_only)
        except BaseException:
            self._slots.release()
            raise
        return Exchange(self, connection, answer)

    def _done(self, connection: AppConnection) -> None:
        self._slots.release()
        if connection.reusable:
            connection.answer = None
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.abort()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().abort()


class Exchange:
    """A request and its answer; ``release()`` once done with it (its connection goes
    back to the pool if the answer was read to its end, else it is closed)."""

    def __init__(self, pool: AppPool, connection: AppConnection, answer: AppAnswer):
        self.answer = answer
        self._pool, self._connection = pool, connection
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._done(self._connection)

    async def __aenter__(self) -> AppAnswer:
        return self.answer

    async def __aexit__(self, *exc_info) -> None:
        self.release()
