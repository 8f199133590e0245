"""The security tests' stack: the integration stack on SQLite, and real users of every role."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from fastapi.responses import Response
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.settings import Settings
from starter.app import create_app
from starter.dev.mailsink import MailSink
from starter.portal.session import new_session, write_session
from store import users
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.integration.conftest import Stack, stack_settings
from worker import build_worker

PASSWORD = "a long enough password"
RESELLER_ACCOUNT = "acct-reseller"
CUSTOMER_ACCOUNT = "acct-customer"


@dataclass(frozen=True)
class Person:
    """A real user of one role: their API token, and a signed-in portal session (cookie and CSRF token)."""

    role: Role
    email: str
    user_id: str
    token: str
    cookie: str
    csrf: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session(self) -> dict[str, str]:
        return {"Cookie": self.cookie}


def portal_session(settings: Settings, user_id: str | None) -> tuple[str, str]:
    """What signing in gives a browser: (the `Cookie` header, the session's CSRF token)."""
    session = new_session(user_id)
    response = Response()
    write_session(response, settings, session)
    return response.headers["set-cookie"].split(";", 1)[0], session.csrf


async def person(settings: Settings, role: Role, email: str | None = None) -> Person:
    url = settings.effective_database_url
    email = email or f"{role.value}.user@provider.example"
    account = {Role.reseller: RESELLER_ACCOUNT, Role.customer: CUSTOMER_ACCOUNT}.get(role)
    user = await users.add_user(url, email=email, role=role, password=PASSWORD, account_id=account)
    token = await users.create_token(url, email)
    cookie, csrf = portal_session(settings, user.id)
    return Person(role, email, user.id, token, cookie, csrf)


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
