"""Fault injection on real parts: the stack of tests/integration with a switchable SMTP relay instead of the sink.

`faulty_stack` is the Temporal dev server (the session's `temporal`), a worker on its own task queue, the API
in-process (httpx over ASGI: a crash in the app is a 500 answer, as from a real server), the store on SQLite and
on PostgreSQL (`database_url`), and `relay` (tests/faults/relay.py). `pg_faulty_stack` runs the same on a
private PostgreSQL cluster the test may stop, on a short clock.

Every wait is bounded (`eventually`, `answered_in_time`), so a product that hangs fails the test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.settings import Settings
from starter.app import create_app
from store import users
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.faults.pgcluster import PrivateCluster, missing_tools
from tests.faults.relay import Accepted, Relay
from tests.integration.conftest import VALID
from tests.support import make_settings
from worker import build_worker

CSM = "csm@provider.example"
ANSWER_WITHIN = 3.0
"""Seconds within which an action must answer ("answers within 2 s", with room for a busy 2-core machine)."""
GIVE_UP_AFTER = 15.0
"""An action still unanswered after this many seconds fails the test rather than hanging it."""
SETTLE = 3.0
"""Seconds to wait after a condition holds before counting emails, so a duplicate would have arrived."""
ALIVE = {WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault injection on real parts (slow: minutes, not seconds)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


async def eventually(
    check: Callable[[], Awaitable[object] | object], timeout: float = 30.0, what: str = "the condition"
) -> None:
    """Poll `check` until it holds: it returns a truthy value, or None without raising (an assert-style check).

    An AssertionError raised by `check` means "not yet"; the last one is reported if time runs out.
    """
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            result = check()
            if isinstance(result, Awaitable):
                result = await result
            if result is None or result:
                return
            last = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            detail = f": {last}" if last is not None and str(last) else ""
            raise AssertionError(f"{what} did not hold within {timeout:.0f} s{detail}") from last
        await asyncio.sleep(0.25)


async def answered_in_time(
    action: Awaitable[httpx.Response], what: str, within: float = ANSWER_WITHIN
) -> httpx.Response:
    """Await `action` (an API call), failing if it takes longer than `within` seconds (timed in the test)."""
    started = time.monotonic()
    try:
        response = await asyncio.wait_for(action, timeout=max(GIVE_UP_AFTER, within * 3))
    except TimeoutError:
        raise AssertionError(f"{what} did not answer at all within {max(GIVE_UP_AFTER, within * 3):.0f} s") from None
    elapsed = time.monotonic() - started
    print(f"{what}: answered {response.status_code} in {elapsed:.2f} s")  # shown when the test fails
    assert elapsed <= within, (
        f"{what} answered {response.status_code} after {elapsed:.1f} s; it must answer within {within:.0f} s"
    )
    return response


def is_reminder(message: Accepted) -> bool:
    return "reminder" in message.subject.lower()


def is_invitation(message: Accepted) -> bool:
    """An email carrying a form link that is not a reminder."""
    return bool(message.form_links) and not is_reminder(message)


@dataclass
class FaultyStack:
    settings: Settings
    temporal: WorkflowEnvironment
    relay: Relay
    api: httpx.AsyncClient
    token: str
    enrollment_ids: list[str] = field(default_factory=list)
    """Every enrollment created through `create`, for `assert_runs_alive`."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    # --- the API ------------------------------------------------------------------------------------

    async def create(self, **changes: Any) -> httpx.Response:
        """POST /api/enrollments with VALID and `changes`."""
        response = await self.api.post("/api/enrollments", json={**VALID, **changes}, headers=self.auth)
        if response.status_code == 201:
            self.enrollment_ids.append(response.json()["id"])
        return response

    async def enroll(self, **changes: Any) -> str:
        """Create an enrollment (201 expected, answered in time); its id."""
        response = await answered_in_time(self.create(**changes), "POST /api/enrollments")
        assert response.status_code == 201, response.text
        enrollment_id: str = response.json()["id"]
        return enrollment_id

    async def detail(self, enrollment_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/enrollments/{enrollment_id}", headers=self.auth)
        assert response.status_code == 200, f"GET /api/enrollments/{enrollment_id}: {response.status_code}"
        body: dict[str, Any] = response.json()
        return body

    async def patch(self, enrollment_id: str, body: dict[str, Any]) -> httpx.Response:
        return await self.api.patch(f"/api/enrollments/{enrollment_id}", json=body, headers=self.auth)

    async def delete(self, enrollment_id: str, audit_note: str) -> httpx.Response:
        return await self.api.delete(
            f"/api/enrollments/{enrollment_id}", params={"audit_note": audit_note}, headers=self.auth
        )

    async def resend(self, enrollment_id: str, audit_note: str) -> httpx.Response:
        return await self.api.post(
            f"/api/enrollments/{enrollment_id}/resend", json={"audit_note": audit_note}, headers=self.auth
        )

    async def healthz(self) -> httpx.Response:
        return await self.api.get("/healthz")

    async def link_status(self, path: str) -> int:
        """What GET on a form link answers (200 live, 410 dead, 404 unknown), as the contact's browser sees it."""
        return (await self.api.get(path)).status_code

    async def submit_form(self, path: str, form: dict[str, str]) -> httpx.Response:
        return await self.api.post(path, data=form)

    # --- mail ---------------------------------------------------------------------------------------

    def mail_to(self, address: str) -> list[Accepted]:
        """What the relay accepted for `address`, oldest first."""
        return self.relay.messages_to(address)

    def invitations_to(self, address: str) -> list[Accepted]:
        return [m for m in self.mail_to(address) if is_invitation(m)]

    def reminders_to(self, address: str) -> list[Accepted]:
        return [m for m in self.mail_to(address) if is_reminder(m)]

    def links_to(self, address: str) -> list[str]:
        """Every form link path emailed to `address`, in the order received (repeats kept)."""
        return [link for m in self.mail_to(address) for link in m.form_links]

    def latest_link(self, address: str) -> str:
        """The path of the newest form link emailed to `address`."""
        links = self.links_to(address)
        assert links, f"no form link was emailed to {address}"
        return links[-1]

    def assert_nothing_twice(self) -> None:
        """No recipient got one message (Message-ID) twice, nor the same invitation link in two invitations."""
        for message in self.relay.messages():
            for address in message.rcpt_tos:
                ids = Counter(m.message_id for m in self.mail_to(address))
                assert ids[message.message_id] == 1, f"{address} got {message.message_id} {ids[message.message_id]}x"
                links = Counter(link for m in self.invitations_to(address) for link in m.form_links)
                twice = [link for link, n in links.items() if n > 1]
                assert not twice, f"{address} was invited twice with the same link"

    # --- Temporal -----------------------------------------------------------------------------------

    def handle(self, enrollment_id: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.client.get_workflow_handle(f"enrollment-{enrollment_id}")

    async def run_status(self, enrollment_id: str) -> WorkflowExecutionStatus | None:
        return (await self.handle(enrollment_id).describe()).status

    async def assert_running(self, enrollment_id: str) -> None:
        status = await self.run_status(enrollment_id)
        assert status == WorkflowExecutionStatus.RUNNING, (
            f"workflow enrollment-{enrollment_id} is {status.name if status else status}, not RUNNING"
        )

    async def assert_runs_alive(self, *enrollment_ids: str) -> None:
        """Each run (by default every one created here) is RUNNING or COMPLETED: none FAILED, TERMINATED, ..."""
        for enrollment_id in enrollment_ids or tuple(self.enrollment_ids):
            status = await self.run_status(enrollment_id)
            assert status in ALIVE, f"workflow enrollment-{enrollment_id} is {status.name if status else status}"


def faulty_settings(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, relay: Relay, task_queue: str, **extra: Any
) -> Settings:
    return make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=relay.port,
        task_queue=task_queue,
        **extra,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, temporal: WorkflowEnvironment, relay: Relay) -> AsyncIterator[FaultyStack]:
    """The API (in-process) and a worker on `settings`, and the CSM csm@provider.example with an API token."""
    app = create_app(settings)
    app.state.temporal = temporal.client
    worker = await build_worker(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with worker, httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
        url = settings.effective_database_url
        await users.add_user(url, email=CSM, role=Role.csm, password="correct horse battery")
        token = await users.create_token(url, CSM)
        try:
            yield FaultyStack(settings, temporal, relay, api, token)
        finally:
            relay.accept()  # let sends in flight finish, so the worker's shutdown does not wait on them


@pytest.fixture
def relay() -> Iterator[Relay]:
    """The switchable SMTP relay, accepting until the test says otherwise."""
    with Relay() as started:
        yield started


@pytest_asyncio.fixture
async def faulty_stack(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, relay: Relay, task_queue: str
) -> AsyncIterator[FaultyStack]:
    """The whole stack with the relay, once on SQLite and once on PostgreSQL."""
    settings = faulty_settings(tmp_path, database_url, temporal, relay, task_queue)
    async with running(settings, temporal, relay) as stack:
        yield stack


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this test's own (started), dropped at teardown whatever happened."""
    missing = missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing: CI must run the PostgreSQL restart test")
        pytest.skip(f"{', '.join(missing)} missing (Debian's postgresql-common): cannot run a private cluster")
    cluster = PrivateCluster.create()
    try:
        cluster.start_now()
        yield cluster
    finally:
        cluster.drop()


@pytest_asyncio.fixture
async def pg_faulty_stack(
    tmp_path: Path,
    private_postgres: PrivateCluster,
    temporal: WorkflowEnvironment,
    relay: Relay,
    task_queue: str,
) -> AsyncIterator[tuple[FaultyStack, PrivateCluster]]:
    """The stack on the private cluster, on a short clock: reminders after 3 s and 6 s, the deadline after 30 s."""
    url = private_postgres.url
    upgrade_to_head(url)
    settings = faulty_settings(tmp_path, url, temporal, relay, task_queue, reminders="3s,6s", enrollment_ttl="30s")
    try:
        async with running(settings, temporal, relay) as stack:
            yield stack, private_postgres
    finally:
        await dispose_all()
