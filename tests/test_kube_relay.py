"""The preview relay of user pods on Kubernetes: the addresses a pod has, and the start
it serves.

Started as the sidecar starts it (its command-line defaults), the relay takes the
gateway's connections on an IPv6-only pod as on an IPv4 one. With a start id it takes
only the gateway's connections for that start: a pod IP the CNI hands to another pod
never carries the first pod's viewers to the second pod's app.
"""

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from codepilot_contracts.relay import start_line
from codepilot_spawner.preview.upstream import make_connector
from server_extension.relay import Relay, parse_args

from .hubtools import free_port


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


async def exchange(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"ping")
    writer.write_eof()
    reply = await reader.read()
    writer.close()
    return reply


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_relay_with_its_default_address_takes_ipv4_and_ipv6():
    async def app(reader, writer):
        writer.write(b"pong:" + await reader.read())
        writer.close()

    target = await asyncio.start_server(app, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    args = parse_args(["--listen-port", str(free_port()), "--target-port", str(target_port)])
    relay = Relay((args.listen_host, args.listen_port), (args.target_host, args.target_port))
    await relay.start()
    try:
        assert await exchange("127.0.0.1", relay.port) == b"pong:ping"
        assert await exchange("::1", relay.port) == b"pong:ping"
    finally:
        await relay.close()
        target.close()
        await target.wait_closed()


# --- the start check: a pod IP given to another pod ----------------------------------------------


async def start_app():
    """An HTTP app on loopback; returns (runner, port, the connections it was given)."""
    connections = set()

    async def hello(request):
        connections.add(request.transport.get_extra_info("peername"))
        return web.Response(text=f"hello from {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], connections


async def test_relay_with_a_start_id_serves_only_that_start():
    runner, app_port, connections = await start_app()
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", app_port), start_id="a1b2c3d4e5f6a7b8")
    await relay.start()
    url = f"http://127.0.0.1:{relay.port}"
    try:
        # The gateway's pool for this start: every connection opens with its line, and
        # the app sees the requests only (two on one kept-alive connection).
        line = start_line("a1b2c3d4e5f6a7b8")
        async with aiohttp.ClientSession(connector=make_connector("", preamble=line)) as client:
            for path in ("/", "/src/main.js"):
                async with client.get(url + path) as response:
                    assert await response.text() == f"hello from {path}"
        assert len(connections) == 1
        # The pod IP now belongs to another server's pod: the gateway's pool for the old
        # start names that start, and the relay closes it before the app.
        stale = make_connector("", preamble=start_line("0000000000000000"))
        async with aiohttp.ClientSession(connector=stale) as client:
            with pytest.raises(aiohttp.ClientConnectionError):
                await (await client.get(url + "/")).read()
        # A gateway that names no start (or anything else) gets nothing either.
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.ClientConnectionError):
                await (await client.get(url + "/")).read()
        assert len(connections) == 1
    finally:
        await relay.close()
        await runner.cleanup()


def test_start_ids_are_checked_on_the_command_line():
    assert parse_args(["--listen-port", "1", "--target-port", "2"]).start_id == ""
    args = parse_args(["--listen-port", "1", "--target-port", "2", "--start-id", "ab12"])
    assert args.start_id == "ab12"
    with pytest.raises(SystemExit):
        parse_args(["--listen-port", "1", "--target-port", "2", "--start-id", "a b\r\n"])
