"""Entering a server's sandbox: its cgroup, its network namespace, and mounts of its own.

On one machine as root the hub gives each server a network namespace and names it by a
path (``/run/netns/<name>``, kept in the spawner's state). Whatever must act inside it
enters it with ``enter_network_namespace``: the fork server's child before it becomes the
server, and the preview gateway's thread that opens a connection to the app.

A server that runs as a Unix user of its own also gets a mount namespace
(``enter_private_mounts``), as a container would: a ``/proc`` that shows its user's
processes only (``hidepid=invisible``) and its own ``/tmp`` (a folder of its user's,
bound there), so a student sees neither every process of the machine with its command
line nor other students' temporary files.

``SandboxEntry`` is the one way into a server's sandbox: the plain start's ``preexec_fn``
and the fork server's child both call its ``enter``.
"""

import contextlib
import ctypes
import os
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class SandboxEntry:
    """What a process does, as root and before it drops to the server's user, to become
    part of a server's sandbox: join its cgroup (``procs_files``, written ``0``: the
    writing process), enter its network namespace (``netns``), and, for a server with a
    Unix user of its own, mounts of its own with ``tmp_dir`` (if any) as ``/tmp``."""

    procs_files: tuple[str, ...] = ()
    netns: str = ""
    private_mounts: bool = False
    tmp_dir: str = ""

    def enter(self) -> None:
        for procs in self.procs_files:
            with open(procs, "w") as f:
                f.write("0")
        if self.netns:
            enter_network_namespace(self.netns)
        if self.private_mounts:
            enter_private_mounts(self.tmp_dir)

    def to_message(self) -> dict:
        """As the fork server's channel carries it (JSON)."""
        return {**asdict(self), "procs_files": list(self.procs_files)}

    @classmethod
    def from_message(cls, message: dict | None) -> "SandboxEntry":
        message = message or {}
        return cls(
            procs_files=tuple(str(path) for path in message.get("procs_files", ())),
            netns=str(message.get("netns", "")),
            private_mounts=bool(message.get("private_mounts", False)),
            tmp_dir=str(message.get("tmp_dir", "")),
        )
