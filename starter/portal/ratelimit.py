"""Rate limits kept in this API process's memory: a sliding window of recent hits per key.

Each API process counts on its own, so N processes behind a load balancer let through up to N times the limit;
and a restart forgets. Both are acceptable for what this guards (the public form against floods and guessing);
a shared limit would need a shared store.

Keys are chosen by callers (a source address, the hash of a link anyone can forge), so no flood of new keys may
lock out everyone else or grow memory without end: at most MAX_KEYS keys get a counter of their own, and when
those are all in use a new key is counted in one of OVERFLOW_BUCKETS shared counters, picked by a keyed hash
(random per process, so nobody can aim at a given key's bucket). A key is then refused only when its own
bucket is full: the flood locks out the few keys that share a bucket with it, never all of them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 100_000
"""At most this many keys are counted exactly at once (each keeps at most `limit` times)."""
OVERFLOW_BUCKETS = 65_536
"""Shared counters for the keys that arrive while MAX_KEYS are in use: fixed memory (four small arrays)."""


class RateLimit:
    """At most `limit` hits per `window` seconds for each key.

    Keys are kept in the order of their last hit, which is the order in which their windows close: each hit
    first lets go of the keys at the front whose window has closed, and stops at the first still open, so it
    costs one look per expired key, never a scan of all of them. A key whose window is open is never
    forgotten (that would give it a fresh allowance). When MAX_KEYS of them are open, a new key is counted in
    its overflow bucket instead: a sliding-window counter (this window's hits plus the part of the previous
    window's that still falls inside the sliding window) with the same limit.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        buckets: int | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = MAX_KEYS
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._buckets = buckets or OVERFLOW_BUCKETS
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        # Per bucket: the fixed window (its number) each count belongs to, and the count in it and in the one before.
        self._epoch = array("q", [-1]) * self._buckets
        self._current = array("I", [0]) * self._buckets
        self._previous = array("I", [0]) * self._buckets

    def __len__(self) -> int:
        """How many keys are counted exactly now: what this limiter holds beyond its fixed overflow arrays."""
        return len(self._hits)

    def hit(self, key: str) -> int | None:
        """Count a hit for `key`: None when it is within the limit, else the whole seconds to wait (not counted)."""
        now = self._clock()
        self._let_go_of_closed_windows(now)
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                return self._overflow_hit(key, now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return self._wait(hits[0], now)
        hits.append(now)
        self._hits.move_to_end(key)
        return None

    def _overflow_hit(self, key: str, now: float) -> int | None:
        """Count `key` in its shared bucket (the table of exact counters is full)."""
        digest = hmac.new(self._secret, key.encode(), hashlib.blake2b).digest()
        bucket = int.from_bytes(digest[:8], "big") % self._buckets
        epoch = math.floor(now / self.window)
        seen = self._epoch[bucket]
        if seen != epoch:
            self._previous[bucket] = self._current[bucket] if seen == epoch - 1 else 0
            self._current[bucket] = 0
            self._epoch[bucket] = epoch
        elapsed = now / self.window - epoch  # the part of this fixed window gone by, 0..1
        estimate = self._current[bucket] + self._previous[bucket] * (1 - elapsed)
        if estimate >= self.limit:
            return max(1, math.ceil((epoch + 1) * self.window - now))
        self._current[bucket] += 1
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
