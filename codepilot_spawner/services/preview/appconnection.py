"""Connections from the gateway to an app, inside the app's own network namespace.

On one machine as root, each user server has a network namespace of its own and its app
listens on 127.0.0.1 there, out of reach of every other user. The gateway (root, in the
machine's namespace) makes its upstream sockets inside that namespace: the thread that
creates a socket enters the namespace with ``setns(2)``, creates it and comes back. A
socket stays in the namespace it was created in, so the connection, and every keep-alive
reuse of it, reaches the app's own loopback. One pooled connector per server start.
"""

import asyncio
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import TypeVar

import aiohttp

from codepilot_contracts.listening import Listener, read_listeners
from codepilot_contracts.namespaces import enter_network_namespace

from ...upstream_api.aiohttp import PreambleConnector
from .apphttp import AppConnection, Connect

# Seconds an app has to accept a connection.
CONNECT_SECONDS = 5

T = TypeVar("T")


def inside_namespace(netns_path: str, action: Callable[[], T]) -> T:
    """``action()`` run by this thread inside the network namespace at ``netns_path``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter_network_namespace(netns_path)
        try:
            return action()
        finally:
            # Never leave this thread (the event loop's) in a user's namespace.
            enter_network_namespace(f"/proc/self/fd/{own}")
    finally:
        os.close(own)


def socket_in_namespace(netns_path: str, family: int, kind: int, proto: int) -> socket.socket:
    """A new socket that belongs to the network namespace at ``netns_path``."""
    return inside_namespace(netns_path, lambda: socket.socket(family, kind, proto))


def listeners_in_namespace(netns_path: str) -> list[Listener]:
    """The listening sockets of the namespace at ``netns_path``, as its kernel lists them
    (``/proc/thread-self/net`` is the namespace of the thread that reads it). Blocking."""
    return inside_namespace(netns_path, read_listeners)


def make_connector(netns: str, limit: int = 64, preamble: bytes = b"") -> aiohttp.TCPConnector:
    """A keep-alive pool whose sockets live in ``netns`` (or the gateway's own, if empty),
    each connection begun with ``preamble`` when one is given (Kubernetes relays)."""
    options = {"limit": limit, "keepalive_timeout": 30}
    if netns:

        def factory(addr_info):
            family, kind, proto, _, _ = addr_info
            sock = socket_in_namespace(netns, family, kind, proto)
            sock.setblocking(False)
            return sock

        options["socket_factory"] = factory
    else:
        options["ttl_dns_cache"] = None
    if preamble:
        return PreambleConnector(preamble, **options)
    return aiohttp.TCPConnector(**options)


def app_connector(netns: str, host: str, port: int, preamble: bytes = b"") -> Connect:
    """How the gateway's HTTP pool (``apphttp.AppPool``) connects to an app: a socket made
    in ``netns`` (or the gateway's own network, if empty), each connection begun with
    ``preamble`` when one is given (Kubernetes relays)."""

    async def connect(protocol_factory: Callable[[], AppConnection]) -> AppConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_SECONDS):
            if netns:
                family, address = await _address(loop, host, port)
                sock = socket_in_namespace(netns, family, socket.SOCK_STREAM, 0)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, address)
                    _, connection = await loop.create_connection(protocol_factory, sock=sock)
                except BaseException:
                    sock.close()
                    raise
            else:
                _, connection = await loop.create_connection(protocol_factory, host, port)
        if preamble:
            connection.transport.write(preamble)
        return connection

    return connect


async def _address(loop, host: str, port: int) -> tuple[int, tuple]:
    """(family, socket address) of ``host``: an address as it is, a name looked up."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        family, _, _, _, sockaddr = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
        return family, sockaddr
    if address.version == 6:
        return socket.AF_INET6, (host, port, 0, 0)
    return socket.AF_INET, (host, port)
