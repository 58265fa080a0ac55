"""A class logs in at once: N servers started together, POST to ready.

Three hubs in one run (``--kinds`` picks among them): Code Pilot's one-machine hub
(isolation on when run as root, servers forked from the fork server), the same hub with
plain starts (``fork_server = False``: a new Python process per server, as when the
fork server is down), and the same hub with JupyterHub's SimpleLocalProcessSpawner and
a stock jupyter-server (``stock_hub.py``). For each N (default 1, 10, 20, 50): all POSTs
at once from N threads, each following its start's progress event stream as a
student's browser does, then every server stopped.
Per batch: ready p50/p95/max, CPU seconds per start (the hub's whole process tree,
servers included, from before the POSTs until all are ready, divided by N) and RSS/PSS
per server from ``/proc/<pid>/smaps_rollup`` once ready, and the 1-minute load average
before. A first batch of the largest N (Unix accounts and workspaces created) is
reported apart as ``first``.
``--collaboration off`` starts every hub with ``CODEPILOT_COLLABORATION=false`` (live
pairing's server extensions not loaded), to compare with the default, on.
"""

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.hub_kinds import HUB_CONFIGS, hub_environment
from tests.support.hubtools import start_hub, wait_until
from tests.support.procfs import (
    CLOCK_TICKS,
    command_line,
    cpu_seconds_of,
    memory_kb,
    process_tree,
    stat_fields,
)
from tests.support.timing import percentile


def process_role(pid: int, hub_pid: int, servers: set[int]) -> str:
    """Which part of the hub's tree ``pid`` is, named for the per-process CPU breakdown."""
    if pid == hub_pid:
        return "hub"
    if pid in servers:
        return "servers"
    command = command_line(pid)
    for marker, role in ROLE_MARKERS:
        if marker in command:
            return role
    return "other"


# Command-line markers of the hub's processes, first match wins (a server's own children,
# such as its language servers, carry none of these and are counted as "other").
ROLE_MARKERS = (
    (b"configurable-http-proxy", "proxy"),
    (b"startup.forkserver", "fork server"),
    (b"PreviewGateway", "gateway"),
    (b"jupyterhub-singleuser", "servers"),
    (b"startup.singleuser", "servers"),
)


def cpu_by_process(pids, hub_pid: int, servers: set[int]) -> dict[str, float]:
    """CPU seconds per role: each process's own time, and apart (``<role> exited``)
    that of its children that ended and were waited for (the hub's ``ip``, ``nft``,
    ``useradd``)."""
    by_role: dict[str, float] = {}
    for pid in pids:
        try:
            fields = stat_fields(pid)
        except OSError:
            continue
        role = process_role(pid, hub_pid, servers)
        own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        exited = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
        by_role[role] = by_role.get(role, 0.0) + own
        by_role[f"{role} exited"] = by_role.get(f"{role} exited", 0.0) + exited
    return by_role


def role_difference(after: dict, before: dict, starts: int) -> dict[str, float]:
    """CPU seconds per start of each role between two ``cpu_by_process`` readings."""
    return {
        role: round((seconds - before.get(role, 0.0)) / starts, 3)
        for role, seconds in sorted(after.items())
        if seconds - before.get(role, 0.0) > 0
    }


def wait_ready_event(hub, user: str) -> None:
    """Follow the start's progress event stream, as the spawn page in a student's browser
    does, until it says the server is ready."""
    with hub.api("GET", f"/users/{user}/server/progress", stream=True) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith(b"data:"):
                continue  # keepalive comments between events
            event = json.loads(line[len(b"data:") :])
            if event.get("failed"):
                raise RuntimeError(f"{user}'s server failed to start: {event}")
            if event.get("ready"):
                return
    raise RuntimeError(f"{user}'s progress stream ended before the server was ready")


def start_batch(hub, users: list[str]) -> dict:
    load_before = os.getloadavg()[0]  # the machine may be shared: its figures say how busy
    before_pids = process_tree(hub.process.pid)
    cpu_before = cpu_seconds_of(before_pids, with_reaped_children=True)
    roles_before = cpu_by_process(before_pids, hub.process.pid, set())
    posted, ready = {}, {}

    # One thread per student: POST, then the progress stream. Polling the user list
    # instead cost the hub CPU in proportion to N times the batch's length, which the
    # figures then counted as CPU per start.
    def start(user):
        posted[user] = time.perf_counter()
        response = hub.api("POST", f"/users/{user}/server")
        assert response.status_code in (201, 202), response.text
        wait_ready_event(hub, user)
        ready[user] = time.perf_counter()

    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(start, users))
    states = {user: hub.api("GET", f"/users/{user}").json()["servers"][""] for user in users}
    pids = [states[user]["state"]["pid"] for user in users]
    after_pids = process_tree(hub.process.pid) | set(pids)
    cpu = cpu_seconds_of(after_pids, with_reaped_children=True) - cpu_before
    roles = cpu_by_process(after_pids, hub.process.pid, set(pids))
    memory = [memory_kb(pid) for pid in pids]
    seconds = [ready[user] - posted[user] for user in users]
    stop_all(hub, users)
    return {
        "n": len(users),
        "ready_p50_s": round(statistics.median(seconds), 2),
        "ready_p95_s": round(percentile(seconds, 0.95), 2),
        "ready_max_s": round(max(seconds), 2),
        "cpu_s_per_start": round(cpu / len(users), 3),
        "cpu_s_per_start_by_process": role_difference(roles, roles_before, len(users)),
        "rss_mb_per_server": round(statistics.mean(m["rss"] for m in memory) / 1024, 1),
        "pss_mb_per_server": round(statistics.mean(m["pss"] for m in memory) / 1024, 1),
        "load_1min_before": round(load_before, 1),
    }


def stop_all(hub, users: list[str]) -> None:
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(lambda user: hub.api("DELETE", f"/users/{user}/server"), users))

    def stopped():
        return all("" not in user["servers"] for user in hub.all_users())

    wait_until(stopped, 120, 0.5, "every server to stop")


def fork_server_memory(hub) -> dict:
    for pid in process_tree(hub.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"forkserver" in command and int(stat_fields(pid)[1]) == hub.process.pid:
                found = memory_kb(pid)
                return {k + "_mb": round(v / 1024, 1) for k, v in found.items()}
        except OSError:
            continue
    return {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,20,50", help="class sizes, comma-separated")
    parser.add_argument(
        "--kinds", default=",".join(HUB_CONFIGS), help="hubs to compare, comma-separated"
    )
    parser.add_argument(
        "--collaboration",
        choices=("on", "off"),
        default="on",
        help="real-time collaboration in Code Pilot's servers (CODEPILOT_COLLABORATION)",
    )
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    kinds = options.kinds.split(",")
    users = [f"student{number:02d}" for number in range(max(sizes))]
    hubs = {}
    result = {
        "benchmark": "class_start",
        "cpus": os.cpu_count(),
        "root": os.geteuid() == 0,
        "collaboration": options.collaboration,
    }
    collaboration = {"CODEPILOT_COLLABORATION": str(options.collaboration == "on").lower()}
    try:
        for kind in kinds:  # inside the try: a hub that fails to start stops those before it
            hubs[kind] = start_hub(env={**hub_environment(kind), **collaboration})
        for hub in hubs.values():
            for user in users:
                hub.create_user(user)
        for kind, hub in hubs.items():
            result.setdefault(kind, {})["first"] = start_batch(hub, users)
        for size in sizes:
            for kind, hub in hubs.items():
                result[kind][str(size)] = start_batch(hub, users[:size])
        if "codepilot" in hubs:
            result["codepilot"]["fork_server"] = fork_server_memory(hubs["codepilot"])
    finally:
        for hub in hubs.values():
            hub.stop()
    print(json.dumps(result))
    print(summary_line(result, sizes, list(hubs)))


def summary_line(result: dict, sizes: list[int], kinds: list[str]) -> str:
    """``class start, p50/p95 s: N=20 codepilot 1.2/2.0, plain ..., stock ...; ...``."""
    per_size = "; ".join(
        f"N={size} "
        + ", ".join(
            f"{kind} {result[kind][str(size)]['ready_p50_s']}/"
            f"{result[kind][str(size)]['ready_p95_s']}"
            for kind in kinds
        )
        for size in sizes
    )
    largest = str(max(sizes))
    per_server = ", ".join(
        f"{kind} {result[kind][largest]['cpu_s_per_start']} CPU s, "
        f"{result[kind][largest]['pss_mb_per_server']} MB PSS"
        for kind in kinds
    )
    return f"class start, ready p50/p95 s: {per_size}; per server at N={largest}: {per_server}"


if __name__ == "__main__":
    main()
