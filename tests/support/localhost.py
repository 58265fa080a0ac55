"""Resolve ``*.localhost`` to loopback in the test process, as browsers do (and
``*.test``, as Chromium's ``--host-resolver-rules`` do in the tests that use it).

Python's resolver asks DNS for ``<label>.preview.localhost``; Chromium and curl answer
127.0.0.1 themselves. With this installed, ``requests`` sees preview origins exactly as
a browser does, host-only cookies included.
"""

import contextlib
import socket

_system_getaddrinfo = socket.getaddrinfo


# ``.test`` is reserved for testing (RFC 2606): hubs "on a network" are named under it.
LOOPBACK_SUFFIXES = (".localhost", ".test")


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host.rstrip(".").lower().endswith(LOOPBACK_SUFFIXES):
        host = "127.0.0.1"
    return _system_getaddrinfo(host, *args, **kwargs)


@contextlib.contextmanager
def resolve_localhost_subdomains():
    previous, socket.getaddrinfo = socket.getaddrinfo, _getaddrinfo
    try:
        yield
    finally:  # the resolver in place before: this may run inside the session's
        socket.getaddrinfo = previous


def install_localhost_resolver() -> None:
    """Resolve ``*.localhost`` and ``*.test`` to loopback in this process from now on."""
    socket.getaddrinfo = _getaddrinfo
