"""The public form is rate-limited per source address and per link, alike for real, dead and forged links."""

from __future__ import annotations

import pytest

from starter.portal import ratelimit
from starter.portal.ratelimit import RateLimit
from tests.integration.conftest import Stack
from tests.integration.lifecycle_test import FORM, created
from tests.security.conftest import client_from

UNKNOWN = "/enroll/" + "A" * 43


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_sliding_window_per_key() -> None:
    clock = Clock()
    limit = RateLimit(3, 60, clock=clock)
    assert [limit.hit("a") for _ in range(3)] == [None, None, None]
    assert limit.hit("a") == 60 and limit.hit("b") is None  # refused hits are not counted
    clock.now += 59.5
    assert limit.hit("a") == 1
    clock.now += 0.5
    assert limit.hit("a") is None and limit.hit("a") is None and limit.hit("a") is None
    assert limit.hit("a") == 60


def test_a_flood_of_new_keys_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 100)
    clock = Clock()
    limit = RateLimit(1, 60, clock=clock)
    for n in range(1000):
        clock.now += 0.01
        limit.hit(f"key-{n}")
    assert len(limit._hits) <= 101
    assert limit.hit("key-999") is not None  # the newest are remembered


async def test_thirty_requests_a_minute_from_one_address(stack: Stack) -> None:
    enrollment_id = await created(stack)
    link = stack.form_link("pat@acme.example")
    async with client_from(stack, "203.0.113.5") as crowd, client_from(stack, "203.0.113.5") as other_process:
        answers = [(await crowd.get(link if n % 2 else UNKNOWN)).status_code for n in range(30)]
        assert set(answers) == {200, 404}
        for path in (link, UNKNOWN):
            refused = await crowd.get(path)
            assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
            assert refused.headers["referrer-policy"] == "no-referrer"
            assert "Too many" in refused.text and "Acme" not in refused.text and enrollment_id not in refused.text
        assert (await crowd.post(link, data=FORM)).status_code == 429
        assert (await crowd.get("/enroll/thanks")).status_code == 200
        # Counted per API process: another process has counted nothing yet.
        assert (await other_process.get(link)).status_code == 200
    async with client_from(stack, "198.51.100.1") as elsewhere:
        assert (await elsewhere.get(link)).status_code == 200


async def test_ten_submits_an_hour_per_link_real_or_forged(stack: Stack) -> None:
    await created(stack)
    link = stack.form_link("pat@acme.example")
    bad = {**FORM, "city": ""}
    async with client_from(stack, "203.0.113.5") as api:
        for _ in range(10):
            assert (await api.post(link, data=bad)).status_code == 422
            assert (await api.post(UNKNOWN, data=bad)).status_code == 404
        for path in (link, UNKNOWN):
            refused = await api.post(path, data=FORM)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 3000
            assert "too many times" in refused.text
        assert (await api.get(link)).status_code == 200  # opening it is still fine
        assert (await api.post("/enroll/" + "B" * 43, data=FORM)).status_code == 404
