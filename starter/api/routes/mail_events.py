"""POST /api/mail-events: a mail provider's late report on an email we sent (bounced, complained, delivered).

Most bounces arrive after the relay accepted the message. The report is matched to the email by its
Message-ID (the outbox keeps it); a bounce then has the same effect as a refusal at RCPT — the enrollment is
marked Bounced and the CSM is told — through the `mail_event` update of the email's workflow. Reports are
idempotent: a provider retrying its webhook changes nothing more.

Two ways in. `POST /api/mail-events` takes our own body from an operator's relay, with a bearer token.
`POST /api/mail-events/{ses,postmark,mailgun,sendgrid}` take each provider's own webhook as it posts it, and are
authenticated by the provider's signature (or Postmark's basic auth) instead of a token: a provider cannot hold one
of our tokens. They verify before reading anything else, answer `401` to a request that does not verify (nothing
changes), and apply each report through the same `mail_events.report` (`starter.services.mail_providers`).
Temporal is reached only for a verified request, so an unverified one is refused even while it is down.
docs/operations.md says how to point each provider here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from domain.access import Permission
from starter.deps import ClientDep, SettingsDep, get_client, require
from starter.services import mail_events
from starter.services.mail_events import MailEvent, MailEventResult
from starter.services.mail_providers import ProviderReportResult, apply, mailgun, postmark, sendgrid, ses
from store.tables import User

router = APIRouter(prefix="/api", tags=["mail"])
MailReporter = Annotated[User, require(Permission.mail_events)]
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"description": "The provider's signature (or basic auth) did not verify, or the provider is not configured"},
    503: {"description": "Temporal is out of reach: the provider's retry is applied"},
}


@router.post("/mail-events", response_model=MailEventResult)
async def report_mail_event(
    body: MailEvent, user: MailReporter, settings: SettingsDep, client: ClientDep
) -> MailEventResult:
    return await mail_events.report(settings.effective_database_url, client, body)


@router.post("/mail-events/ses", response_model=ProviderReportResult, responses=REFUSED)
async def report_ses(request: Request, settings: SettingsDep) -> ProviderReportResult:
    """Amazon SES notifications through an SNS topic (HTTPS subscription, raw message delivery off): the SNS
    signature is verified, the topic must be in ENROLL_MAIL_EVENTS_SES_TOPIC_ARNS, and the subscription is
    confirmed here."""
    message = await ses.verify(settings, await request.body())
    if message["Type"] == "SubscriptionConfirmation":
        await ses.confirm(message)
        return ProviderReportResult(provider="ses", applied=False, note="subscription confirmed", reports=[])
    if message["Type"] == "UnsubscribeConfirmation":
        return ProviderReportResult(provider="ses", applied=False, note="unsubscribed: nothing to do", reports=[])
    client = await get_client(request)
    return await apply(settings.effective_database_url, client, "ses", ses.reports(message), ses.UNMATCHED)


@router.post("/mail-events/postmark", response_model=ProviderReportResult, responses=REFUSED)
async def report_postmark(request: Request, settings: SettingsDep) -> ProviderReportResult:
    """Postmark's Bounce, SpamComplaint and Delivery webhooks, with the basic auth set in the webhook's URL."""
    postmark.check_auth(settings, request.headers.get("authorization"))
    reports = postmark.reports(await request.body())
    client = await get_client(request)
    return await apply(settings.effective_database_url, client, "postmark", reports, postmark.UNMATCHED)


@router.post("/mail-events/mailgun", response_model=ProviderReportResult, responses=REFUSED)
async def report_mailgun(request: Request, settings: SettingsDep) -> ProviderReportResult:
    """Mailgun's webhooks (JSON), with Mailgun's HMAC signature; a signature older than 15 minutes is refused, and
    one already applied is not applied again."""
    data, token = mailgun.verify(settings, await request.body())
    if mailgun.TOKENS.seen(token):
        note = "already received: this signature's report was applied before"
        return ProviderReportResult(provider="mailgun", applied=False, note=note, reports=[])
    client = await get_client(request)
    result = await apply(settings.effective_database_url, client, "mailgun", mailgun.reports(data), mailgun.UNMATCHED)
    mailgun.TOKENS.remember(token)
    return result


@router.post("/mail-events/sendgrid", response_model=ProviderReportResult, responses=REFUSED)
async def report_sendgrid(request: Request, settings: SettingsDep) -> ProviderReportResult:
    """SendGrid's signed Event Webhook: a batch of events, each applied in turn."""
    key = sendgrid.public_key(settings)
    body = await request.body()
    headers = request.headers
    sendgrid.verify(key, body, headers.get(sendgrid.SIGNATURE_HEADER), headers.get(sendgrid.TIMESTAMP_HEADER))
    client = await get_client(request)
    reports = sendgrid.reports(body)
    return await apply(settings.effective_database_url, client, "sendgrid", reports, sendgrid.UNMATCHED)
