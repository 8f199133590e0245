"""Amazon SES notifications as Amazon SNS posts them, verified as AWS documents ("Verifying the signatures of
Amazon SNS messages"): the `Signature` is RSA (PKCS#1 v1.5) over the message's canonical string — SHA1 for
`SignatureVersion` 1, SHA256 for 2 — with the public key of the certificate at `SigningCertURL`.

That URL comes in the (not yet verified) message, so it is trusted only when it is `https` on an SNS host
(`sns.<region>.amazonaws.com`, or `.amazonaws.com.cn`), checked before anything is fetched; the TLS of that fetch is
what ties the certificate to AWS. Certificates are cached by URL (AWS rotates them rarely). The fetch goes through
`fetcher`, an `SnsFetcher`: production's does an HTTPS GET (no redirects, a bounded answer); a test puts in one that
serves the certificate it made, while the URL checks still run in front of it.

Only topics in ENROLL_MAIL_EVENTS_SES_TOPIC_ARNS are accepted: anyone can point an SNS topic of their own, signed
by AWS, at this URL. A `SubscriptionConfirmation` for an accepted topic, once verified, is confirmed by fetching its
`SubscribeURL` (checked like the certificate's); an `UnsubscribeConfirmation` is only acknowledged.

Both SES shapes are read: identity notifications (`notificationType`) and configuration-set event publishing
(`eventType`). `Bounce` with `bounceType: Permanent` → bounced (`Transient` and `Undetermined` are not acted on:
SES retries the first, the second is not about the address); `Complaint` → complained; `Delivery` → delivered; one
report per recipient. The rest (`Send`, `Open`, `Click`, `DeliveryDelay`, …) are not acted on.

SES replaces the Message-ID header we set with its own, but keeps the original headers in the notification's
`mail.headers` when "Include original headers" is on (identity notifications; event publishing has them): that is
where our Message-ID is read, then `mail.commonHeaders.messageId`.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from domain.settings import Settings
from starter.services.errors import Unavailable
from starter.services.mail_providers import Event, Report, Unverified, joined, not_configured, text

PROVIDER = "SES"
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]{3,}\.amazonaws\.com(\.cn)?$")
"""The hosts SNS serves its signing certificates and subscription confirmations from (as the AWS SDKs check)."""
MAX_CERTIFICATE = 64 * 1024
MAX_CERTIFICATES = 32
FETCH_TIMEOUT = 10.0
TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
UNMATCHED = (
    "SES replaces our Message-ID with its own: turn on 'Include original headers' in the identity's notification "
    "settings (or publish events through a configuration set), so the notification carries ours in mail.headers."
)


class SnsFetcher(Protocol):
    """Fetches an SNS URL (a signing certificate, a subscription confirmation) that has passed `check_sns_url`."""

    async def get(self, url: str) -> bytes: ...


class HttpSnsFetcher:
    """Production's fetcher: an HTTPS GET that follows no redirect and reads at most MAX_CERTIFICATE bytes. A
    failure is Unavailable (`503`): SNS retries, and the next attempt fetches again."""

    async def get(self, url: str) -> bytes:
        try:
            async with (
                httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise Unavailable(f"SNS answered {response.status_code} to {_shown(url)}; try again later.")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_CERTIFICATE:
                        raise Unavailable(f"SNS's answer to {_shown(url)} is too large.")
                return body
        except httpx.HTTPError as failed:
            raise Unavailable(f"SNS could not be reached at {_shown(url)} ({type(failed).__name__}).") from failed


fetcher: SnsFetcher = HttpSnsFetcher()
"""The fetcher the route uses; tests replace it (the URL checks stay in front of it)."""
_certificates: dict[str, x509.Certificate] = {}


def _shown(url: str) -> str:
    """A URL without its query (a SubscribeURL's token) for an error answer or a log line."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{parts.path}"


def check_sns_url(url: object, what: str) -> str:
    """`url` when it is `https` on an SNS host, with no user or port of its own; else Unverified."""
    if not isinstance(url, str):
        raise Unverified(f"The SNS message has no {what}.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Unverified(f"The SNS message's {what} is not a URL.") from None
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not SNS_HOST.match(host) or parts.username or port not in (None, 443):
        raise Unverified(
            f"The SNS message's {what} is not an https URL on an Amazon SNS host (sns.<region>.amazonaws.com)."
        )
    return url


def topics(settings: Settings) -> set[str]:
    return {arn.strip() for arn in settings.mail_events_ses_topic_arns.split(",") if arn.strip()}


def canonical(message: dict[str, Any]) -> bytes:
    """The string SNS signs: `name\\nvalue\\n` for each signed field the message has, in AWS's order."""
    fields = NOTIFICATION_FIELDS if message.get("Type") == "Notification" else CONFIRMATION_FIELDS
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue  # a notification without a subject signs without the line
            raise Unverified(f"The SNS message has no {name}.")
        if not isinstance(value, str):
            raise Unverified(f"The SNS message's {name} is not text.")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


async def certificate(url: object, using: SnsFetcher) -> x509.Certificate:
    """The signing certificate at `url` (checked first), from the cache or fetched."""
    checked = check_sns_url(url, "SigningCertURL")
    cached = _certificates.get(checked)
    if cached is not None:
        return cached
    pem = await using.get(checked)
    try:
        loaded = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise Unverified(f"{_shown(checked)} is not a PEM certificate.") from None
    if len(_certificates) >= MAX_CERTIFICATES:
        _certificates.clear()
    _certificates[checked] = loaded
    return loaded


async def verify(settings: Settings, body: bytes, using: SnsFetcher | None = None) -> dict[str, Any]:
    """The SNS message once it is from an accepted topic and its signature verifies, or Unverified."""
    accepted = topics(settings)
    if not accepted:
        raise not_configured(PROVIDER, "mail_events_ses_topic_arns")
    try:
        message: Any = json.loads(body)
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("Type") not in TYPES:
        raise Unverified("An SES report must be an Amazon SNS message (turn raw message delivery off).")
    topic = message.get("TopicArn")
    if not isinstance(topic, str) or topic not in accepted:
        raise Unverified("This SNS topic is not accepted here: add its ARN to ENROLL_MAIL_EVENTS_SES_TOPIC_ARNS.")
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Unverified("The SNS message's SignatureVersion is neither 1 nor 2.")
    signed = canonical(message)
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except ValueError:
        raise Unverified("The SNS message's Signature is not base64.") from None
    cert = await certificate(message.get("SigningCertURL"), using or fetcher)
    now = datetime.now(UTC)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise Unverified("The SNS signing certificate is not a current RSA certificate.")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Unverified("The signature of this SNS message does not verify with its signing certificate.") from None
    return message


async def confirm(message: dict[str, Any], using: SnsFetcher | None = None) -> None:
    """Confirm a verified subscription by visiting its SubscribeURL (an SNS host's, checked first)."""
    url = check_sns_url(message.get("SubscribeURL"), "SubscribeURL")
    await (using or fetcher).get(url)


def reports(message: dict[str, Any]) -> list[Report]:
    """The reports in a verified Notification: its `Message` is the SES notification, one report per recipient."""
    try:
        notification: Any = json.loads(str(message.get("Message", "")))
    except ValueError:
        notification = None
    if not isinstance(notification, dict):
        return [Report(provider_event="not an SES notification", event=None, recipient=None, message_ids=())]
    kind = text(notification.get("notificationType")) or text(notification.get("eventType")) or "unknown"
    ids = _message_ids(notification.get("mail"))
    if kind == "Bounce":
        bounce = _object(notification.get("bounce"))
        bounce_type = text(bounce.get("bounceType")) or "unknown"
        event: Event | None = "bounced" if bounce_type == "Permanent" else None
        return [
            Report(
                provider_event=f"Bounce/{bounce_type}",
                event=event,
                recipient=text(each.get("emailAddress")),
                message_ids=ids,
                reason=joined(each.get("diagnosticCode") or each.get("status")) or text(bounce.get("bounceSubType")),
            )
            for each in _objects(bounce.get("bouncedRecipients"))
        ]
    if kind == "Complaint":
        complaint = _object(notification.get("complaint"))
        reason = joined("complaint:", complaint.get("complaintFeedbackType"))
        return [
            Report(kind, "complained", text(each.get("emailAddress")), ids, reason)
            for each in _objects(complaint.get("complainedRecipients"))
        ]
    if kind == "Delivery":
        delivery = _object(notification.get("delivery"))
        recipients = delivery.get("recipients")
        return [
            Report(kind, "delivered", address, ids, text(delivery.get("smtpResponse")))
            for address in (recipients if isinstance(recipients, list) else [])
            if isinstance(address, str)
        ]
    return [Report(provider_event=kind, event=None, recipient=None, message_ids=ids)]


def _message_ids(mail: object) -> tuple[str, ...]:
    """Our Message-ID as the notification may carry it: the original header first, then the common headers'."""
    found: list[str] = []
    mail = _object(mail)
    for header in _objects(mail.get("headers")):
        if str(header.get("name", "")).lower() == "message-id" and isinstance(header.get("value"), str):
            found.append(header["value"])
    common = text(_object(mail.get("commonHeaders")).get("messageId"))
    if common:
        found.append(common)
    return tuple(found)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: object) -> list[dict[str, Any]]:
    return [each for each in value if isinstance(each, dict)] if isinstance(value, list) else []
