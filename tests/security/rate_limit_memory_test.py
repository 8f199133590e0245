"""The in-memory rate limiter under a flood of keys: a live counter is never forgotten (that would reopen its
limit), expired counters are let go, and memory stays bounded."""

from __future__ import annotations

import pytest

from starter.portal import ratelimit
from starter.portal.ratelimit import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_new_keys_never_reopens_a_live_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 100)
    clock = Clock()
    limit = RateLimit(2, 60, clock=clock)
    assert limit.hit("guesser") is None and limit.hit("guesser") is None
    for n in range(500):  # all within the guesser's window
        clock.now += 0.01
        limit.hit(f"flood-{n}")
    assert limit.hit("guesser") is not None
    assert len(limit) <= 100


def test_a_full_table_counts_new_keys_in_shared_buckets_and_refuses_only_theirs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 3)
    clock = Clock()
    limit = RateLimit(2, 60, clock=clock, buckets=1)  # one bucket: every overflowing key shares it
    for key in ("a", "b", "c"):
        assert limit.hit(key) is None
        clock.now += 10
    assert limit.hit("d") is None and limit.hit("e") is None  # at 1030: the bucket takes two
    assert limit.hit("f") is not None  # ... and is full
    assert limit.hit("a") is None  # keys already counted go on being counted on their own
    assert len(limit) == 3
    clock.now += 120
    assert limit.hit("f") is None  # the windows closed: "f" gets a counter of its own again
    assert len(limit) == 1


def test_a_flood_of_forged_keys_locks_out_no_one_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone can make up link keys (and an attacker owns whole IPv6 networks): a full table must not refuse, or
    let through unlimited, every key that comes next."""
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 100)
    clock = Clock()
    limit = RateLimit(10, 3600, clock=clock, secret=b"fixed for the test")
    # 5,000 forged keys, each used to the limit (50,000 hits), all within the window. Each locks out at most the
    # keys of its bucket: to shut out everyone it would take about OVERFLOW_BUCKETS x limit x a few hits.
    for n in range(5_000):
        key = f"forged-{n}"
        while limit.hit(key) is None:
            pass
    assert len(limit) == 100
    newcomers = [limit.hit(f"visitor-{n}") for n in range(1000)]
    assert sum(wait is None for wait in newcomers) >= 900, "the flood locked out everyone who came after it"
    # Overflowing keys are still limited: nobody gets through unlimited by arriving while the table is full.
    assert [limit.hit("visitor-0") is None for _ in range(20)].count(True) < 10


def test_expired_counters_are_let_go() -> None:
    clock = Clock()
    limit = RateLimit(1, 60, clock=clock)
    for n in range(1000):
        limit.hit(f"visitor-{n}")
    assert len(limit) == 1000
    clock.now += 60
    assert limit.hit("late") is None
    assert len(limit) == 1  # the thousand others' windows are over: nothing of them is kept


class Instant(float):
    """A clock reading that tallies how often the limiter compares it with another time."""

    compared = 0

    def _tally(self) -> None:
        Instant.compared += 1

    def __lt__(self, other: float) -> bool:
        self._tally()
        return float(self) < other

    def __le__(self, other: float) -> bool:
        self._tally()
        return float(self) <= other

    def __gt__(self, other: float) -> bool:
        self._tally()
        return float(self) > other

    def __ge__(self, other: float) -> bool:
        self._tally()
        return float(self) >= other


def test_a_hit_looks_only_at_the_counters_whose_window_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood must not make every request scan every key (100,000 keys: milliseconds of a stalled loop each)."""
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 1000)
    clock = Clock()
    limit = RateLimit(1, 60, clock=lambda: Instant(clock()))
    for n in range(1000):
        limit.hit(f"live-{n}")
    Instant.compared = 0
    for n in range(100):
        clock.now += 0.01
        limit.hit(f"flood-{n}")
    assert 0 < Instant.compared <= 100 * 4  # a few per hit, not one per key held
    clock.now += 60
    Instant.compared = 0
    assert limit.hit("after") is None
    assert Instant.compared <= 1000 + 4 and len(limit) == 1  # one look at each expired counter, then done
