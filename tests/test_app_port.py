"""The check behind "Your app is running": a loopback connect on the app's port, shared by
every request that comes within a second, with real sockets."""

import asyncio

import pytest

from server_extension.appport import PortProbe

from .support.hubtools import free_port, has_ipv6_loopback


class CountingServer:
    """A listener on ``host`` that counts the connections it accepted."""

    def __init__(self):
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._accept, host, port)

    async def _accept(self, reader, writer):
        self.connections += 1
        await reader.read()  # until the probe closes its end
        writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_nothing_listening_is_not_running():
    assert await PortProbe(free_port(), fresh=0).listening() is False


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])
async def test_an_app_on_any_loopback_address_is_running(host):
    if host == "::1" and not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    port = free_port()
    app = CountingServer()
    await app.start(host, port)
    try:
        assert await PortProbe(port, fresh=0).listening() is True
    finally:
        await app.stop()


async def test_a_burst_costs_the_app_one_connection_and_a_stop_is_seen():
    port = free_port()
    app = CountingServer()
    await app.start("127.0.0.1", port)
    probe = PortProbe(port, fresh=60)
    try:
        answers = await asyncio.gather(*(probe.listening() for _ in range(200)))
        assert answers == [True] * 200
        assert app.connections == 1
    finally:
        await app.stop()
    probe.fresh = 0  # the next request checks again
    assert await probe.listening() is False
