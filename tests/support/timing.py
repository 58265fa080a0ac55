"""Timings for the benchmarks: percentiles, a latency summary, a timed spawn."""

import statistics
import time


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.99 for p99) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency_summary(values_ms: list[float], digits: int = 3) -> dict:
    """p50, p99 and sample count of latencies in milliseconds, as the benchmarks print them."""
    return {
        "p50_ms": round(statistics.median(values_ms), digits),
        "p99_ms": round(percentile(values_ms, 0.99), digits),
        "samples": len(values_ms),
    }


def timed_spawn(hub, user: str) -> float:
    """Seconds from POSTing a user's default server until the hub says it is ready; the
    server is stopped again afterwards (not timed)."""
    started = time.perf_counter()
    response = hub.api("POST", f"/users/{user}/server")
    assert response.status_code in (201, 202), response.text
    hub.wait_ready(user, timeout=120)
    seconds = time.perf_counter() - started
    hub.stop_server(user)
    return seconds
