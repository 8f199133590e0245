"""Postmark's webhooks (Bounce, SpamComplaint, Delivery; Open, Click and SubscriptionChange are not acted on),
verified by the HTTP basic auth that the webhook's URL carries (`https://user:password@…/api/mail-events/postmark`):
Postmark signs nothing, so the shared secret in the URL is what it offers.

Postmark's `MessageID` is Postmark's own id, not the Message-ID we set. Our Message-ID reaches the webhook only as
metadata: a message sent through Postmark's SMTP with a header `X-PM-Metadata-message-id: <…>` comes back with
`"Metadata": {"message-id": "<…>"}`, and every email we send carries that header (`activities.email.build_message`).
`METADATA_KEYS` are the keys looked at; a report without one is answered `200` with `applied: false` and a note
(see `starter.services.mail_providers`).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from domain.settings import Settings
from starter.services.mail_providers import Event, Report, Unverified, joined, not_configured, text

PROVIDER = "Postmark"
METADATA_KEYS = ("message-id", "message_id", "Message-ID", "messageid")
HARD_BOUNCES = {"HardBounce", "BadEmailAddress"}
"""The bounce types that mean the address will never take mail; `Transient`, `SoftBounce`, `DnsError`,
`AutoResponder`, `Blocked` and the rest are retried or are not about the address."""
UNMATCHED = (
    "Postmark's MessageID is its own, and this report carries no `message-id` Metadata of ours: it was not an email "
    "this service sent through Postmark (docs/operations.md)."
)


def check_auth(settings: Settings, authorization: str | None) -> None:
    """The request's basic auth is the configured username and password, or Unverified. Both are compared in
    constant time, and both always: a wrong username must take as long as a wrong password."""
    username = settings.mail_events_postmark_username
    password = settings.mail_events_postmark_password
    if not username or password is None:
        raise not_configured(PROVIDER, "mail_events_postmark_username", "mail_events_postmark_password")
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not credentials:
        raise Unverified("Postmark reports need the basic auth of the webhook's URL (https://user:password@…).")
    try:
        given_user, _, given_password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except ValueError:  # not base64, or not UTF-8
        given_user, given_password = "", ""
    user_ok = secrets.compare_digest(given_user.encode(), username.encode())
    password_ok = secrets.compare_digest(given_password.encode(), password.get_secret_value().encode())
    if not (user_ok and password_ok):
        raise Unverified("The basic auth of this Postmark report is not the one configured here.")


def reports(body: bytes) -> list[Report]:
    """The report in a (verified) Postmark webhook body: one record, one recipient."""
    try:
        record: Any = json.loads(body)
    except ValueError:
        return [Report(provider_event="unreadable", event=None, recipient=None, message_ids=())]
    if not isinstance(record, dict):
        return [Report(provider_event="unreadable", event=None, recipient=None, message_ids=())]
    kind = text(record.get("RecordType")) or "unknown"
    bounce_type = text(record.get("Type"))
    event: Event | None = None
    recipient = text(record.get("Email"))
    if kind == "Bounce" and bounce_type in HARD_BOUNCES:
        event = "bounced"
    elif kind == "SpamComplaint" or (kind == "Bounce" and bounce_type == "SpamComplaint"):
        event = "complained"
    elif kind == "Delivery":
        event = "delivered"
        recipient = text(record.get("Recipient")) or recipient
    return [
        Report(
            provider_event=f"{kind}/{bounce_type}" if kind == "Bounce" and bounce_type else kind,
            event=event,
            recipient=recipient,
            message_ids=_message_ids(record),
            reason=joined(record.get("Description"), record.get("Details")),
        )
    ]


def _message_ids(record: dict[str, Any]) -> tuple[str, ...]:
    metadata = record.get("Metadata")
    found = []
    if isinstance(metadata, dict):
        lowered = {str(k).lower(): v for k, v in metadata.items()}
        found = [v for key in METADATA_KEYS if isinstance(v := lowered.get(key.lower()), str)]
    return tuple(found)
