"""The enrollment and member-account status machines: the one place that says what is allowed.

The workflows' update validators and the API both ask `enrollment_refusal` / `account_refusal`; a refusal
is the sentence a user sees with the `409`.
"""

from __future__ import annotations

from enum import StrEnum

from domain.models import AccountStatus, EnrollmentStatus


class EnrollmentAction(StrEnum):
    submit_form = "submit the form"
    edit = "edit"
    resend = "resend the invitation of"
    cancel = "delete"
    start_review = "start the review of"
    approve = "approve"
    reject = "reject"


_ALLOWED: dict[EnrollmentAction, frozenset[EnrollmentStatus]] = {
    EnrollmentAction.submit_form: frozenset({EnrollmentStatus.new}),
    EnrollmentAction.edit: frozenset({EnrollmentStatus.new, EnrollmentStatus.pending_review}),
    EnrollmentAction.resend: frozenset({EnrollmentStatus.new, EnrollmentStatus.expired}),
    EnrollmentAction.cancel: frozenset({EnrollmentStatus.new, EnrollmentStatus.pending_review}),
    EnrollmentAction.start_review: frozenset({EnrollmentStatus.pending_review}),
    EnrollmentAction.approve: frozenset({EnrollmentStatus.in_review}),
    EnrollmentAction.reject: frozenset({EnrollmentStatus.in_review}),
}

OPEN_STATUSES = frozenset(
    {EnrollmentStatus.new, EnrollmentStatus.pending_review, EnrollmentStatus.in_review, EnrollmentStatus.expired}
)
"""Statuses whose enrollment still claims its organization name (an Expired one can be revived)."""

FINAL_STATUSES = frozenset({EnrollmentStatus.approved, EnrollmentStatus.rejected, EnrollmentStatus.cancelled})


def enrollment_allows(status: EnrollmentStatus, action: EnrollmentAction) -> bool:
    return status in _ALLOWED[action]


def enrollment_refusal(status: EnrollmentStatus, action: EnrollmentAction) -> str | None:
    """None when `action` is allowed in `status`, else the sentence that says why not."""
    if enrollment_allows(status, action):
        return None
    if status in (EnrollmentStatus.in_review, EnrollmentStatus.approved, EnrollmentStatus.rejected) and action in (
        EnrollmentAction.edit,
        EnrollmentAction.cancel,
        EnrollmentAction.resend,
    ):
        return f"Cannot {action.value} this enrollment: review has begun (status {status.value})."
    if action == EnrollmentAction.submit_form:
        return "This enrollment form has already been completed or is no longer open."
    allowed = " or ".join(sorted(s.value for s in _ALLOWED[action]))
    return f"Cannot {action.value} this enrollment while it is {status.value}; that needs status {allowed}."


class AccountAction(StrEnum):
    suspend = "suspend"
    reactivate = "reactivate"
    delete = "delete"
    edit = "edit"
    add_users = "add users purchased to"
    report_usage = "report usage of"


_ACCOUNT_ALLOWED: dict[AccountAction, frozenset[AccountStatus]] = {
    AccountAction.suspend: frozenset({AccountStatus.active}),
    AccountAction.reactivate: frozenset({AccountStatus.suspended}),
    AccountAction.delete: frozenset({AccountStatus.suspended}),
    AccountAction.edit: frozenset({AccountStatus.active, AccountStatus.suspended, AccountStatus.expired}),
    AccountAction.add_users: frozenset({AccountStatus.active, AccountStatus.suspended, AccountStatus.expired}),
    AccountAction.report_usage: frozenset({AccountStatus.active, AccountStatus.suspended, AccountStatus.expired}),
}


def account_refusal(status: AccountStatus, action: AccountAction) -> str | None:
    if status in _ACCOUNT_ALLOWED[action]:
        return None
    if action == AccountAction.delete and status == AccountStatus.active:
        return "Cannot delete an Active member account; suspend it first."
    allowed = " or ".join(sorted(s.value for s in _ACCOUNT_ALLOWED[action]))
    return f"Cannot {action.value} a member account that is {status.value}; that needs status {allowed}."
