"""The preview relay of user pods (codepilot_spawner/kubernetes/relay.py), for real on loopback.

An app on 127.0.0.1 behind the relay, reached through it: bytes both ways, half-close,
a websocket upgrade with messages both ways (aiohttp's own client and server), many
connections at once, no app yet, the connection limit, and a clean stop that ends
every open connection. The relay also runs as its own process, as the sidecar does.
"""

import asyncio
import os
import signal
import sys

import aiohttp
import pytest
from aiohttp import web

from codepilot_spawner.kubernetes.relay import Relay, parse_args

from .support.hubtools import free_port


async def start_relay(target_port: int, **kwargs) -> Relay:
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", target_port), **kwargs)
    await relay.start()
    return relay


async def echo_server(handler=None):
    """A TCP server on 127.0.0.1 (the app); returns (server, port)."""

    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data.upper())
            await writer.drain()
        writer.write(b"<eof>")
        writer.close()

    server = await asyncio.start_server(handler or echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_bytes_pass_both_ways_and_half_close_is_passed_on():
    server, port = await echo_server()
    relay = await start_relay(port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        payload = os.urandom(3 * 1024 * 1024).hex().encode()  # 6 MB, many reads
        writer.write(payload)
        await writer.drain()
        writer.write_eof()  # the app sees EOF, answers, then closes
        received = await asyncio.wait_for(reader.read(), 60)
        assert received == payload.upper() + b"<eof>"
        writer.close()
    finally:
        await relay.close()
        server.close()


async def test_http_and_websocket_upgrade_pass():
    async def page(request):
        return web.Response(text=f"hello {request.headers['Host']}")

    async def socket(request):
        ws = web.WebSocketResponse(protocols=["vite-hmr"])
        await ws.prepare(request)
        await ws.send_str("connected")
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    app = web.Application()
    app.add_routes([web.get("/", page), web.get("/hmr", socket)])
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    relay = await start_relay(port)
    try:
        base = f"http://127.0.0.1:{relay.port}"
        async with aiohttp.ClientSession() as client:
            for _ in range(3):  # keep-alive: one connection, several requests
                async with client.get(base + "/", headers={"Host": "x.apps.test"}) as reply:
                    assert reply.status == 200
                    assert await reply.text() == "hello x.apps.test"
            async with client.ws_connect(base + "/hmr", protocols=["vite-hmr"]) as ws:
                assert ws.protocol == "vite-hmr"
                assert (await ws.receive_str()) == "connected"
                await ws.send_str("update")
                assert (await ws.receive_str()) == "echo:update"
    finally:
        await relay.close()
        await runner.cleanup()


async def test_many_connections_at_once():
    server, port = await echo_server()
    relay = await start_relay(port)

    async def one(index: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(f"connection {index}".encode())
        writer.write_eof()
        answer = await reader.read()
        writer.close()
        return answer

    try:
        answers = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(300))), 120)
        assert answers == [f"CONNECTION {i}<eof>".encode() for i in range(300)]
        await asyncio.sleep(0.1)
        assert relay.open_connections == 0
    finally:
        await relay.close()
        server.close()


async def test_no_app_yet_closes_the_connection():
    relay = await start_relay(free_port())  # nothing listens there
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await relay.close()


async def test_connections_over_the_limit_are_closed():
    held = asyncio.Event()
    both_in = asyncio.Event()
    arrived = []

    async def hold(reader, writer):
        arrived.append(writer)
        if len(arrived) == 2:
            both_in.set()
        await held.wait()
        writer.close()

    server, port = await echo_server(hold)
    relay = await start_relay(port, max_connections=2)
    try:
        first = [await asyncio.open_connection("127.0.0.1", relay.port) for _ in range(2)]
        await asyncio.wait_for(both_in.wait(), 10)  # both relayed to the app
        assert relay.open_connections == 2
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # refused: closed at once
        writer.close()
        held.set()
        for reader, writer in first:
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
    finally:
        await relay.close()
        server.close()


async def test_close_ends_open_connections():
    server, port = await echo_server()
    relay = await start_relay(port)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"PING"
    await asyncio.wait_for(relay.close(), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", relay.port)
    writer.close()
    server.close()


@pytest.mark.integration
async def test_runs_as_a_process_and_stops_on_sigterm():
    server, app_port = await echo_server()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codepilot_spawner.kubernetes.relay",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--target-port",
        str(app_port),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        writer.write(b"hello")
        writer.write_eof()
        assert await reader.read() == b"HELLO<eof>"
        writer.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        server.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target-port", "3000"], "--listen-port"),
        (["--listen-port", "70000", "--target-port", "3000"], "must be a port number"),
        (["--listen-port", "9797", "--target-port", "3000", "--max-connections", "0"], "least 1"),
    ],
)
def test_bad_arguments_are_refused_clearly(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err
