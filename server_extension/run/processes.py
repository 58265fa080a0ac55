"""The processes of a run, found from ``/proc``: every descendant of the run's root.

The run's root (``reaper.py``) is a child subreaper, so a process of the run that
leaves its session (``setsid``, a daemonizing server, a double fork) is re-parented to
the root, not to init: walking the parent links down from the root finds it wherever it
went. npm's children, Flask's reloader, Vite's esbuild service and a shell's background
jobs are descendants as well. Ending them all leaves no server behind on the preview's
port.
"""

import asyncio
import contextlib
import os
import signal
import time

PROC = "/proc"


def stat_fields(stat: str) -> list[str]:
    """The fields of a ``/proc/<pid>/stat`` line after the command name, which may hold
    spaces and parentheses: state, ppid, pgrp, session, ..."""
    return stat[stat.rindex(")") + 2 :].split()


def process_table(proc: str = PROC) -> dict[int, tuple[int, str]]:
    """Every process /proc shows: pid -> (parent pid, state letter)."""
    table = {}
    try:
        entries = os.listdir(proc)
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as stream:
                fields = stat_fields(stream.read())
        except (OSError, ValueError):
            continue  # gone since the listing, or not ours to read
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int, proc: str = PROC) -> list[int]:
    """The pids of the living processes (zombies excluded) below ``root``, parents first."""
    children: dict[int, list[int]] = {}
    table = process_table(proc)
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found = []
    below = list(children.get(root, ()))
    while below:
        pid = below.pop(0)
        if table[pid][1] != "Z":
            found.append(pid)
        below.extend(children.get(pid, ()))
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def end_descendants(root: int, grace: float, poll: float = 0.05) -> list[int]:
    """SIGTERM (and SIGHUP, which a pty's programs expect) to ``root`` and every process
    below it, SIGKILL to those below it left after ``grace`` seconds; returns the pids
    that had to be killed. ``root`` exits by itself once it has no child left."""
    # Off the event loop: /proc lists every process of the machine.
    members = await asyncio.to_thread(descendants, root)
    signal_all([root, *members], signal.SIGTERM)  # the root, even before it started any
    signal_all(members, signal.SIGHUP)
    signal_all(members, signal.SIGCONT)  # a stopped process handles its signals only now
    deadline = time.monotonic() + grace
    while members and time.monotonic() < deadline:
        await asyncio.sleep(poll)
        members = await asyncio.to_thread(descendants, root)
    killed = []
    # Again until none is left: a process that forked as SIGKILL came leaves a child,
    # re-parented to the root, for the next round.
    for _ in range(100):
        if not members:
            break
        signal_all(members, signal.SIGKILL)
        killed.extend(pid for pid in members if pid not in killed)
        await asyncio.sleep(poll)
        members = await asyncio.to_thread(descendants, root)
    return killed
