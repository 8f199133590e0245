"""Temporal names from DESIGN.md that ops filter on: ids, task queue, search attributes."""

TASK_QUEUE = "enrollment"
STATUS_QUERY = "status"

# name -> indexed value type, as `temporal operator search-attribute create --type` spells it.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "EnrollmentStatus": "Keyword",
    "MemberType": "Keyword",
    "ReminderCount": "Int",
    "FormDueAt": "Datetime",
    "AccountStatus": "Keyword",
    "ServiceEndDate": "Datetime",
}


def enrollment_workflow_id(enrollment_id: str) -> str:
    return f"enrollment-{enrollment_id}"


def account_workflow_id(account_id: str) -> str:
    return f"account-{account_id}"
