"""Replay recorded histories against today's workflow code: an incompatible change fails here, in CI,
before it can break enrollments and accounts that are running. Guard changes with `workflow.patched`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workflows.account import MemberAccountWorkflow
from workflows.administrator import AdministratorWorkflow
from workflows.credential_import import CredentialImportWorkflow
from workflows.enrollment import EnrollmentWorkflow
from workflows.webhook_endpoint import WebhookEndpointWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
WORKFLOWS = [
    EnrollmentWorkflow,
    MemberAccountWorkflow,
    AdministratorWorkflow,
    CredentialImportWorkflow,
    WebhookEndpointWorkflow,
]
"""Every long-lived workflow: what the recorded histories run and replay."""


def test_there_are_histories_for_every_long_lived_workflow() -> None:
    names = {path.name.split("-")[0] for path in HISTORIES}
    assert names == {"enrollment", "account", "administrator", "credential", "webhook"}


RUNNERS = {"sandboxed": SandboxedWorkflowRunner, "unsandboxed": UnsandboxedWorkflowRunner}
"""The sandbox the tests run workflows in, and none, as production's worker runs them (worker.SANDBOXED)."""


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=RUNNERS[runner](),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
