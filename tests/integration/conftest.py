"""The stack on real parts: the Temporal dev server, a worker, the API (in-process ASGI), SMTP, the store."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.models import EnrollmentView, Role
from domain.settings import Settings
from starter.app import create_app
from starter.dev.mailsink import MailSink, StoredMessage, list_messages
from store import users
from tests.support import make_settings
from worker import build_worker

VALID = {
    "service_end_date": "2030-06-30",
    "member_type": "customer",
    "display_users_purchased": True,
    "users_purchased": 1000,
    "organization_name": "Acme Widgets Ltd",
    "corporate_contact_email": "pat@acme.example",
}


@dataclass
class Stack:
    settings: Settings
    temporal: WorkflowEnvironment
    sink: MailSink
    api: httpx.AsyncClient
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def mail(self) -> list[StoredMessage]:
        return list_messages(self.sink.mailbox_dir)

    def mail_to(self, address: str) -> list[StoredMessage]:
        return [m for m in self.mail() if address in m.rcpt_tos]

    def form_link(self, address: str) -> str:
        """The path of the newest form link emailed to `address`."""
        for message in self.mail_to(address):
            found = re.search(r"http://testserver(/enroll/[A-Za-z0-9_-]+)", message.text or "")
            if found:
                return found.group(1)
        raise AssertionError(f"no form link was emailed to {address}")

    async def create(self, **changes: Any) -> httpx.Response:
        return await self.api.post("/api/enrollments", json={**VALID, **changes}, headers=self.auth)

    async def token_for(self, email: str, role: Role, account_id: str | None = None) -> str:
        url = self.settings.effective_database_url
        await users.add_user(url, email=email, role=role, password="a long enough password", account_id=account_id)
        return await users.create_token(url, email)

    def handle(self, enrollment_id: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.client.get_workflow_handle(f"enrollment-{enrollment_id}")

    async def query(self, enrollment_id: str) -> EnrollmentView:
        view: EnrollmentView = await self.handle(enrollment_id).query("status", result_type=EnrollmentView)
        return view


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    """Poll `check` until it holds: the worker runs asynchronously from the API's answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def stack_settings(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, sink: MailSink, task_queue: str, **extra: Any
) -> Settings:
    return make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=sink.port,
        task_queue=task_queue,
        **extra,
    )


@pytest_asyncio.fixture
async def stack(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Stack]:
    settings = stack_settings(tmp_path, database_url, temporal, mail_sink, task_queue)
    async with running(settings, temporal, mail_sink) as running_stack:
        yield running_stack


@pytest_asyncio.fixture
async def short_stack(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Stack]:
    """The stack on a short clock: reminders after 4 s and 8 s, expiry after 12 s."""
    settings = stack_settings(
        tmp_path, database_url, temporal, mail_sink, task_queue, reminders="4s,8s", enrollment_ttl="12s"
    )
    async with running(settings, temporal, mail_sink) as running_stack:
        yield running_stack


@contextlib.asynccontextmanager
async def running(settings: Settings, temporal: WorkflowEnvironment, mail_sink: MailSink) -> AsyncIterator[Stack]:
    app = create_app(settings)
    app.state.temporal = temporal.client
    worker = await build_worker(settings)
    async with (
        worker,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api,
    ):
        url = settings.effective_database_url
        await users.add_user(url, email="csm@provider.example", role=Role.csm, password="correct horse battery")
        token = await users.create_token(url, "csm@provider.example")
        yield Stack(settings, temporal, mail_sink, api, token)
