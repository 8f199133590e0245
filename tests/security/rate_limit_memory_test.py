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


def test_a_full_table_refuses_new_keys_until_the_oldest_window_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 3)
    clock = Clock()
    limit = RateLimit(5, 60, clock=clock)
    for key in ("a", "b", "c"):
        assert limit.hit(key) is None
        clock.now += 10
    assert limit.hit("d") == 30  # at 1030: "a" was last hit at 1000, its window closes at 1060
    assert limit.hit("a") is None  # keys already counted go on being counted
    assert limit.hit("d") == 40  # now "b" (1010) is the oldest
    clock.now += 40
    assert limit.hit("d") is None
    assert len(limit) == 3


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
