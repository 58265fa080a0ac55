"""Terminal round trip: an `echo` command line typed until its output comes back.

Code Pilot's user server vs a stock jupyter-server user server, both started by the same
hub and reached through the same proxy, measured interleaved in one run.
"""

import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.hubtools import open_terminal, start_hub

SAMPLES = 300
WARMUP = 20
STOCK_CONFIG = Path(__file__).with_name("stock_servers.py")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def round_trip(ws, number: int) -> float:
    """Seconds from typing `echo $((n+0))` + Enter until its output and the next prompt.

    The shell writes the echoed line, the output and the prompt in separate writes; with
    Nagle's algorithm on, the later ones wait for the client's delayed ACK.
    """
    expected = f"{number}\r\n"  # the output line; the echoed command reads "n+0))"
    started = time.perf_counter()
    ws.send(json.dumps(["stdin", f"echo $(({number}+0))\r"]))
    output = ""
    while expected not in output or not output.endswith("$ "):
        message = json.loads(ws.recv(timeout=30))
        if message[0] == "stdout":
            output += message[1]
    return time.perf_counter() - started


def drain(ws):
    while True:
        try:
            ws.recv(timeout=0.3)
        except TimeoutError:
            return


def main():
    hub = start_hub(env={"CODEPILOT_HUB_EXTRA_CONFIG": str(STOCK_CONFIG)})
    try:
        with contextlib.ExitStack() as stack:
            terminals = {}
            for kind, user in (("codepilot", "bench-term"), ("stock", "stock-term")):
                hub.create_user(user)
                hub.start_server(user)
                terminals[kind] = stack.enter_context(
                    open_terminal(hub, user, hub.user_token(user))
                )
                drain(terminals[kind])
            samples = {kind: [] for kind in terminals}
            for i in range(WARMUP + SAMPLES):
                for kind, ws in terminals.items():  # interleaved: same noise for both
                    seconds = round_trip(ws, 100000 + i)
                    if i >= WARMUP:
                        samples[kind].append(seconds * 1000)
    finally:
        hub.stop()

    result = {
        kind: {
            "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(percentile(values, 0.99), 3),
            "samples": len(values),
        }
        for kind, values in samples.items()
    }
    result["p50_speedup"] = round(result["stock"]["p50_ms"] / result["codepilot"]["p50_ms"], 1)
    print(json.dumps({"benchmark": "terminal_round_trip", **result}))
    print(
        f"terminal echo round trip p50: Code Pilot {result['codepilot']['p50_ms']} ms, "
        f"stock {result['stock']['p50_ms']} ms ({result['p50_speedup']}x faster); "
        f"p99 {result['codepilot']['p99_ms']} ms vs {result['stock']['p99_ms']} ms"
    )


if __name__ == "__main__":
    main()
