"""The security tests' stack: the integration stack on SQLite, and real users of every role."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.settings import Settings
from starter.app import create_app
from starter.dev.mailsink import MailSink
from starter.portal.session import cookie_header, new_session, session_for
from store import second_factor, users
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.integration.conftest import Stack, stack_settings
from worker import build_worker

PASSWORD = "a long enough password"
RESELLER_ACCOUNT = "acct-reseller"
CUSTOMER_ACCOUNT = "acct-customer"
MANUFACTURER_ACCOUNT = "acct-manufacturer"


@dataclass(frozen=True)
class Person:
    """A real user of one role: their API token, and a signed-in portal session (cookie and CSRF token)."""

    role: Role
    email: str
    user_id: str
    token: str
    cookie: str
    csrf: str
    totp_key: str | None = None
    """The key of their second factor (turned on with the code of the current 30 s step)."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session(self) -> dict[str, str]:
        return {"Cookie": self.cookie}


def portal_session(settings: Settings, user_id: str | None) -> tuple[str, str]:
    """A visitor's session (`None`), or a password-only one of `user_id` in epoch 0: (the `Cookie` header, the
    session's CSRF token). A full sign-in is `signed_in_session`."""
    session = new_session(user_id)
    return cookie_header(settings, session), session.csrf


async def turn_on_second_factor(settings: Settings, user_id: str) -> str:
    """Give the user a real second factor, turned on with the current step's code; its key."""
    url = settings.effective_database_url
    key = await second_factor.setup_key(url, settings.signing_key, user_id)
    assert await second_factor.turn_on(url, settings.signing_key, user_id, pyotp.TOTP(key).now()) is not None
    return key


async def signed_in_session(settings: Settings, user_id: str) -> tuple[str, str]:
    """What a full sign-in (password and second factor) gives a browser now: (the `Cookie` header, the CSRF
    token), in the user's current session epoch."""
    user = await users.user_by_id(settings.effective_database_url, user_id)
    assert user is not None
    session = session_for(user, second_factor=True)
    return cookie_header(settings, session), session.csrf


async def person(settings: Settings, role: Role, email: str | None = None) -> Person:
    url = settings.effective_database_url
    email = email or f"{role.value}.user@provider.example"
    account = {
        Role.reseller: RESELLER_ACCOUNT,
        Role.customer: CUSTOMER_ACCOUNT,
        Role.manufacturer: MANUFACTURER_ACCOUNT,
    }.get(role)
    user = await users.add_user(url, email=email, role=role, password=PASSWORD, account_id=account)
    token = await users.create_token(url, email)
    key = await turn_on_second_factor(settings, user.id)
    cookie, csrf = await signed_in_session(settings, user.id)
    return Person(role, email, user.id, token, cookie, csrf, key)


@contextlib.asynccontextmanager
async def sqlite_stack(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str, **extra: Any
) -> AsyncIterator[Stack]:
    """The integration stack on SQLite; with a payload key, the API connects its own client (with the codec)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    settings = stack_settings(tmp_path, url, temporal, mail_sink, task_queue, **extra)
    app = create_app(settings)
    if not settings.payload_key:
        app.state.temporal = temporal.client
    try:
        async with (
            await build_worker(settings),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api,
        ):
            await users.add_user(url, email="csm@provider.example", role=Role.csm, password="correct horse battery")
            yield Stack(settings, temporal, mail_sink, api, await users.create_token(url, "csm@provider.example"))
    finally:
        await dispose_all()


@contextlib.asynccontextmanager
async def client_from(stack: Stack, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """The stack's API (an app of its own, so its own rate limits) as seen from `address`."""
    app = create_app(stack.settings)
    app.state.temporal = None if stack.settings.payload_key else stack.temporal.client
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest_asyncio.fixture
async def stack(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Stack]:
    async with sqlite_stack(tmp_path, temporal, mail_sink, task_queue) as running_stack:
        yield running_stack


@pytest_asyncio.fixture
async def admin(stack: Stack) -> Person:
    return await person(stack.settings, Role.admin)
