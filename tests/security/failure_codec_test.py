"""With ENROLL_PAYLOAD_KEY, failure messages and stack traces reach Temporal's history encrypted, like payloads:
an error that quotes an organization shows nothing of it to whoever reads the history without the key."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import binary
from tests.support import make_settings
from workflows.client import connect
from workflows.codec import new_key_text

ORGANIZATION = "Zephyr Quantum Holdings"
MESSAGE = f"{ORGANIZATION} is not allowed to enroll"


@activity.defn(name="refuse_organization")
async def refuse_organization(organization: str) -> None:
    raise ApplicationError(f"{organization} is not allowed to enroll", type="Refused", non_retryable=True)


@workflow.defn(name="RefusedOnboarding", sandboxed=False)
class RefusedOnboarding:
    @workflow.run
    async def run(self, organization: str) -> None:
        await workflow.execute_activity(
            refuse_organization, organization, activity_id="refuse", start_to_close_timeout=timedelta(seconds=30)
        )


async def history_json(address: str, workflow_id: str) -> str:
    """The run's history as the `temporal` CLI shows it to anyone who can reach the server (no codec)."""
    process = await asyncio.create_subprocess_exec(
        binary("temporal"),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--address",
        address,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    return out.decode()


@pytest.mark.parametrize("encrypted", [True, False], ids=["with-payload-key", "without-payload-key"])
async def test_a_failure_quoting_an_organization_is_encrypted_in_the_history_with_a_payload_key(
    tmp_path: Path, temporal: WorkflowEnvironment, task_queue: str, encrypted: bool
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}",
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=25,
        task_queue=task_queue,
        payload_key=new_key_text("k1") if encrypted else None,
    )
    client = await connect(settings)
    workflow_id = f"refused-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[RefusedOnboarding], activities=[refuse_organization]):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(RefusedOnboarding.run, ORGANIZATION, id=workflow_id, task_queue=task_queue)
    # Whoever holds the key (the API, the worker) still reads the message.
    activity_failure = failed.value.cause
    assert isinstance(activity_failure, ActivityError) and MESSAGE in str(activity_failure.cause)

    history = await history_json(settings.effective_temporal_address, workflow_id)
    clear = [MESSAGE, ORGANIZATION, base64.b64encode(ORGANIZATION.encode()).decode()[:12], Path(__file__).name]
    if encrypted:
        for secret in clear:
            assert secret not in history
        assert "Encoded failure" in history
    else:  # the same history without a key: the message and the stack trace are there to read
        assert MESSAGE in history and Path(__file__).name in history
