"""Opening a form link again (the contact, a mail scanner, a reload) tells the workflow nothing new: one signal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from starter.dev.mailsink import MailSink
from tests.integration.conftest import Stack, eventually, running, stack_settings


@pytest_asyncio.fixture
async def stack(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Stack]:
    settings = stack_settings(tmp_path, database_url, temporal, mail_sink, task_queue)
    async with running(settings, temporal, mail_sink) as running_stack:
        yield running_stack


async def test_a_link_opened_twice_signals_its_workflow_once(stack: Stack) -> None:
    created = await stack.create()
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    await eventually(lambda: len(stack.mail_to("pat@acme.example")) == 1)
    link = stack.form_link("pat@acme.example")

    for _ in range(2):
        page = await stack.api.get(link)
        assert page.status_code == 200 and "Acme Widgets Ltd" in page.text

    history = await stack.handle(enrollment_id).fetch_history()
    signals = [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signals == ["opened"]

    async def opened_once() -> bool:
        response = await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)
        return [e["event"] for e in response.json()["timeline"]].count("opened") == 1

    await eventually(opened_once)
