"""The preview relay of user pods on the addresses a pod has: IPv4, IPv6, or both.

Started as the sidecar starts it (its command-line defaults), the relay must take the
gateway's connections on an IPv6-only pod as on an IPv4 one.
"""

import asyncio
import socket

import pytest

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
