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
from starter.services.errors import Conflict, InvalidInput, NotFound
from starter.services.temporal import run_update
from store import outbox
from workflows.account import MemberAccountWorkflow
from workflows.administrator import AdministratorWorkflow
from workflows.enrollment import EnrollmentWorkflow, link_version_of
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
    state = _STATE[body.event]
    result = MailEventResult(
        message_id=email.message_id,
        event=body.event,
        kind=email.kind,
        enrollment_id=email.enrollment_id,
        account_id=email.account_id,
        applied=False,
    )
    if body.event == "delivered":
        await outbox.record_event(url, email.key, state, body.reason)
        return result
    # Already reported (a provider retrying its webhook) is per recipient: an email to several keeps a line each.
    several = len(recipients) > 1
    if _reported(email.error, body.recipient, body.event) if several else email.state == state:
        return result
    problem = MailProblem(
        kind=EmailKind(email.kind),
        recipient=body.recipient,
        reason=body.reason or f"reported {body.event} by the mail provider",
        bounced=body.event == "bounced",
        event=body.event,
    )
    workflow_id, _, activity_id = email.key.partition("/")  # the outbox keys an email by both
    # The outbox is marked only once the workflow has taken the report: a report that could not reach it (Temporal
    # down: a 503) finds nothing marked when the provider retries, and is delivered then.
    try:
        if workflow_id.startswith(enrollment_workflow_id("")):
            # An invitation's or reminder's link version: a bounce of one since replaced is only recorded.
            problem = problem.model_copy(update={"link_version": link_version_of(activity_id)})
            await run_update(client, workflow_id, EnrollmentWorkflow.mail_event, problem)
        elif workflow_id.startswith(account_workflow_id("")):
            await run_update(client, workflow_id, MemberAccountWorkflow.mail_event, problem)
        elif workflow_id.startswith(administrator_workflow_id("")):
            # The run works by user id: the address stays out of its history, in the recipient and the reason.
            reason = problem.reason.replace(body.recipient, "the recipient")
            anonymous = problem.model_copy(update={"recipient": "", "reason": reason})
            await run_update(client, workflow_id, AdministratorWorkflow.mail_event, anonymous)
        else:
            await outbox.record_event(url, email.key, state, _outbox_reason(email.error, body, several=several))
            return result  # no workflow of ours sent it: nothing to tell
    except Conflict:
        # The enrollment or account has ended: the outbox keeps the report.
        await outbox.record_event(url, email.key, state, _outbox_reason(email.error, body, several=several))
        return result
    await outbox.record_event(url, email.key, state, _outbox_reason(email.error, body, several=several))
    return result.model_copy(update={"applied": True})


def _reported_lines(error: str | None) -> list[str]:
    """The per-recipient report lines (`address event: reason`) the outbox keeps for an email to several."""
    lines = []
    for line in (error or "").split("\n"):
        head = line.partition(": ")[0]
        address, _, event = head.partition(" ")
        if "@" in address and event in _STATE:
            lines.append(line)
    return lines


def _reported(error: str | None, recipient: str, event: str) -> bool:
    """Whether the outbox already keeps `event` for `recipient` (an email to several: one line each)."""
    mark = f"{recipient.lower()} {event}: "
    return any(line.lower().startswith(mark) for line in _reported_lines(error))


def _outbox_reason(error: str | None, body: MailEvent, *, several: bool) -> str | None:
    """What the outbox keeps of the report: its reason, or for an email to several recipients a line per
    recipient and event (`address event: reason`), so a report about one is not taken for another's."""
    if not several:
        return body.reason
    lines = _reported_lines(error)
    if not _reported(error, body.recipient, body.event):
        lines.append(f"{body.recipient.lower()} {body.event}: {body.reason or 'reported by the mail provider'}")
    return "\n".join(lines)
