"""The Temporal names ops filter on and every part agrees on: workflow ids, the task queue, the status query and
the search attributes (the README's "How it fits together"). None of them carries personal data.

These names are part of every recorded history: changing one breaks the runs already in flight
(docs/operations.md, "Changing a workflow").
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

TASK_QUEUE = "enrollment"
"""The default task queue (`ENROLL_TASK_QUEUE`, the README's settings table)."""
STATUS_QUERY = "status"

ENROLLMENT_STATUS = SearchAttributeKey.for_keyword("EnrollmentStatus")
MEMBER_TYPE = SearchAttributeKey.for_keyword("MemberType")
REMINDER_COUNT = SearchAttributeKey.for_int("ReminderCount")
FORM_DUE_AT = SearchAttributeKey.for_datetime("FormDueAt")
ACCOUNT_STATUS = SearchAttributeKey.for_keyword("AccountStatus")
SERVICE_END_DATE = SearchAttributeKey.for_datetime("ServiceEndDate")
CREDENTIAL_BATCH_STATUS = SearchAttributeKey.for_keyword("CredentialBatchStatus")
"""A manufacturer's PSKC batch: Importing, Imported, Rejected (CredentialImportWorkflow)."""
WEBHOOK_ENDPOINT_STATUS = SearchAttributeKey.for_keyword("WebhookEndpointStatus")
"""A webhook endpoint: Enabled, Failing, Disabled (WebhookEndpointWorkflow)."""

SEARCH_ATTRIBUTE_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    ENROLLMENT_STATUS,
    MEMBER_TYPE,
    REMINDER_COUNT,
    FORM_DUE_AT,
    ACCOUNT_STATUS,
    SERVICE_END_DATE,
    CREDENTIAL_BATCH_STATUS,
    WEBHOOK_ENDPOINT_STATUS,
)

_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
}
SEARCH_ATTRIBUTES: dict[str, str] = {key.name: _CLI_TYPES[key.indexed_value_type] for key in SEARCH_ATTRIBUTE_KEYS}
"""name -> indexed value type, as `temporal operator search-attribute create --type` spells it."""


def enrollment_workflow_id(enrollment_id: str) -> str:
    return f"enrollment-{enrollment_id}"


def account_workflow_id(account_id: str) -> str:
    return f"account-{account_id}"


def administrator_workflow_id(user_id: str) -> str:
    """One member administrator's invitation (AdministratorWorkflow): by user id, never by address."""
    return f"administrator-{user_id}"


def credential_batch_workflow_id(batch_id: str) -> str:
    """One manufacturer's PSKC batch being imported (CredentialImportWorkflow)."""
    return f"credential-batch-{batch_id}"


def webhook_endpoint_workflow_id(endpoint_id: str) -> str:
    """One webhook endpoint's deliveries (WebhookEndpointWorkflow)."""
    return f"webhook-endpoint-{endpoint_id}"
