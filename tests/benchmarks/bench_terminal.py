"""Terminal round trip: an `echo` command line typed until its output comes back.

Code Pilot's user server vs a stock jupyter-server user server, both started by the same
hub and reached through the same proxy, measured interleaved in one run.
"""

import contextlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.hubtools import start_hub
from tests.support.terminals import drain, echo_round_trip
from tests.support.timing import latency_summary

SAMPLES = 300
WARMUP = 20
STOCK_CONFIG = Path(__file__).with_name("stock_servers.py")


def main():
    hub = start_hub(env={"CODEPILOT_HUB_EXTRA_CONFIG": str(STOCK_CONFIG)})
    try:
        with contextlib.ExitStack() as stack:
            terminals = {}
            for kind, user in (("codepilot", "bench-term"), ("stock", "stock-term")):
                hub.create_user(user)
                hub.start_server(user)
                terminals[kind] = stack.enter_context(hub.open_terminal(user, hub.user_token(user)))
                drain(terminals[kind])
            samples = {kind: [] for kind in terminals}
            for i in range(WARMUP + SAMPLES):
                for kind, ws in terminals.items():  # interleaved: same noise for both
                    seconds = echo_round_trip(ws, 100000 + i)
                    if i >= WARMUP:
                        samples[kind].append(seconds * 1000)
    finally:
        hub.stop()

    result = {kind: latency_summary(values) for kind, values in samples.items()}
    result["p50_speedup"] = round(result["stock"]["p50_ms"] / result["codepilot"]["p50_ms"], 1)
    print(json.dumps({"benchmark": "terminal_round_trip", **result}))
    print(
        f"terminal echo round trip p50: Code Pilot {result['codepilot']['p50_ms']} ms, "
        f"stock {result['stock']['p50_ms']} ms ({result['p50_speedup']}x faster); "
        f"p99 {result['codepilot']['p99_ms']} ms vs {result['stock']['p99_ms']} ms"
    )


if __name__ == "__main__":
    main()
