"""What EnrollmentWorkflow and MemberAccountWorkflow share: retry policy and timeouts, the wait for a change,
the refusal of an update, and the pieces of the mailer that sends their emails outside the lock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.enrollment import EnrollmentActivities
    from domain.models import EmailRequest, EmailResult, MailProblem

BEST_EFFORT_MAIL = "best-effort-mail"
"""The patch that took email off the process's critical path: runs started before it keep their old shape."""
LEAN_STORE_WRITES = "lean-store-writes"
"""The patch that made the create's check and first write (validate, persist) local activities and stopped
upserting search attributes that did not change: a create answers after one workflow task instead of three.
Runs started before it keep their old shape."""
CONTINUING_AS_NEW = "ContinuingAsNew"
"""The error type of an update turned away while its run hands over to a fresh one: retry it, it lands there."""
RECORD_TIMEOUT = timedelta(seconds=30)
EMAIL_TIMEOUT = timedelta(seconds=90)
# Transient failures (store locked, SMTP down) retry for as long as it takes, backing off to a minute.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)

MailActivity = Callable[[EnrollmentActivities, EmailRequest], Awaitable[EmailResult]]
"""An email activity, by method: `EnrollmentActivities.send_invitation` or `EnrollmentActivities.send_email`."""


def refuse(reason: str | None) -> None:
    """Refuse an update with `reason` (the status machine's sentence, or the rule's): a non-retryable
    `TransitionRefused`, which the ways in answer with a 409. No reason, no refusal."""
    if reason:
        raise ApplicationError(reason, type="TransitionRefused", non_retryable=True)


async def changed_within(epoch: Callable[[], int], timeout: timedelta | None, label: str | None) -> bool:
    """True when a handler moved the process on (bumped its epoch) before `timeout` (None: wait as long as it takes).
    The label is the timer's summary in the Temporal UI."""
    start = epoch()
    try:
        await workflow.wait_condition(lambda: epoch() != start, timeout=timeout, timeout_summary=label)
    except TimeoutError:
        return False
    return True


@dataclass
class Mail:
    """An email waiting for the mailer: which activity sends it, under which id, and its timeline note."""

    request: EmailRequest
    activity: MailActivity
    activity_id: str
    note: str | None = None


def mail_problem_of(mail: Mail, err: ActivityError) -> MailProblem | None:
    """The permanent failure an email activity ended with; None when it was cancelled (its link died)."""
    cause = err.cause
    if isinstance(cause, CancelledError):
        return None
    recipient = mail.request.to[0] if mail.request.to else ""
    if isinstance(cause, ApplicationError) and cause.type == "SmtpRecipientRefused" and len(cause.details) > 1:
        return MailProblem(kind=mail.request.kind, recipient=recipient, reason=str(cause.details[1]))
    reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    return MailProblem(kind=mail.request.kind, recipient=recipient, reason=reason, bounced=False, event="failed")
