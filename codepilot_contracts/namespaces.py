"""Entering a server's namespaces: its network namespace, and mounts of its own.

On one machine as root the hub gives each server a network namespace and names it by a
path (``/run/netns/<name>``, kept in the spawner's state). Whatever must act inside it
enters it with ``enter_network_namespace``: the fork server's child before it becomes the
server, and the preview gateway's thread that opens a connection to the app.

A server that runs as a Unix user of its own also gets a mount namespace
(``enter_private_mounts``), as a container would: a ``/proc`` that shows its user's
processes only (``hidepid=invisible``) and its own ``/tmp`` (a folder of its user's,
bound there), so a student sees neither every process of the machine with its command
line nor other students' temporary files.
"""

import contextlib
import ctypes
import os

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18

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


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def enter_private_mounts(tmp_dir: str = "") -> None:
    """Give the calling process (as root, before it drops to its user) mounts of its own:
    a ``/proc`` that hides other users' processes, and ``tmp_dir`` (when given) as
    ``/tmp``."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare mounts")
    # Nothing mounted from here on may reach the machine's own mount table.
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    if tmp_dir:
        _check(_libc.mount(os.fsencode(tmp_dir), b"/tmp", None, MS_BIND, None), f"bind {tmp_dir}")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    _check(_libc.mount(b"proc", b"/proc", b"proc", flags, b"hidepid=invisible"), "mount /proc")
