"""POST /api/mail-events: a mail provider's late report on an email we sent (bounced, complained, delivered).

Most bounces arrive after the relay accepted the message. The report is matched to the email by its
Message-ID (the outbox keeps it); a bounce then has the same effect as a refusal at RCPT — the enrollment is
marked Bounced and the CSM is told — through the workflow's `mail_event` update. Reports are idempotent:
a provider retrying its webhook changes nothing more. docs/operations.md maps Postmark, SES and Mailgun
webhooks onto this body.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from domain.access import Permission
from domain.models import EmailKind, FieldError, MailProblem
from starter.deps import ClientDep, SettingsDep, require
from starter.services.enrollments import Conflict, InvalidInput, run_update
from store import outbox
from store.tables import User

router = APIRouter(prefix="/api", tags=["mail"])
MailReporter = Annotated[User, require(Permission.mail_events)]
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


@router.post("/mail-events", response_model=MailEventResult)
async def report_mail_event(
    body: MailEvent, user: MailReporter, settings: SettingsDep, client: ClientDep
) -> MailEventResult:
    url = settings.effective_database_url
    email = await outbox.by_message_id(url, body.message_id)
    if email is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No email sent by this service has this Message-ID.")
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
    workflow_id = email.key.split("/", 1)[0]
    try:
        await run_update(client, workflow_id, "mail_event", problem, dict)
    except Conflict:
        return result  # the enrollment or account has ended: the outbox keeps the report
    return result.model_copy(update={"applied": True})
