"""The Temporal names every part and every recorded history agree on, and the shape of the workflow modules:
a renamed workflow, handler, activity, search attribute or id fails here, not only in a replay."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

from activities.enrollment import EnrollmentActivities
from domain.settings import Settings
from workflows import names
from workflows.account import MemberAccountWorkflow
from workflows.common import refuse
from workflows.enrollment import EnrollmentWorkflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def test_the_workflow_types_and_their_handlers_keep_their_names() -> None:
    enrollment = workflow._Definition.must_from_class(EnrollmentWorkflow)
    assert enrollment.name == "EnrollmentWorkflow"
    assert set(enrollment.queries) == {names.STATUS_QUERY}
    assert set(enrollment.signals) == {"opened"}
    assert set(enrollment.updates) == {
        "created",
        "submit_form",
        "resend",
        "edit",
        "cancel",
        "start_review",
        "approve",
        "reject",
        "mail_event",
    }
    account = workflow._Definition.must_from_class(MemberAccountWorkflow)
    assert account.name == "MemberAccountWorkflow"
    assert set(account.queries) == {names.STATUS_QUERY}
    assert set(account.signals) == set()
    assert set(account.updates) == {
        "suspend",
        "reactivate",
        "delete",
        "edit",
        "add_users_purchased",
        "report_usage",
        "mail_event",
    }


def test_the_activities_keep_their_names() -> None:
    methods: list[Callable[..., Any]] = [
        EnrollmentActivities.validate,
        EnrollmentActivities.persist,
        EnrollmentActivities.record,
        EnrollmentActivities.send_invitation,
        EnrollmentActivities.send_email,
        EnrollmentActivities.close_form_links,
        EnrollmentActivities.record_account,
    ]
    assert [activity._Definition.must_from_callable(m).name for m in methods] == [
        "validate",
        "persist",
        "record",
        "send_invitation",
        "send_email",
        "close_form_links",
        "record_account",
    ]


def test_ids_task_queue_and_search_attributes_are_spelled_as_ops_filter_on_them() -> None:
    assert names.enrollment_workflow_id("abc") == "enrollment-abc"
    assert names.account_workflow_id("abc") == "account-abc"
    assert names.credential_batch_workflow_id("abc") == "credential-batch-abc"
    assert names.TASK_QUEUE == "enrollment"
    assert names.SEARCH_ATTRIBUTES == {
        "EnrollmentStatus": "Keyword",
        "MemberType": "Keyword",
        "ReminderCount": "Int",
        "FormDueAt": "Datetime",
        "AccountStatus": "Keyword",
        "ServiceEndDate": "Datetime",
        "CredentialBatchStatus": "Keyword",
        "WebhookEndpointStatus": "Keyword",
    }
    assert [key.name for key in names.SEARCH_ATTRIBUTE_KEYS] == list(names.SEARCH_ATTRIBUTES)


def test_the_settings_default_task_queue_is_the_one_names_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENROLL_TASK_QUEUE", raising=False)
    assert Settings(_env_file=None).task_queue == names.TASK_QUEUE


def test_refuse_raises_a_non_retryable_transition_refused_only_with_a_reason() -> None:
    refuse(None)
    refuse("")
    with pytest.raises(ApplicationError) as refused:
        refuse("This enrollment is under review.")
    assert refused.value.type == "TransitionRefused"
    assert refused.value.non_retryable
    assert refused.value.message == "This enrollment is under review."


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_the_account_workflow_does_not_import_the_enrollment_workflow() -> None:
    assert "workflows.enrollment" not in _imported_modules(WORKFLOWS / "account.py")
    assert "workflows.enrollment" not in _imported_modules(WORKFLOWS / "common.py")
    assert "workflows.enrollment" not in _imported_modules(WORKFLOWS / "names.py")


def test_the_workflows_refer_to_activities_and_the_child_by_method_and_class() -> None:
    """Inside workflows/, activities are run by method (`execute_activity_method`, `start_activity_method`) and
    the child workflow is started by its run method, never by a string name."""
    for path in (WORKFLOWS / "enrollment.py", WORKFLOWS / "account.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            where = f"{path.name}:{node.lineno}"
            assert node.func.attr not in {"execute_activity", "start_activity"}, f"{where} runs an activity by name"
            if node.func.attr in {"start_child_workflow", "execute_child_workflow"}:
                first = node.args[0]
                assert not isinstance(first, ast.Constant), f"{where} starts a child workflow by name"
