"""Find and end processes: every process a user server started, as the end of a pod
would, and processes known by pid and start time (``Process``, ``terminate``).

Terminals run their shells in sessions of their own, and a dev server started with
``nohup`` or ``&`` outlives the shell, so neither the server's process group nor its
children cover them. Every process inherits the environment variable that tags the
server, though, so /proc finds them all.
"""

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codepilot_contracts.env import PROCESS_TAG, carries_process_tag

TAG_VARIABLE = PROCESS_TAG


def tagged_pids(tag: str, proc_root: str = "/proc") -> list[int]:
    """Pids whose initial environment has ``WORKSPACE_PROCESS_TAG=<tag>``."""
    return [
        int(entry.name)
        for entry in os.scandir(proc_root)
        if entry.name.isdigit() and carries_process_tag(int(entry.name), tag, proc_root)
    ]


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def end_processes(find_pids: Callable[[], list[int]], grace: float = 5.0) -> list[int]:
    """SIGTERM every process ``find_pids`` lists (a blocking reader, run in a thread),
    SIGKILL what is left after ``grace`` seconds.

    Returns the pids that had to be killed.
    """
    pids = await asyncio.to_thread(find_pids)
    if not pids:
        return []
    signal_pids(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        pids = await asyncio.to_thread(find_pids)
        if not pids:
            return []
    signal_pids(pids, signal.SIGKILL)
    return pids


async def end_tagged_processes(tag: str, grace: float = 5.0) -> list[int]:
    """``end_processes`` for the processes tagged ``tag``: a walk of all of /proc each
    time, so where a cgroup holds the server, its own list is the one to read."""
    return await end_processes(functools.partial(tagged_pids, tag), grace)


@dataclass(frozen=True)
class Process:
    """A process known by its pid and its start time, so a reused pid is never it."""

    pid: int
    started: int  # clock ticks after boot (/proc/<pid>/stat, field 22)

    @classmethod
    def read(cls, pid: int) -> "Process | None":
        stat = _stat(pid)
        return cls(pid, stat[1]) if stat else None

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.started

    def command_line(self) -> bytes:
        try:
            return Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return b""


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after "pid (comm) " (state first); None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process; None when gone or a zombie."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[19])


def children(parent: Process) -> list[Process]:
    """The live child processes of ``parent``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[0] == parent.pid:
                found.append(Process(int(entry.name), stat[1]))
    return found


async def ended(process: Process) -> None:
    """Return once ``process`` has ended (its pidfd turns readable)."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    try:
        if not process.alive():  # the pid was reused before the pidfd was opened
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_reader(pidfd, done.set_result, None)
        try:
            await done
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


# Seconds a SIGKILLed process gets to be gone (its ports free) before terminate returns.
KILL_WAIT = 5.0


async def terminate(processes: list[Process], grace: float) -> int:
    """SIGTERM ``processes``, SIGKILL those alive after ``grace`` seconds, and return once
    they are gone (their ports free); how many were alive."""
    alive = [process for process in processes if process.alive()]
    await _signal_and_wait(alive, signal.SIGTERM, grace)
    await _signal_and_wait([p for p in alive if p.alive()], signal.SIGKILL, KILL_WAIT)
    return len(alive)


async def _signal_and_wait(processes: list[Process], signum: int, seconds: float) -> None:
    """Send ``signum`` to ``processes``, then wait up to ``seconds`` for them to end."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.gather(*(ended(process) for process in processes))
