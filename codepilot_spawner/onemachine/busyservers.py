"""Busy servers yield the CPU sooner: a typist's keystroke is not queued behind an install.

Every server's cgroup has the same CPU weight, so the kernel splits the CPU evenly among
the servers that want it. But a server that was idle and wakes for one keystroke or one
save competes with the running ones at equal weight, and waits out their time slices: with
ten servers spinning on two cores, one wake-up's p99 is 10.5-11 ms, 4.9 ms with busy ones
weighted down (``tests/benchmarks/bench_busy_weight.py``), and a keystroke's echo takes
several (proxy, server, shell). A server that has wanted ``busy_cpus`` of a CPU over
a ``window`` (an install, a build, a test run) gets ``busy_weight`` of the normal weight
until it is quiet again: it still gets every cycle nobody else wants, and among busy
servers the split is as even as before, but a server waking for a moment goes first.

What a server wants is the CPU time it used plus the time its runnable processes waited
for a CPU: ten installs on two cores each use a fifth of a CPU but want all of one. One
watcher per hub reads it every ``window`` seconds in a thread: on cgroup v2 from the
group's ``cpu.stat`` and ``cpu.pressure``, on v1 from its processes' ``stat`` (with the
children they reaped) and ``schedstat``.
"""

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .cgroups import Hierarchy, hub_cgroups
from .processes import stat_fields

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NORMAL_WEIGHT = {1: 1024, 2: 100}  # cpu.shares, cpu.weight: the kernel's defaults
PROCESSES_READ = 256  # of a group, on cgroup v1


@dataclass(frozen=True)
class BusyPolicy:
    busy_cpus: float = 0.5  # a server wanting this much of a CPU over a window is busy
    quiet_cpus: float = 0.2  # and quiet again once under this
    window: float = 1.0  # seconds
    busy_weight: float = 0.125  # a busy server's share of the normal weight


def still_busy(was_busy: bool, cpus: float, policy: BusyPolicy) -> bool:
    """Whether a server that wanted ``cpus`` of a CPU over the last window is busy now."""
    return cpus >= (policy.quiet_cpus if was_busy else policy.busy_cpus)


def weight_file(version: int, busy: bool, policy: BusyPolicy) -> tuple[str, str]:
    """``(file, value)`` that gives a server its weight."""
    normal = NORMAL_WEIGHT[version]
    weight = max(2, round(normal * policy.busy_weight)) if busy else normal
    return ("cpu.weight" if version == 2 else "cpu.shares"), str(weight)


def wanted_seconds_v2(cpu_stat: str, cpu_pressure: str) -> float:
    """Seconds a v2 group used a CPU or had a task waiting for one (``some`` stall)."""
    used = waited = 0
    for line in cpu_stat.splitlines():
        name, _, value = line.partition(" ")
        if name == "usage_usec":
            used = int(value)
    for line in cpu_pressure.splitlines():
        if line.startswith("some "):
            waited = int(line.rsplit("total=", 1)[1])
    return (used + waited) / 1e6


def wanted_seconds_of(pid: int) -> float | None:
    """Seconds process ``pid`` used a CPU (with the children it reaped) or waited for one;
    None once it has ended."""
    if (fields := stat_fields(pid)) is None:
        return None
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as schedstat:
            waited_ns = int(schedstat.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    # utime, stime, cutime, cstime
    return sum(int(field) for field in fields[11:15]) / CLOCK_TICKS + waited_ns / 1e9


class BusyServers:
    """Sets each server's CPU weight under ``parent`` (``codepilot/<hub>``) from its use."""

    def __init__(
        self,
        hierarchy: Hierarchy,
        parent: str,
        policy: BusyPolicy = BusyPolicy(),
        log: logging.Logger | None = None,
    ):
        self.hierarchy, self.parent, self.policy = hierarchy, parent, policy
        self.log = log or logging.getLogger(__name__)
        self.cpu_root = Path(hierarchy.roots["cpu"])
        # group -> seconds of CPU wanted at the last scan, by process (v1) or for all (v2)
        self._wanted: dict[str, dict[int, float]] = {}
        self.busy: set[str] = set()

    def wanted_seconds(self, group: str) -> dict[int, float]:
        """Blocking: seconds of CPU the group wanted, per process on v1 (0: the group)."""
        directory = self.cpu_root / group
        if self.hierarchy.version == 2:
            stat = (directory / "cpu.stat").read_text()
            return {0: wanted_seconds_v2(stat, (directory / "cpu.pressure").read_text())}
        found = {}
        # A fork bomb's thousands of sleepers want nothing: the first few hundred say
        # enough of what the group wants, and the scan stays cheap.
        for pid in (directory / "cgroup.procs").read_text().split()[:PROCESSES_READ]:
            if (seconds := wanted_seconds_of(int(pid))) is not None:
                found[int(pid)] = seconds
        return found

    def scan(self, seconds: float) -> None:
        """Blocking: classify every server by what it wanted over the last ``seconds``."""
        groups = set(hub_cgroups(self.hierarchy, self.parent))
        for group in groups:
            try:
                wanted = self.wanted_seconds(group)
            except (OSError, ValueError):
                continue  # stopping
            before = self._wanted.get(group)
            self._wanted[group] = wanted
            if before is None:
                continue
            # A process new since the last scan counts from its start (it started within
            # the window); one that ended takes its time with it.
            more = sum(max(0.0, now - before.get(pid, 0.0)) for pid, now in wanted.items())
            was_busy = group in self.busy
            busy = still_busy(was_busy, more / seconds, self.policy)
            if busy != was_busy:
                self._set_weight(group, busy)
        for gone in set(self._wanted) - groups:
            del self._wanted[gone]
            self.busy.discard(gone)

    def _set_weight(self, group: str, busy: bool) -> None:
        name, value = weight_file(self.hierarchy.version, busy, self.policy)
        try:
            (self.cpu_root / group / name).write_text(value)
        except OSError as error:
            self.log.debug("CPU weight of %s not set: %s", group, error)
            return
        if busy:
            self.busy.add(group)
        else:
            self.busy.discard(group)

    async def run(self) -> None:
        """Every ``window`` seconds, for as long as the hub runs."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.policy.window)
            now = loop.time()
            try:
                await asyncio.to_thread(self.scan, now - last)
            except Exception:  # the next scan tries again
                self.log.exception("Busy servers: scan failed")
            last = now


_watchers: dict[str, asyncio.Task] = {}


def watch_busy_servers(hierarchy: Hierarchy, parent: str, policy: BusyPolicy, log) -> None:
    """Start the hub's watcher of ``parent``'s servers, once per hub process."""
    task = _watchers.get(parent)
    if task is None or task.done():
        watcher = BusyServers(hierarchy, parent, policy, log)
        _watchers[parent] = asyncio.get_running_loop().create_task(watcher.run())
