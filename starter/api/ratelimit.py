"""Rate limits kept in this API process's memory: a sliding window of recent hits per key.

Each API process counts on its own, so N processes behind a load balancer let through up to N times the limit;
and a restart forgets. Both are acceptable for what this guards (the public form against floods and guessing);
a shared limit would need a shared store.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 100_000
"""Beyond this many keys, the ones without a recent hit are forgotten (a flood of new keys stays bounded)."""


class RateLimit:
    """At most `limit` hits per `window` seconds for each key."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> int | None:
        """Count a hit for `key`: None when it is within the limit, else the whole seconds to wait (not counted)."""
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(1, math.ceil(hits[0] + self.window - now))
        hits.append(now)
        if len(self._hits) > MAX_KEYS:
            self._forget(now)
        return None

    def _forget(self, now: float) -> None:
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]:
            del self._hits[key]
        while len(self._hits) > MAX_KEYS:
            del self._hits[next(iter(self._hits))]
