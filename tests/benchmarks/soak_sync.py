"""Soak of workspace sync: many more examples of the stateful property test.

Runs tests/support/sync_machine.py's ``TerminalBursts`` (real engine, watcher and contents
manager against moto's S3 API) for ``--examples`` examples of ``--steps`` bursts each,
without and with S3 outages in the middle of bursts, then prints one JSON object and
one summary line. A failure prints hypothesis's steps to reproduce it and exits 1.

    .venv/bin/python tests/benchmarks/soak_sync.py --examples 40 --steps 8
"""

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hypothesis.stateful import run_state_machine_as_test

from tests.support.s3server import CREDENTIALS, start_s3_server
from tests.support.sync_machine import BUCKET, machine_for, make_harness, property_settings


def soak(s3, outages: bool, examples: int, steps: int, shrink: bool) -> dict:
    stats = {"examples": 0, "bursts": 0, "operations": 0, "outages": 0}
    harness = make_harness(s3, outages=outages, stats=stats)
    started = time.monotonic()
    failure = None
    try:
        run_state_machine_as_test(
            machine_for(harness), settings=property_settings(examples, steps, shrink)
        )
    except Exception as error:
        failure = "".join(traceback.format_exception_only(error)).strip()
        traceback.print_exc()
    finally:
        harness.loop.close()
    seconds = time.monotonic() - started
    return {
        "outages": outages,
        "examples": examples,
        "steps_per_example": steps,
        **{f"{key}_run": stats[key] for key in ("examples", "bursts", "operations", "outages")},
        "seconds": round(seconds, 1),
        "seconds_per_burst": round(seconds / max(stats["bursts"], 1), 2),
        "passed": failure is None,
        "first_failure": stats.get("first_failure"),
        "failure": failure,
    }


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--examples", type=int, default=40)
    options.add_argument("--steps", type=int, default=8)
    options.add_argument("--shrink", action="store_true", help="shrink a failing example")
    args = options.parse_args()
    os.environ.update(CREDENTIALS)
    s3 = start_s3_server()
    s3.create_bucket(BUCKET)
    try:
        runs = [
            soak(s3, outages, args.examples, args.steps, args.shrink) for outages in (False, True)
        ]
    finally:
        s3.stop()
    print(json.dumps({"benchmark": "soak_sync", "runs": runs}))
    print(
        "sync soak: "
        + "; ".join(
            f"{'with' if run['outages'] else 'without'} outages: "
            f"{'PASS' if run['passed'] else 'FAIL at example ' + str(run['first_failure'])} "
            f"{run['examples_run']} examples, "
            f"{run['bursts_run']} bursts, {run['operations_run']} operations, "
            f"{run['outages_run']} outages in {run['seconds']} s"
            for run in runs
        )
    )
    return 0 if all(run["passed"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
