"""Spawn time: POST to a server until the hub reports it ready.

Code Pilot's one-machine hub vs the same hub with JupyterHub's SimpleLocalProcessSpawner and
a stock jupyter-server, both running at once and measured alternately, 5 spawns each after
one warm-up spawn (which also creates the Unix account on the Code Pilot side).
"""

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks.hub_kinds import hub_environment
from tests.support.hubtools import start_hub
from tests.support.timing import timed_spawn

ROUNDS = 5


def main():
    hubs = {
        "codepilot": start_hub(),
        "stock": start_hub(env=hub_environment("stock")),
    }
    try:
        for hub in hubs.values():
            hub.create_user("bench-spawn")
        first = {kind: timed_spawn(hub, "bench-spawn") for kind, hub in hubs.items()}
        samples = {kind: [] for kind in hubs}
        for _ in range(ROUNDS):
            for kind, hub in hubs.items():
                samples[kind].append(timed_spawn(hub, "bench-spawn"))
    finally:
        for hub in hubs.values():
            hub.stop()

    result = {
        kind: {
            "median_s": round(statistics.median(values), 3),
            "mean_s": round(statistics.mean(values), 3),
            "first_spawn_s": round(first[kind], 3),
            "samples": [round(v, 3) for v in values],
        }
        for kind, values in samples.items()
    }
    ratio = result["codepilot"]["median_s"] / result["stock"]["median_s"]
    result["ratio_to_stock"] = round(ratio, 2)
    print(json.dumps({"benchmark": "spawn", **result}))
    print(
        f"spawn to ready (median of {ROUNDS}): Code Pilot {result['codepilot']['median_s']} s, "
        f"SimpleLocalProcessSpawner {result['stock']['median_s']} s ({ratio:.2f}x stock)"
    )


if __name__ == "__main__":
    main()
