"""A Temporal dev server of the test's own, which it stops and starts again on the same port and database file,
and the stack (worker, in-process API, SMTP sink, SQLite store) running against it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from domain.models import Role
from domain.settings import Settings
from starter.app import create_app
from starter.dev.mailsink import MailSink, list_messages
from starter.portal.session import CSRF_FIELD, cookie_header, session_for
from store import second_factor, users
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.conftest import binary
from tests.integration.conftest import VALID
from tests.support import free_port, make_settings
from worker import build_worker
from workflows.names import SEARCH_ATTRIBUTES

READY_WITHIN = 60.0
FORM = {
    "corporate_contact_name": "Pat Jones",
    "corporate_contact_phone": "+44 20 7946 0000",
    "technical_contact_name": "Sam Lee",
    "technical_contact_email": "sam@acme.example",
    "technical_contact_phone": "+44 20 7946 0001",
    "billing_contact_name": "Alex Kim",
    "billing_contact_email": "billing@acme.example",
    "address_line1": "1 High Street",
    "city": "London",
    "postal_code": "EC1A 1AA",
    "country": "United Kingdom",
    "accept_terms": "yes",
}


class DevServer:
    """`temporal server start-dev` on a fixed port, keeping its state in `database` across restarts."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.log = database.with_suffix(".log")
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        argv = [binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port)]
        argv += ["--headless", "--db-filename", str(self.database), "--log-level", "error"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{name}={kind}"]
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )
        await self._ready()

    async def _ready(self) -> None:
        """The frontend answers and knows the default namespace."""
        deadline = time.monotonic() + READY_WITHIN
        while True:
            assert self.process is not None and self.process.returncode is None, self.log.read_text()[-2000:]
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
                return
            except (RuntimeError, RPCError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None


@dataclass
class OutageStack:
    settings: Settings
    dev: DevServer
    sink: MailSink
    api: httpx.AsyncClient
    token: str
    cookie: str
    csrf: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> Awaitable[Client]:
        return Client.connect(self.dev.address)

    def subjects_to(self, address: str) -> list[str]:
        return [m.subject or "" for m in list_messages(self.sink.mailbox_dir) if address in m.rcpt_tos]

    def form_link(self, address: str) -> str:
        for message in list_messages(self.sink.mailbox_dir):
            found = re.search(r"http://testserver(/enroll/[A-Za-z0-9_-]+)", message.text or "")
            if address in message.rcpt_tos and found:
                return found.group(1)
        raise AssertionError(f"no form link was emailed to {address}")

    async def portal_post(self, path: str, data: dict[str, str]) -> httpx.Response:
        """A signed-in admin's portal form, with its CSRF token."""
        return await self.api.post(path, data={**data, CSRF_FIELD: self.csrf}, headers={"Cookie": self.cookie})

    async def detail(self, enrollment_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/enrollments/{enrollment_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def enroll(self, organization: str, contact: str) -> str:
        """A New enrollment whose invitation has gone out."""
        created = await self.api.post(
            "/api/enrollments",
            json={**VALID, "organization_name": organization, "corporate_contact_email": contact},
            headers=self.auth,
        )
        assert created.status_code == 201, created.text
        enrollment_id: str = created.json()["id"]
        await until(lambda: any("Complete the member account" in s for s in self.subjects_to(contact)))
        return enrollment_id

    async def submit(self, contact: str) -> None:
        response = await self.api.post(self.form_link(contact), data=FORM)
        assert response.status_code == 303, response.text

    async def review(self, enrollment_id: str, step: str) -> None:
        response = await self.api.post(
            f"/api/enrollments/{enrollment_id}/review/{step}", json={"audit_note": step}, headers=self.auth
        )
        assert response.status_code == 200, response.text


async def until(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll `check` (a function, maybe async) until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.2)


async def portal_cookie(settings: Settings, user_id: str) -> tuple[str, str]:
    """What a full sign-in gives a browser: (the `Cookie` header, the session's CSRF token). The user gets a
    real second factor first (required by default), so the session is one of a full sign-in."""
    url = settings.effective_database_url
    key = await second_factor.setup_key(url, settings.signing_key, user_id)
    assert await second_factor.turn_on(url, settings.signing_key, user_id, pyotp.TOTP(key).now()) is not None
    user = await users.user_by_id(url, user_id)
    assert user is not None
    session = session_for(user, second_factor=True)
    return cookie_header(settings, session), session.csrf


@contextlib.asynccontextmanager
async def outage_stack(tmp_path: Path, sink: MailSink, task_queue: str, **extra: Any) -> AsyncIterator[OutageStack]:
    """The dev server (started), a worker, and the API with its own Temporal client, as in production."""
    dev = DevServer(tmp_path / "temporal.db")
    await dev.start()
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    settings = make_settings(
        tmp_path, database_url=url, temporal_address=dev.address, smtp_port=sink.port, task_queue=task_queue, **extra
    )
    try:
        admin = await users.add_user(url, email="admin@provider.example", role=Role.admin, password="a long password!")
        token = await users.create_token(url, "admin@provider.example")
        cookie, csrf = await portal_cookie(settings, admin.id)
        async with (
            await build_worker(settings),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://testserver"
            ) as api,
        ):
            yield OutageStack(settings, dev, sink, api, token, cookie, csrf)
    finally:
        await dev.stop()
        await dispose_all()
