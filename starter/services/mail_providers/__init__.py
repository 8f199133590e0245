"""The mail providers' own webhooks (`POST /api/mail-events/{ses,postmark,mailgun,sendgrid}`): each verified the
provider's own way, translated into the generic report (`starter.services.mail_events.MailEvent`), and applied
through the same `mail_events.report` as `POST /api/mail-events`, so a provider's bounce has exactly the effect an
operator's relay would have.

What differs from the generic endpoint is who is on the other end. An operator's relay can act on a `404` (a
report about an email we never sent) or a `422` (a recipient it was not sent to); a provider cannot, and treats any
answer but 2xx as "try again", for hours or days. So a verified report that matches nothing here — an email sent by
another application on the same account, one pruned from the outbox, a provider id we cannot map to our
Message-ID — answers `200` with `applied: false` and a note saying why, and is logged. Only two answers ask the
provider to come back: `401` (the signature did not verify, or the provider is not configured: nothing was looked
at, nothing changed) and `503` (Temporal is out of reach: the report is delivered when the provider retries, as on
the generic endpoint).

Event kinds we do not act on (opens, clicks, deferrals, soft and transient bounces, sends) answer `200` and change
nothing: only a permanent bounce counts as `bounced`, since a transient one is retried by the provider on its own
and usually delivers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from starter.services import mail_events
from starter.services.errors import InvalidInput, NotFound, ServiceError, Unavailable
from starter.services.mail_events import MailEvent, MailEventResult

log = logging.getLogger(__name__)

Event = Literal["bounced", "complained", "delivered"]
MAX_REASON = 1000
"""What `MailEvent.reason` takes; a provider's diagnostic is cut to it rather than refused."""


class Unverified(ServiceError):
    """The request does not carry the provider's valid signature (or the provider is not configured here): `401`,
    and nothing in it was acted on."""

    status = 401


def not_configured(provider: str, *settings: str) -> Unverified:
    """The refusal of a provider whose verification secret is unset: which settings to set, never their values."""
    names = " and ".join(f"ENROLL_{name.upper()}" for name in settings)
    return Unverified(f"{provider} reports are not accepted: {provider} is not configured: set {names}.")


@dataclass(frozen=True)
class Report:
    """One recipient's report as a provider carries it. `event` is None for a kind we do not act on (an open, a
    transient bounce); `message_ids` are the ids the provider gives that may be the Message-ID we set, best first."""

    provider_event: str
    event: Event | None
    recipient: str | None
    message_ids: tuple[str, ...]
    reason: str | None = None


class ProviderReportOutcome(BaseModel):
    event: str
    """The provider's own name for the event (`Bounce`, `HardBounce`, `failed`, `bounce`, …)."""
    recipient: str | None
    applied: bool
    """Whether the enrollment, account or administrator took note (False for a retry, an ended one, or no match)."""
    note: str | None = None
    """Why nothing was applied, when that is not a retried report: not acted on, or not matched."""
    report: MailEventResult | None = None
    """What the generic report answered, when the email was found."""


class ProviderReportResult(BaseModel):
    provider: str
    applied: bool
    """Whether any report in the request was applied."""
    note: str | None = None
    reports: list[ProviderReportOutcome]


async def apply(url: str, client: Client, provider: str, reports: list[Report], unmatched: str) -> ProviderReportResult:
    """Apply each report as `POST /api/mail-events` would, in order; `unmatched` says how to configure the provider
    so that its reports carry our Message-ID (the note of a report that matches no email of ours).

    Unavailable (Temporal down) is raised: the provider retries, and reports already applied are idempotent."""
    outcomes = [await _apply_one(url, client, provider, each, unmatched) for each in reports]
    return ProviderReportResult(provider=provider, applied=any(o.applied for o in outcomes), reports=outcomes)


async def _apply_one(url: str, client: Client, provider: str, report: Report, unmatched: str) -> ProviderReportOutcome:
    outcome = ProviderReportOutcome(event=report.provider_event, recipient=report.recipient, applied=False)
    if report.event is None:
        return outcome.model_copy(update={"note": "not acted on: only permanent bounces, complaints and deliveries"})
    if not report.recipient:
        return outcome.model_copy(update={"note": "the report names no recipient"})
    refusal = "no email sent by this service has this Message-ID"
    for message_id in dict.fromkeys(m.strip() for m in report.message_ids if m and m.strip()):
        try:
            body = MailEvent(
                message_id=message_id, event=report.event, recipient=report.recipient, reason=_reason(report.reason)
            )
        except ValidationError:
            continue  # not a Message-ID of ours (too long, too short): try the next
        try:
            result = await mail_events.report(url, client, body)
        except NotFound:
            continue
        except InvalidInput as refused:
            refusal = refused.message  # found, but not sent to this recipient: say so
            break
        except Unavailable:
            raise
        except ServiceError as refused:
            # A refusal no retry can change: a provider would repeat the report forever.
            refusal = refused.message
            break
        return outcome.model_copy(update={"applied": result.applied, "report": result})
    note = f"not matched: {refusal}. {unmatched}"
    log.info("%s %s report not matched: %s", provider, report.provider_event, refusal)
    return outcome.model_copy(update={"note": note})


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    return reason.strip()[:MAX_REASON]


def text(value: object) -> str | None:
    """A provider's field as text, or None (a number or a missing field where text was expected)."""
    return value if isinstance(value, str) else None


def joined(*parts: object) -> str | None:
    """A reason from the provider's fields that are present (`550`, `5.1.1`, `mailbox unknown` → one line)."""
    found = [str(p).strip() for p in parts if isinstance(p, str | int) and not isinstance(p, bool) and str(p).strip()]
    return " ".join(found) or None
