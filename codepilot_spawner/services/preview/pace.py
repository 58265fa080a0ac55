"""Each preview's pace: how many requests a second the gateway forwards to one server.

A script or a stuck page that hammers a preview costs the gateway (one process, beside
the whole class) about 0.4 CPU s/s at a thousand requests a second, outside every
student's cgroup. Past its budget a preview's requests wait their turn, costing nothing
while they wait, and are refused (429) only when the turn would come too late. A page
load, even a dev server's thousand modules, fits in the burst and never waits.
"""

import asyncio
import time
from collections.abc import Hashable

DEFAULT_RATE = 200  # requests a second per preview, past the burst
DEFAULT_BURST = 2000
MAX_WAIT_S = 10.0  # past this a request is refused rather than kept waiting


class PreviewPace:
    """A token bucket per preview (``key``) that lends: a request past the budget takes
    a token ahead and waits until it would have been there, so waiters go in order."""

    def __init__(self, rate: float, burst: float, max_wait: float = MAX_WAIT_S, size: int = 10_000):
        self.rate, self.burst, self.max_wait, self.size = rate, burst, max_wait, size
        # key -> (tokens, monotonic time they were counted at); below 0: lent ahead
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def reserve(self, key: Hashable) -> float | None:
        """Take a token for ``key``: seconds to wait before forwarding (0: at once), or
        None when the wait would exceed ``max_wait`` (nothing is taken then)."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, counted_at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - counted_at) * self.rate) - 1
        wait = max(0.0, -tokens / self.rate)
        if wait > self.max_wait:
            tokens += 1
        if len(self._buckets) >= self.size:  # forget the longest unused
            del self._buckets[next(iter(self._buckets))]
        self._buckets[key] = (tokens, now)
        return None if wait > self.max_wait else wait

    def give_back(self, key: Hashable) -> None:
        """Return a token whose request ended before its turn (the viewer left)."""
        if key in self._buckets:
            tokens, counted_at = self._buckets[key]
            self._buckets[key] = (tokens + 1, counted_at)

    async def turn(self, key: Hashable) -> bool:
        """Wait for ``key``'s turn; False when it would come later than ``max_wait``."""
        wait = self.reserve(key)
        if wait is None:
            return False
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                self.give_back(key)
                raise
        return True
