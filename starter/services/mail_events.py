"""A mail provider's late report on an email we sent (bounced, complained, delivered): the work behind
`POST /api/mail-events`.

Most bounces arrive after the relay accepted the message. The report is matched to the email by its
Message-ID (the outbox keeps it); a bounce then has the same effect as a refusal at RCPT — the enrollment is
marked Bounced and the CSM is told, an administrator's invitation is marked bounced and the inviter told —
through the `mail_event` update of the email's workflow. Reports are
idempotent: a provider retrying its webhook changes nothing more.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client

from domain.models import EmailKind, FieldError, MailProblem
from starter.services.enrollments import Conflict, InvalidInput, NotFound, run_update
from store import outbox
from workflows.account import MemberAccountWorkflow
from workflows.administrator import AdministratorWorkflow
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import account_workflow_id, administrator_workflow_id, enrollment_workflow_id

_STATE = {"bounced": "bounced", "complained": "complained", "delivered": "delivered"}


class MailEvent(BaseModel):
    """One provider report. `message_id` is the Message-ID header we sent (angle brackets optional)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    message_id: str = Field(min_length=3, max_length=300)
    event: Literal["bounced", "complained", "delivered"]
    recipient: str = Field(min_length=3, max_length=254)
    reason: str | None = Field(default=None, max_length=1000)


class MailEventResult(BaseModel):
    message_id: str
    event: str
    kind: str
    enrollment_id: str | None
    account_id: str | None
    applied: bool
    """Whether the enrollment or account took note (False when it had already, or has ended)."""


async def report(url: str, client: Client, body: MailEvent) -> MailEventResult:
    """Record the report on the email and, for a bounce or complaint, tell the workflow that sent it."""
    email = await outbox.by_message_id(url, body.message_id)
    if email is None:
        raise NotFound("No email sent by this service has this Message-ID.")
    recipients = [address.strip().lower() for address in email.recipients.split(",")]
    if body.recipient.lower() not in recipients:
        raise InvalidInput([FieldError(field="recipient", message="was not a recipient of this email")])
    already = email.state == _STATE[body.event]
    await outbox.record_event(url, email.key, _STATE[body.event], body.reason)
    result = MailEventResult(
        message_id=email.message_id,
        event=body.event,
        kind=email.kind,
        enrollment_id=email.enrollment_id,
        account_id=email.account_id,
        applied=False,
    )
    if body.event == "delivered" or already:
        return result
    problem = MailProblem(
        kind=EmailKind(email.kind),
        recipient=body.recipient,
        reason=body.reason or f"reported {body.event} by the mail provider",
        bounced=body.event == "bounced",
        event=body.event,
    )
    workflow_id = email.key.split("/", 1)[0]  # the outbox keys an email by its workflow id and activity id
    try:
        if workflow_id.startswith(enrollment_workflow_id("")):
            await run_update(client, workflow_id, EnrollmentWorkflow.mail_event, problem)
        elif workflow_id.startswith(account_workflow_id("")):
            await run_update(client, workflow_id, MemberAccountWorkflow.mail_event, problem)
        elif workflow_id.startswith(administrator_workflow_id("")):
            # The run works by user id: the address stays out of its history, in the recipient and the reason.
            reason = problem.reason.replace(body.recipient, "the recipient")
            anonymous = problem.model_copy(update={"recipient": "", "reason": reason})
            await run_update(client, workflow_id, AdministratorWorkflow.mail_event, anonymous)
        else:
            return result  # no workflow of ours sent it: nothing to tell
    except Conflict:
        return result  # the enrollment or account has ended: the outbox keeps the report
    return result.model_copy(update={"applied": True})
