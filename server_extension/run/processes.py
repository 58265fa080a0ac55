"""The processes of a run, found from ``/proc``: every process in the run's session.

The run's first process leads a session of its own (terminado starts it on a new pty
with ``setsid``), and everything it starts stays in that session unless it calls
``setsid`` itself: npm's children, Flask's reloader, Vite's esbuild service, a shell's
background jobs. Ending the session's processes, not just the first one's process group,
leaves no server behind on the preview's port.
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


def session_members(session_id: int, proc: str = PROC) -> list[int]:
    """The pids of the living processes (zombies excluded) in session ``session_id``."""
    members = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return members
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as stream:
                fields = stat_fields(stream.read())
        except (OSError, ValueError):
            continue  # gone since the listing, or not ours to read
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.append(int(entry))
    return members


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


async def end_session(session_id: int, grace: float, poll: float = 0.05) -> list[int]:
    """SIGTERM (and SIGHUP, which a pty's programs expect) to every process of the session,
    SIGKILL to those left after ``grace`` seconds; returns the pids that had to be killed."""
    # Off the event loop: without isolation /proc lists every process of the machine.
    members = await asyncio.to_thread(session_members, session_id)
    signal_all(members, signal.SIGHUP)
    signal_all(members, signal.SIGTERM)
    signal_all(members, signal.SIGCONT)  # a stopped process handles its signals only now
    deadline = time.monotonic() + grace
    while members and time.monotonic() < deadline:
        await asyncio.sleep(poll)
        members = await asyncio.to_thread(session_members, session_id)
    signal_all(members, signal.SIGKILL)
    return members
