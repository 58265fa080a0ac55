"""What isolation costs: spawn time and terminal echo, with and without it, in one run.

Two one-machine hubs run at once as root: one isolates servers (a network namespace and
cgroup limits each), the other has isolation off (``CODEPILOT_ISOLATION=false``: Unix
users only, as before). Spawns and echoes alternate between them, so both see the same
noise. Then a fork bomb runs in one isolated student's terminal while a neighbour's echo
is measured (only with isolation: without limits it would take the machine down).
"""

import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.hubtools import start_hub
from tests.support.terminals import drain, echo_round_trip
from tests.support.timing import latency_summary, timed_spawn

SPAWNS = 5
ECHOES = 200
WARMUP = 20
ATTACK_SECONDS = 15


def main():
    if os.geteuid() != 0:
        sys.exit("bench_isolation needs root: without it there is no isolation to measure")
    hubs = {
        "isolated": start_hub(env={"CODEPILOT_PIDS_LIMIT": "512"}),
        "not_isolated": start_hub(env={"CODEPILOT_ISOLATION": "false"}),
    }
    try:
        for hub in hubs.values():
            hub.create_user("bench-iso")
        first = {kind: timed_spawn(hub, "bench-iso") for kind, hub in hubs.items()}
        spawns = {kind: [] for kind in hubs}
        for _ in range(SPAWNS):
            for kind, hub in hubs.items():
                spawns[kind].append(timed_spawn(hub, "bench-iso"))

        echoes = {kind: [] for kind in hubs}
        with contextlib.ExitStack() as stack:
            terminals = {}
            for kind, hub in hubs.items():
                hub.start_server("bench-iso")
                terminals[kind] = stack.enter_context(
                    hub.open_terminal("bench-iso", hub.user_token("bench-iso"))
                )
                drain(terminals[kind])
            for i in range(WARMUP + ECHOES):
                for kind, ws in terminals.items():
                    seconds = echo_round_trip(ws, 100000 + i)
                    if i >= WARMUP:
                        echoes[kind].append(seconds * 1000)

            # The neighbour's echo while another student's fork bomb hits its ceiling.
            hub = hubs["isolated"]
            hub.create_user("bench-bomb")
            hub.start_server("bench-bomb")
            with hub.open_terminal("bench-bomb", hub.user_token("bench-bomb")) as bomb:
                bomb.send(json.dumps(["stdin", "bomb() { bomb | bomb & }; bomb\r"]))
                under_attack, started, i = [], time.monotonic(), 0
                while time.monotonic() - started < ATTACK_SECONDS:
                    under_attack.append(echo_round_trip(terminals["isolated"], 200000 + i) * 1000)
                    i += 1
            hub.stop_server("bench-bomb")
    finally:
        for hub in hubs.values():
            hub.stop()

    result = {
        "spawn": {
            kind: {
                "median_s": round(statistics.median(values), 3),
                "first_spawn_s": round(first[kind], 3),
                "samples": [round(v, 3) for v in values],
            }
            for kind, values in spawns.items()
        },
        "echo": {kind: latency_summary(values) for kind, values in echoes.items()},
        "echo_during_fork_bomb": latency_summary(under_attack),
    }
    print(json.dumps({"benchmark": "isolation", **result}))
    spawn, echo = result["spawn"], result["echo"]
    print(
        f"isolation: spawn {spawn['isolated']['median_s']} s vs "
        f"{spawn['not_isolated']['median_s']} s without; echo p50 "
        f"{echo['isolated']['p50_ms']} vs {echo['not_isolated']['p50_ms']} ms; "
        f"neighbour echo during a fork bomb p50 "
        f"{result['echo_during_fork_bomb']['p50_ms']} ms, "
        f"p99 {result['echo_during_fork_bomb']['p99_ms']} ms"
    )


if __name__ == "__main__":
    main()
