"""The preview relay of user pods on Kubernetes: the addresses a pod has, and the start
it serves.

Started as the sidecar starts it (its command-line defaults), the relay takes the
gateway's connections on an IPv6-only pod as on an IPv4 one. With a start id it takes
only the gateway's connections for that start: a pod IP the CNI hands to another pod
never carries the first pod's viewers to the second pod's app.
"""

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from codepilot_contracts.porthosts import port_label
from codepilot_contracts.relay import start_line
from codepilot_spawner.kubernetes.relay import Relay, parse_args
from codepilot_spawner.services.preview.access import SHARE_LEVELS
from codepilot_spawner.services.preview.app import previews_server
from codepilot_spawner.services.preview.appconnection import make_connector
from codepilot_spawner.services.preview.gateway import PreviewGateway
from codepilot_spawner.services.preview.hosts import PreviewDomain, preview_label
from codepilot_spawner.services.preview.servers import PreviewTarget, ServerDirectory
from codepilot_spawner.services.preview.sessions import KeptFile, SessionBook, ShareBook
from codepilot_spawner.spawners.previewroute import PreviewRoute

from .support.hubtools import free_port, has_ipv6_loopback
from .support.loopback import start_on_loopback


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

    async def echo(request):
        connections.add(request.transport.get_extra_info("peername"))
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(message.data.upper())
        return socket

    app = web.Application()
    app.router.add_get("/hot-reload", echo)
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    return runner, await start_on_loopback(runner), connections


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


async def test_a_relay_reaches_the_listening_port_a_line_names_never_its_own_or_a_closed_one():
    """A ``<port>--<label>`` host on Kubernetes: the gateway names the port in its start
    line; the relay joins it only to a port something in the pod listens on that is not
    the server's own (``--reserved-port``) nor the relay's."""
    runner, app_port, _ = await start_app()
    ide_runner, ide_port, ide_connections = await start_app()  # the server's own port
    closed_port = free_port()
    relay = Relay(
        ("127.0.0.1", 0),
        ("127.0.0.1", closed_port),
        start_id="a1b2c3d4e5f6a7b8",
        reserved_ports=(ide_port,),
    )
    await relay.start()

    async def fetch(port: int) -> str:
        connector = make_connector("", preamble=start_line("a1b2c3d4e5f6a7b8", port))
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            client.get(f"http://127.0.0.1:{relay.port}/page") as answer,
        ):
            return await answer.text()

    try:
        assert await fetch(app_port) == "hello from /page"
        for refused in (ide_port, relay.port, closed_port):
            with pytest.raises(aiohttp.ClientConnectionError):
                await fetch(refused)
        assert not ide_connections
        args = parse_args(["--listen-port", "1", "--target-port", "2", "--reserved-port", "8888"])
        assert args.reserved_port == [8888]
    finally:
        await relay.close()
        await runner.cleanup()
        await ide_runner.cleanup()


def test_start_ids_are_checked_on_the_command_line():
    assert parse_args(["--listen-port", "1", "--target-port", "2"]).start_id == ""
    args = parse_args(["--listen-port", "1", "--target-port", "2", "--start-id", "ab12"])
    assert args.start_id == "ab12"
    with pytest.raises(SystemExit):
        parse_args(["--listen-port", "1", "--target-port", "2", "--start-id", "a b\r\n"])


async def test_gateway_reaches_a_pod_through_its_checking_relay_and_never_another():
    """The gateway as on Kubernetes (a pod's address, a relay with its start id): a
    preview passes, websockets too; a target whose pod IP now holds another start's
    relay gets the "app down" answer and the app sees nothing."""
    log = logging.getLogger("test")
    runner, app_port, connections = await start_app()
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", app_port), start_id="a1b2c3d4e5f6a7b8")
    await relay.start()
    domain = PreviewDomain("preview.localhost", "http", 8002)

    def target(start: str) -> PreviewTarget:
        return PreviewTarget(
            user="ana",
            server="",
            label=preview_label("ana"),
            route=PreviewRoute(
                start_id=start,
                app_port=3000,
                relay_port=relay.port,
                host="127.0.0.1",  # the pod IP on a cluster
                relay_checks_start=True,
                relay_picks_port=True,
            ),
        )

    async def gateway_for(serving: PreviewTarget):
        shares = ShareBook(KeptFile(None, log), SHARE_LEVELS)
        await shares.set_level(serving, "public")  # no sign-in in the way
        dead_hub = f"http://127.0.0.1:{free_port()}/hub/api"
        directory = ServerDirectory(api_url=dead_hub, api_token="t", log=log)
        directory.targets = {serving.label: serving}
        gateway = PreviewGateway(
            domain=domain,
            directory=directory,
            sessions=SessionBook(3600, KeptFile(None, log)),
            shares=shares,
            secret=b"k" * 32,
            login_url="http://hub/login",
            hub_auth=None,
        )
        server_runner = web.ServerRunner(previews_server(gateway.handle, 30))
        return gateway, server_runner, await start_on_loopback(server_runner)

    headers = {"Host": f"{preview_label('ana')}.preview.localhost:8002"}

    async def view(port: int, path: str, host_label: str = "") -> tuple[int, str]:
        host = {"Host": f"{host_label}.preview.localhost:8002"} if host_label else headers
        async with (
            aiohttp.ClientSession() as viewer,
            viewer.get(f"http://127.0.0.1:{port}{path}", headers=host) as answer,
        ):
            return answer.status, await answer.text()

    try:
        gateway, server_runner, port = await gateway_for(target("a1b2c3d4e5f6a7b8"))
        try:
            assert await view(port, "/app.js") == (200, "hello from /app.js")
            # A <port>--<label> host: the relay reaches the port the gateway names, if
            # the pod listens there and it is not the pod's own (the relay's here).
            named = port_label(app_port, preview_label("ana"))
            assert await view(port, "/x", named) == (200, "hello from /x")
            status, page = await view(port, "/", port_label(relay.port, preview_label("ana")))
            assert status == 502 and "hello" not in page
            async with (
                aiohttp.ClientSession() as viewer,
                viewer.ws_connect(f"http://127.0.0.1:{port}/hot-reload", headers=headers) as ws,
            ):
                await ws.send_str("update")
                assert (await ws.receive()).data == "UPDATE"
        finally:
            await gateway.close()
            await server_runner.cleanup()
        reached = len(connections)
        assert reached >= 1
        # The hub has not seen the pod go; its IP now holds another start's relay.
        gateway, server_runner, port = await gateway_for(target("ffffffffffffffff"))
        try:
            status, page = await view(port, "/")
            assert status == 502 and "hello" not in page  # the "no app is running" page
        finally:
            await gateway.close()
            await server_runner.cleanup()
        assert len(connections) == reached  # the app saw nothing more
    finally:
        await relay.close()
        await runner.cleanup()


async def test_a_connection_that_names_no_start_holds_the_relay_only_briefly(monkeypatch):
    """Silence instead of a start line costs the relay one slot for a bounded time."""
    import codepilot_spawner.kubernetes.relay as relay_module

    monkeypatch.setattr(relay_module, "START_LINE_SECONDS", 0.2)
    runner, app_port, connections = await start_app()
    relay = Relay(("127.0.0.1", 0), ("127.0.0.1", app_port), start_id="a1b2c3d4e5f6a7b8")
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert await asyncio.wait_for(reader.read(), 30) == b""  # closed by the relay
        writer.close()
        assert relay.open_connections == 0 and not connections
    finally:
        await relay.close()
        await runner.cleanup()
