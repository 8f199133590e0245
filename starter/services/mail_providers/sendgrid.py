"""SendGrid's signed Event Webhook, verified as SendGrid signs it: an ECDSA P-256 / SHA-256 signature (base64 DER,
header `X-Twilio-Email-Event-Webhook-Signature`) over the timestamp header
(`X-Twilio-Email-Event-Webhook-Timestamp`) followed by the raw body, with the verification key SendGrid shows
(base64 DER SubjectPublicKeyInfo) in ENROLL_MAIL_EVENTS_SENDGRID_PUBLIC_KEY.

This is what the official `sendgrid` package's `EventWebhook.verify_signature` does (it, too, calls
`cryptography`); it is done here directly because that package is untyped and would bring the SendGrid API client,
`python-http-client` and `werkzeug` for these few lines. The test checks SendGrid's own published example.

The timestamp's age is not checked: SendGrid retries a batch for up to 24 hours and does not say it signs a retry
anew, and every report is idempotent, so a replay changes nothing.

One request carries a batch of events, each for one recipient. `smtp-id` is the Message-ID header the message was
sent with (ours). Acted on: `bounce` of type `bounce` (→ bounced; type `blocked` is a temporary refusal SendGrid
retries), `dropped` (→ bounced: SendGrid never sends to an address it has suppressed — an earlier bounce, an invalid
address, a spam report — so the contact never gets the link, as with a bounce), `spamreport` (→ complained) and
`delivered`. `processed`, `deferred`, `open`, `click` and the (un)subscribe events are not.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from domain.settings import Settings
from starter.services.mail_providers import Event, Report, Unverified, joined, not_configured, text

PROVIDER = "SendGrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
UNMATCHED = "SendGrid reports carry the Message-ID we set (smtp-id); this one is not an email this service sent."


def public_key(settings: Settings) -> ec.EllipticCurvePublicKey:
    """The configured verification key: base64 DER as SendGrid shows it (a PEM block is taken too)."""
    configured = (settings.mail_events_sendgrid_public_key or "").strip()
    if not configured:
        raise not_configured(PROVIDER, "mail_events_sendgrid_public_key")
    try:
        if configured.startswith("-----BEGIN"):
            key = load_pem_public_key(configured.encode())
        else:
            key = load_der_public_key(base64.b64decode(configured, validate=True))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise Unverified(
            "SendGrid reports are not accepted: ENROLL_MAIL_EVENTS_SENDGRID_PUBLIC_KEY is not an ECDSA P-256 public "
            "key: copy the verification key SendGrid shows under Mail Settings, Signed Event Webhook."
        )
    return key


def verify(key: ec.EllipticCurvePublicKey, body: bytes, signature: str | None, timestamp: str | None) -> None:
    """The body and timestamp carry SendGrid's signature, or Unverified."""
    if not signature or not timestamp:
        raise Unverified(f"A SendGrid report must be signed: the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers.")
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as refused:
        raise Unverified("The signature of this SendGrid report does not verify with the key configured here.") from (
            refused
        )


def reports(body: bytes) -> list[Report]:
    """The reports in a verified batch, one per event."""
    try:
        batch: Any = json.loads(body)
    except ValueError:
        batch = None
    if not isinstance(batch, list):
        return [Report(provider_event="unreadable", event=None, recipient=None, message_ids=())]
    return [_report(each) if isinstance(each, dict) else _unreadable() for each in batch]


def _report(item: dict[str, Any]) -> Report:
    kind = text(item.get("event")) or "unknown"
    bounce_type = text(item.get("type"))
    event: Event | None = None
    if (kind == "bounce" and bounce_type in (None, "bounce")) or kind == "dropped":
        event = "bounced"
    elif kind == "spamreport":
        event = "complained"
    elif kind == "delivered":
        event = "delivered"
    message_id = text(item.get("smtp-id"))
    return Report(
        provider_event=f"{kind}/{bounce_type}" if kind == "bounce" and bounce_type else kind,
        event=event,
        recipient=text(item.get("email")),
        message_ids=(message_id,) if message_id else (),
        reason=joined(item.get("status"), item.get("reason") or item.get("response")),
    )


def _unreadable() -> Report:
    return Report(provider_event="unreadable", event=None, recipient=None, message_ids=())
