"""Sign-in under concurrency: a burst of guesses gets no more than the limit checked, and the Argon2 work runs
off the event loop, so one sign-in never stalls every other request of the API process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher

from domain.models import Role
from store import users
from tests.security.conftest import PASSWORD

EMAIL = "pat@provider.example"
HERE = "192.0.2.1"


async def test_a_burst_of_concurrent_guesses_gets_only_the_limit_checked(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await users.add_user(database_url, email=EMAIL, role=Role.csm, password=PASSWORD)
    checked: list[str] = []
    verify = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        checked.append(str(password))
        return verify(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    guesses = [f"guess number {n}" for n in range(20)]
    results = await asyncio.gather(*(users.sign_in(database_url, EMAIL, g, source=HERE) for g in guesses))
    assert results == [None] * 20
    assert len(checked) == users.FAILURES_PER_EMAIL  # the other 15 were refused unchecked
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source="198.51.100.7") is None  # and it is locked


async def test_password_hashing_lets_the_event_loop_run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Argon2 call waits until a task on the event loop has run meanwhile: on the loop's own thread it
    never would (it gives up after 5 seconds and records that)."""
    waiting: list[threading.Event] = []
    loop_ran: list[bool] = []

    def until_the_loop_runs(work: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: PasswordHasher, *args: Any) -> Any:
            ran = threading.Event()
            waiting.append(ran)
            loop_ran.append(ran.wait(timeout=5))
            return work(self, *args)

        return call

    monkeypatch.setattr(PasswordHasher, "hash", until_the_loop_runs(PasswordHasher.hash))
    monkeypatch.setattr(PasswordHasher, "verify", until_the_loop_runs(PasswordHasher.verify))

    async def ticker() -> None:
        while True:
            for ran in waiting:
                ran.set()
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    try:
        await users.add_user(database_url, email=EMAIL, role=Role.csm, password=PASSWORD)
        assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is not None
        assert await users.sign_in(database_url, "nobody@provider.example", PASSWORD, source=HERE) is None
    finally:
        ticking.cancel()
    assert loop_ran == [True, True, True]  # adding a user, a right password, an unknown email
