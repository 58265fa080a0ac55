"""The TCP ports this server's processes listen on, and which process holds each.

The server reads its own network namespace (a pod, or its namespace on one machine):
``/proc/self/net/tcp{,6}`` list the listening sockets (``codepilot_contracts.listening``),
and the ``socket:[<inode>]`` links in ``/proc/<pid>/fd`` say which process holds each, for
the processes this server's user may read. A port of the run's processes (its root's
descendants, ``run/processes.py``) is the app's when ``PORT`` is not listened on. The server's own
ports (its IDE's) are never listed: they are no preview. On one machine, where servers
without a namespace share the machine's sockets, a port is listed only when a process of
this server holds it (it carries the server's ``WORKSPACE_PROCESS_TAG``).

What the gateway serves does not rest on this list: it reads the namespace's sockets
itself. This is for the IDE, which offers each port as a preview of its own.
"""

import os
from dataclasses import dataclass

from codepilot_contracts.env import PROCESS_TAG, carries_process_tag
from codepilot_contracts.listening import Listener, previewable_ports, read_listeners

from .run.processes import PROC

_SOCKET_LINK = "socket:["


@dataclass(frozen=True)
class ListeningPort:
    """One previewable port: who listens on it, and whether it is the run's."""

    port: int
    process: str  # the command name of the process holding it
    pid: int
    in_run: bool


def socket_inode(link: str) -> int | None:
    """``socket:[12345]`` (a ``/proc/<pid>/fd`` link) -> ``12345``; None for other files."""
    if not (link.startswith(_SOCKET_LINK) and link.endswith("]")):
        return None
    digits = link[len(_SOCKET_LINK) : -1]
    return int(digits) if digits.isdigit() else None


def socket_holders(inodes: set[int], proc: str = PROC) -> dict[int, int]:
    """``{inode: pid}`` for the sockets in ``inodes`` held by processes this user may
    read (others' ``fd`` folders are closed to it). Blocking: a walk of ``/proc``."""
    holders: dict[int, int] = {}
    uid = os.geteuid()
    for entry in os.listdir(proc):
        if len(holders) == len(inodes):
            break  # every socket found: the rest of /proc need not be read
        if not entry.isdigit():
            continue
        try:
            if uid and os.stat(f"{proc}/{entry}").st_uid != uid:
                continue  # another user's process: its descriptors are not ours to read
            names = os.listdir(f"{proc}/{entry}/fd")
        except OSError:
            continue
        for name in names:
            try:
                inode = socket_inode(os.readlink(f"{proc}/{entry}/fd/{name}"))
            except OSError:
                continue
            if inode in inodes:
                holders.setdefault(inode, int(entry))
    return holders


def _read(path: str) -> str:
    try:
        with open(path) as stream:
            return stream.read()
    except OSError:
        return ""


def describe_ports(
    listeners: list[Listener],
    holders: dict[int, int],
    own_ports: set[int],
    run_processes: set[int],
    tag: str = "",
    proc: str = PROC,
) -> list[ListeningPort]:
    """The previewable ports of ``listeners`` that a process of this server holds (one
    carrying ``tag``, where there is one), each with that process; the server's own
    process's ports and ``own_ports`` left out."""
    server_pid = os.getpid()
    own = set(own_ports) | {s.port for s in listeners if holders.get(s.inode) == server_pid}
    described = []
    for port in previewable_ports(listeners, own):
        pid = next(
            (holders[s.inode] for s in listeners if s.port == port and s.inode in holders), None
        )
        # Without a tag (a pod) every socket of the namespace is this server's.
        if pid is None or (tag and not carries_process_tag(pid, tag, proc)):
            continue  # held by a process this server cannot read, or another server's
        name = _read(f"{proc}/{pid}/comm").strip()
        in_run = pid in run_processes
        described.append(ListeningPort(port, name, pid, in_run))
    return described


def listening_ports(own_ports: set[int], run_processes: set[int]) -> list[ListeningPort]:
    """The previewable ports of this server's namespace now (blocking: reads /proc)."""
    listeners = read_listeners("/proc/self/net")
    # Only sockets that could be previewed are looked for in /proc/<pid>/fd: with no app
    # running, no walk at all (without isolation /proc lists the machine's processes).
    wanted = {s.inode for s in listeners if s.reachable_on_loopback and s.port not in own_ports}
    holders = socket_holders(wanted) if wanted else {}
    tag = os.environ.get(PROCESS_TAG, "")
    return describe_ports(listeners, holders, own_ports, run_processes, tag)
