"""Entering a server's network namespace, named by its path.

On one machine as root the hub gives each server a network namespace and names it by a
path (``/run/netns/<name>``, kept in the spawner's state). Whatever must act inside it
enters it with ``enter_network_namespace``: the fork server's child before it becomes the
server, and the preview gateway's thread that opens a connection to the app.
"""

import contextlib
import ctypes
import os

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def enter_network_namespace(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
