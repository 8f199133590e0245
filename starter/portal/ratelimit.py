"""Rate limits kept in this API process's memory: a sliding window of recent hits per key.

Each API process counts on its own, so N processes behind a load balancer let through up to N times the limit;
and a restart forgets. Both are acceptable for what this guards (the public form against floods and guessing);
a shared limit would need a shared store.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 100_000
"""At most this many keys are counted at once (each keeps at most `limit` times), so a flood of new keys
stays bounded in memory."""


class RateLimit:
    """At most `limit` hits per `window` seconds for each key.

    Keys are kept in the order of their last hit, which is the order in which their windows close: each hit
    first lets go of the keys at the front whose window has closed, and stops at the first still open, so it
    costs one look per expired key, never a scan of all of them. A key whose window is open is never
    forgotten (that would give it a fresh allowance); when MAX_KEYS of them are open, a new key is refused
    until the oldest window closes: under a flood this fails closed rather than stop counting.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = MAX_KEYS
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many keys are being counted now: what this limiter holds in memory."""
        return len(self._hits)

    def hit(self, key: str) -> int | None:
        """Count a hit for `key`: None when it is within the limit, else the whole seconds to wait (not counted)."""
        now = self._clock()
        self._let_go_of_closed_windows(now)
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                oldest = next(iter(self._hits.values()))
                return self._wait(oldest[-1], now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return self._wait(hits[0], now)
        hits.append(now)
        self._hits.move_to_end(key)
        return None

    def _wait(self, hit_at: float, now: float) -> int:
        """Whole seconds until the hit at `hit_at` leaves the window (at least 1)."""
        return max(1, math.ceil(hit_at + self.window - now))

    def _let_go_of_closed_windows(self, now: float) -> None:
        while self._hits:
            key, hits = next(iter(self._hits.items()))
            if hits[-1] > now - self.window:
                return
            del self._hits[key]
