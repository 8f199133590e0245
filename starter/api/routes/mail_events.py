"""POST /api/mail-events: a mail provider's late report on an email we sent (bounced, complained, delivered).

Most bounces arrive after the relay accepted the message. The report is matched to the email by its
Message-ID (the outbox keeps it); a bounce then has the same effect as a refusal at RCPT — the enrollment is
marked Bounced and the CSM is told — through the `mail_event` update of the email's workflow. Reports are
idempotent: a provider retrying its webhook changes nothing more. docs/operations.md maps Postmark, SES and
Mailgun webhooks onto this body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from domain.access import Permission
from starter.deps import ClientDep, SettingsDep, require
from starter.services import mail_events
from starter.services.mail_events import MailEvent, MailEventResult
from store.tables import User

router = APIRouter(prefix="/api", tags=["mail"])
MailReporter = Annotated[User, require(Permission.mail_events)]


@router.post("/mail-events", response_model=MailEventResult)
async def report_mail_event(
    body: MailEvent, user: MailReporter, settings: SettingsDep, client: ClientDep
) -> MailEventResult:
    return await mail_events.report(settings.effective_database_url, client, body)
