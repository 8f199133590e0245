"""Sign-in is throttled per email and per source address, and a refusal never says which emails exist."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from sqlalchemy import func, select

from domain.models import Role
from store import users
from store.db import transaction
from store.paging import now
from store.tables import SignInThrottle
from tests.integration.conftest import Stack
from tests.security.conftest import PASSWORD, portal_session

EMAIL = "pat@provider.example"
HERE = "192.0.2.1"


async def fail(url: str, email: str = EMAIL, source: str = HERE, times: int = 1) -> None:
    for _ in range(times):
        assert await users.sign_in(url, email, "not the password", source=source) is None


async def later(url: str, by: timedelta) -> None:
    """Move every counter and lock `by` into the past, as if that much time had gone by."""
    async with transaction(url) as session:
        for row in await session.scalars(select(SignInThrottle)):
            row.window_started_at -= by
            row.locked_until = row.locked_until - by if row.locked_until else None


async def test_five_failures_lock_the_email_for_fifteen_minutes(database_url: str) -> None:
    await users.add_user(database_url, email=EMAIL, role=Role.csm, password=PASSWORD)
    await fail(database_url, times=4)
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is not None  # and forgets the 4
    await fail(database_url, times=4)
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is not None
    await fail(database_url, times=5)
    for source in (HERE, "198.51.100.7"):  # the email is locked, wherever the attempt comes from
        assert await users.sign_in(database_url, EMAIL, PASSWORD, source=source) is None
    await later(database_url, timedelta(minutes=14))
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is None
    await later(database_url, timedelta(minutes=2))
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is not None


async def test_failures_older_than_the_window_do_not_count(database_url: str) -> None:
    await users.add_user(database_url, email=EMAIL, role=Role.csm, password=PASSWORD)
    await fail(database_url, times=4)
    await later(database_url, timedelta(minutes=16))
    await fail(database_url, times=4)
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is not None


async def test_an_address_trying_many_emails_is_locked_and_unknown_emails_lock_too(database_url: str) -> None:
    await users.add_user(database_url, email=EMAIL, role=Role.csm, password=PASSWORD)
    for n in range(users.FAILURES_PER_ADDRESS):
        await fail(database_url, email=f"guess{n}@provider.example")
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is None
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source="198.51.100.7") is not None
    await fail(database_url, email="nobody@provider.example", source="198.51.100.8", times=5)
    async with transaction(database_url) as session:
        locked = await session.scalar(
            select(func.count()).select_from(SignInThrottle).where(SignInThrottle.locked_until > now())
        )
        keys = list(await session.scalars(select(SignInThrottle.key)))
    assert locked == 2  # HERE, and the unknown email: a lock says nothing about whether the email exists
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys)  # what was typed is not kept


async def test_concurrent_failures_are_all_counted(database_url: str) -> None:
    await users.add_user(database_url, email=EMAIL, role=Role.csm, password=PASSWORD)
    await asyncio.gather(*(fail(database_url) for _ in range(5)))
    assert await users.sign_in(database_url, EMAIL, PASSWORD, source=HERE) is None


async def test_the_sign_in_page_says_the_same_for_an_unknown_email_a_wrong_password_and_a_lock(stack: Stack) -> None:
    url = stack.settings.effective_database_url
    await users.add_user(url, email=EMAIL, role=Role.csm, password=PASSWORD)

    async def attempt(email: str, password: str) -> tuple[int, str]:
        stack.api.cookies.clear()
        cookie, csrf = portal_session(stack.settings, None)
        form = {"csrf_token": csrf, "email": email, "password": password}
        response = await stack.api.post("/signin", data=form, headers={"Cookie": cookie})
        alert = re.search(r'role="alert"><p>(.*?)</p>', response.text)
        return response.status_code, alert.group(1) if alert else ""

    unknown = await attempt("nobody@provider.example", PASSWORD)
    wrong = await attempt(EMAIL, "not the password")
    assert unknown == wrong and unknown[0] == 401 and "not right" in unknown[1]
    for _ in range(4):
        await attempt(EMAIL, "not the password")
    assert await attempt(EMAIL, PASSWORD) == wrong  # locked: the right password is refused alike
    assert (await attempt("csm@provider.example", "correct horse battery"))[0] == 303  # others still get in
