"""Wake-up latency of idle servers while others install: busy servers weighted down or not.

Ten server cgroups (1 CPU each, as isolated servers get) spin as installs do; forty more
each hold a process that answers one byte, as a server answers a keystroke. A client in
the hub's cgroup sends each of the forty a byte every 0.3 to 0.9 s and times the answer:
one hop of a keystroke's echo. Side by side in one run: every server at the same weight
(the kernel's default), and the hub's busy-server watcher (``busyservers.py``) weighting
the spinners down. As root, cgroups under ``codepilot-bench/``; removed at the end.
Prints JSON and one summary line.
"""

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from codepilot_spawner.onemachine.busyservers import BusyPolicy, BusyServers
from codepilot_spawner.onemachine.cgroups import Limits, ServerCgroup, machine_hierarchy
from tests.support.timing import percentile

SPINNERS, TYPISTS = 10, 40
SECONDS = 20
WARM_UP = 3
ANSWER = (
    "import socket, sys\n"
    "s = socket.socket(fileno=int(sys.argv[1]))\n"
    "while data := s.recv(64):\n"
    "    s.send(data)\n"
)


def join(group: ServerCgroup, pid: int) -> None:
    for procs in group.procs_files:
        Path(procs).write_text(str(pid))


async def typist(sock: socket.socket, rtts: list[float], until: float) -> None:
    loop = asyncio.get_running_loop()
    while time.monotonic() < until:
        await asyncio.sleep(random.uniform(0.3, 0.9))
        sent = time.perf_counter()
        await loop.sock_sendall(sock, b"k")
        await loop.sock_recv(sock, 64)
        rtts.append((time.perf_counter() - sent) * 1000)


async def measure(sockets) -> list[float]:
    rtts: list[float] = []
    until = time.monotonic() + SECONDS
    await asyncio.gather(*(typist(sock, rtts, until) for sock in sockets))
    return rtts


def watch(hierarchy, parent: str, weighted_down) -> None:
    """The hub's watcher, in a process of its own as in the hub (not the timing client's)."""
    watcher = BusyServers(hierarchy, parent, BusyPolicy())

    async def until_stopped():
        scanning = asyncio.create_task(watcher.run())
        await asyncio.sleep(WARM_UP + SECONDS + 1)
        weighted_down.value = len(watcher.busy)
        scanning.cancel()

    asyncio.run(until_stopped())


def run(kind: str, hierarchy, parent: str) -> dict:
    groups, processes, sockets = [], [], []
    try:
        for number in range(SPINNERS):
            group = ServerCgroup(hierarchy, f"{parent}/{kind}-spin{number}")
            group.create(Limits(cpus=1))
            groups.append(group)
            process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            processes.append(process)
            join(group, process.pid)
        for number in range(TYPISTS):
            group = ServerCgroup(hierarchy, f"{parent}/{kind}-type{number}")
            group.create(Limits(cpus=1))
            groups.append(group)
            ours, theirs = socket.socketpair()
            process = subprocess.Popen(
                [sys.executable, "-c", ANSWER, str(theirs.fileno())], pass_fds=[theirs.fileno()]
            )
            theirs.close()
            processes.append(process)
            join(group, process.pid)
            ours.setblocking(False)
            sockets.append(ours)
        weighted_down = multiprocessing.Value("i", 0)
        watcher = multiprocessing.Process(target=watch, args=(hierarchy, parent, weighted_down))
        if kind == "busy-weighted":
            watcher.start()
        time.sleep(WARM_UP)  # the watcher has seen the spinners (it reads once a second)
        rtts = asyncio.run(measure(sockets))
        if kind == "busy-weighted":
            watcher.join()
        return {
            "samples": len(rtts),
            "p50_ms": round(statistics.median(rtts), 2),
            "p90_ms": round(percentile(rtts, 0.90), 2),
            "p99_ms": round(percentile(rtts, 0.99), 2),
            "max_ms": round(max(rtts), 1),
            "spinners_weighted_down": weighted_down.value,
        }
    finally:
        for sock in sockets:
            sock.close()
        for process in processes:
            process.kill()
            process.wait()
        for group in groups:
            group.kill_all()
            group.remove()


def main():
    if os.geteuid() != 0:
        sys.exit("bench_busy_weight.py needs root (it makes cgroups)")
    hierarchy = machine_hierarchy()
    parent = f"codepilot-bench/{uuid.uuid4().hex[:8]}"
    result = {"benchmark": "busy_weight", "cpus": os.cpu_count(), "seconds": SECONDS}
    try:
        for kind in ("equal", "busy-weighted", "equal", "busy-weighted"):
            result.setdefault(kind, []).append(run(kind, hierarchy, parent))
    finally:
        for root in set(hierarchy.roots.values()):
            for path in (Path(root, parent), Path(root, "codepilot-bench")):
                with contextlib.suppress(OSError):  # not empty: another run's
                    path.rmdir()
    print(json.dumps(result))
    best = {
        kind: min(runs, key=lambda r: r["p99_ms"])
        for kind, runs in result.items()
        if isinstance(runs, list)
    }
    print(
        f"busy weight: one wake-up's p99 {best['busy-weighted']['p99_ms']} ms with busy servers "
        f"weighted down against {best['equal']['p99_ms']} ms all equal (p90 "
        f"{best['busy-weighted']['p90_ms']} / {best['equal']['p90_ms']} ms), "
        f"{SPINNERS} spinning and {TYPISTS} typing on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
