"""The preview gateway's HTTP to apps (``apphttp``), through a real gateway to apps that
misbehave on the wire: keep-alive reuse and its races, answers without a length, cut
answers, HEAD, informational answers, bodies both ways, floods and viewers who leave."""

import asyncio
import contextlib

import aiohttp
import pytest

from codepilot_spawner.services.preview.apphttp import AppPool, AppUnreachable
from codepilot_spawner.services.preview.hosts import preview_label
from codepilot_spawner.services.preview.servers import PreviewTarget
from codepilot_spawner.spawners.previewroute import PreviewRoute

from .support.previewreplica import gateway_replica, serving

MB = 1 << 20


class RawApp:
    """An app on a loopback port that answers with the bytes its test gives, and counts
    its connections and what each request sent."""

    def __init__(self, answer, read_body: bool = True):
        self.answer = answer  # async (request: dict, reader, writer) -> keep the connection?
        self.read_body = read_body
        self.connections = 0
        self.open_connections = 0
        self.most_open = 0
        self.requests: list[dict] = []
        self.closed = asyncio.Event()

    async def serve(self, reader, writer):
        self.connections += 1
        self.open_connections += 1
        self.most_open = max(self.most_open, self.open_connections)
        try:
            served = 0
            while request := await read_request(reader, self.read_body):
                request["served_before"] = served
                served += 1
                self.requests.append(request)
                if not await self.answer(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            self.closed.set()
            writer.close()


async def read_request(reader, read_body: bool = True) -> dict | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode().split(" ", 2)
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if not read_body:
        return {"method": method, "target": target, "headers": headers, "body": body}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    return {"method": method, "target": target, "headers": headers, "body": body}


def answer(status: str, body: bytes = b"", headers: tuple = (), length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def preview_of(app: RawApp):
    """(base URL, headers) of a public preview of ``app`` through a real gateway."""
    app_server = await asyncio.start_server(app.serve, "127.0.0.1", 0)
    app_port = app_server.sockets[0].getsockname()[1]
    target = PreviewTarget(
        user="ana", server="", label=preview_label("ana"), route=PreviewRoute("1", app_port)
    )
    gateway = gateway_replica(b"k" * 32, [target])
    await gateway.shares.set_level(target, "public")
    try:
        async with serving(gateway) as url:
            yield url, {"Host": f"{target.label}.preview.localhost"}
    finally:
        app_server.close()


async def test_requests_reuse_one_connection_to_the_app():
    async def ok(request, reader, writer):
        writer.write(answer("200 OK", b"page " + request["target"].encode()))
        return True

    app = RawApp(ok)
    async with preview_of(app) as (url, host), aiohttp.ClientSession() as viewer:
        for i in range(20):
            async with viewer.get(f"{url}/p{i}", headers=host) as page:
                assert await page.read() == f"page /p{i}".encode()
    assert app.connections == 1


async def test_an_app_that_closed_a_kept_connection_gets_the_request_again_on_a_new_one():
    """The app answers one request per connection, saying keep-alive, and drops the
    connection when the next request arrives on it (its keep-alive timeout firing just
    as the gateway reuses the connection): no viewer sees it."""

    async def one_per_connection(request, reader, writer):
        if request["served_before"]:
            writer.transport.abort()  # the request is read, never answered
            return False
        writer.write(answer("200 OK", b"fresh"))
        return True

    app = RawApp(one_per_connection)
    async with preview_of(app) as (url, host), aiohttp.ClientSession() as viewer:
        for _ in range(4):
            async with viewer.get(f"{url}/", headers=host) as page:
                assert (page.status, await page.read()) == (200, b"fresh")
    assert len(app.requests) == 7  # the second to fourth were each sent twice
    assert app.connections == 4


async def test_answers_without_a_length_end_with_the_connection():
    async def old_style(request, reader, writer):
        writer.write(answer("200 OK", b"until the end", ("Connection: close",), length=False))
        return False

    app = RawApp(old_style)
    async with preview_of(app) as (url, host), aiohttp.ClientSession() as viewer:
        for _ in range(2):
            async with viewer.get(f"{url}/", headers=host) as page:
                assert (page.status, await page.read()) == (200, b"until the end")


async def test_a_cut_answer_is_never_passed_on_as_whole():
    async def cut(request, reader, writer):
        size = 5 * MB if request["target"] == "/big" else 1000
        writer.write(answer("200 OK", headers=(f"Content-Length: {size}",), length=False))
        writer.write(b"x" * (size // 2))
        await writer.drain()
        return False

    app = RawApp(cut)
    async with preview_of(app) as (url, host), aiohttp.ClientSession() as viewer:
        async with viewer.get(f"{url}/small", headers=host) as page:
            assert page.status == 502
            assert "broke off" in await page.text()
        with pytest.raises(aiohttp.ClientPayloadError):
            async with viewer.get(f"{url}/big", headers=host) as page:
                assert page.status == 200
                await page.read()
        async with viewer.get(f"{url}/small", headers=host) as page:
            assert page.status == 502  # the gateway is fine


async def test_head_keeps_the_length_and_the_next_request_its_answer():
    async def head_then_get(request, reader, writer):
        body = b"twelve bytes"
        if request["method"] == "HEAD":
            writer.write(answer("200 OK", headers=(f"Content-Length: {len(body)}",), length=False))
        else:
            writer.write(answer("200 OK", body))
        return True

    app = RawApp(head_then_get)
    async with preview_of(app) as (url, host), aiohttp.ClientSession() as viewer:
        async with viewer.head(f"{url}/", headers=host) as head:
            assert (head.status, head.headers["Content-Length"]) == (200, "12")
        async with viewer.get(f"{url}/", headers=host) as page:
            assert await page.read() == b"twelve bytes"


async def test_informational_answers_are_skipped():
    async def hints(request, reader, writer):
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(answer("200 OK", b"after the hints"))
        return True

    app = RawApp(hints)
    async with (
        preview_of(app) as (url, host),
        aiohttp.ClientSession() as viewer,
        viewer.get(f"{url}/", headers=host) as page,
    ):
        assert (page.status, await page.read()) == (200, b"after the hints")


async def test_bodies_pass_whole_both_ways_with_or_without_a_length():
    async def echo(request, reader, writer):
        writer.write(answer("200 OK", request["body"]))
        return True

    upload = bytes(range(256)) * (12 * MB // 256)

    async def chunks():
        for start in range(0, len(upload), 1 * MB):
            yield upload[start : start + MB]

    app = RawApp(echo)
    async with preview_of(app) as (url, host), aiohttp.ClientSession() as viewer:
        async with viewer.post(f"{url}/up", data=upload, headers=host) as sent:
            assert await sent.read() == upload
        async with viewer.post(f"{url}/up", data=chunks(), headers=host) as sent:
            assert await sent.read() == upload
    assert "content-length" in app.requests[0]["headers"]
    assert app.requests[1]["headers"]["transfer-encoding"] == "chunked"


async def test_a_flood_opens_a_bounded_number_of_connections_to_the_app():
    async def slow(request, reader, writer):
        await asyncio.sleep(0.02)
        writer.write(answer("200 OK", b"ok"))
        return True

    app = RawApp(slow)
    async with preview_of(app) as (url, host):
        connector = aiohttp.TCPConnector(limit=300)
        async with aiohttp.ClientSession(connector=connector) as viewer:

            async def one():
                async with viewer.get(f"{url}/", headers=host) as page:
                    return page.status

            assert set(await asyncio.gather(*(one() for _ in range(300)))) == {200}
    assert app.most_open <= 64


async def test_a_viewer_who_leaves_a_stream_ends_the_apps_connection_too():
    async def endless(request, reader, writer):
        writer.write(answer("200 OK", headers=("Transfer-Encoding: chunked",), length=False))
        while True:
            writer.write(b"%x\r\n%s\r\n" % (MB, b"y" * MB))
            await writer.drain()

    app = RawApp(endless)
    async with preview_of(app) as (url, host):
        async with aiohttp.ClientSession() as viewer, viewer.get(f"{url}/", headers=host) as page:
            await page.content.readexactly(3 * MB)
        await asyncio.wait_for(app.closed.wait(), 10)
        assert app.open_connections == 0


async def test_an_app_that_refuses_connections_is_reported_not_raised():
    async def never(factory):
        raise ConnectionRefusedError("refused")

    with pytest.raises(AppUnreachable):
        await AppPool(never).request(b"GET / HTTP/1.1\r\n\r\n")


async def test_an_app_that_answers_before_reading_the_body_is_heard():
    async def too_large(request, reader, writer):
        writer.write(answer("413 Content Too Large", b"too large", ("Connection: close",)))
        await writer.drain()
        return False

    app = RawApp(too_large, read_body=False)
    async with (
        preview_of(app) as (url, host),
        aiohttp.ClientSession() as viewer,
        viewer.post(f"{url}/up", data=b"z" * 100_000, headers=host) as sent,
    ):
        assert (sent.status, await sent.read()) == (413, b"too large")


async def test_an_app_whose_headers_never_end_is_cut_off():
    async def endless_header(request, reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 64 MB, if nobody stopped it
                writer.write(b"a" * 65536)
                await writer.drain()
        return False

    app = RawApp(endless_header)
    async with (
        preview_of(app) as (url, host),
        aiohttp.ClientSession() as viewer,
        viewer.get(f"{url}/", headers=host) as page,
    ):
        assert page.status == 502
        assert "64 KiB" in await page.text()
    assert app.requests  # it was asked, and its connection ended
    await asyncio.wait_for(app.closed.wait(), 10)
