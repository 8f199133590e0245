"""Mailgun's webhooks (the JSON form, `{"signature": {timestamp, token, signature}, "event-data": {…}}`), verified
by Mailgun's signature: the hex HMAC-SHA256 of `timestamp + token` with the HTTP webhook signing key.

A signature proves Mailgun made the request, not when: a captured request could be replayed. So a timestamp more
than `MAX_AGE` from now is refused (`401`), and a token already applied within that window is not applied again
(`Tokens`, per API process). The replay answers `200` with `applied: false` rather than `401`: Mailgun retries a
request whose answer it lost with the same signature, and a `401` would have it retry for hours. (A replay to
another process finds a report that is idempotent, so it changes nothing either.) A token is remembered only once
its report has been applied, so Mailgun's retry after our `503` is applied when it comes.

`event-data.message.headers.message-id` is the Message-ID we set (Mailgun keeps a sender's own), so reports match
without any configuration. Acted on: `failed` with `severity: permanent` (→ bounced), `complained`, `delivered`;
`failed`/`temporary` (Mailgun retries), `accepted`, `opened`, `clicked`, `unsubscribed` and the rest are not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from domain.settings import Settings
from starter.services.mail_providers import Event, Report, Unverified, joined, not_configured, text

PROVIDER = "Mailgun"
MAX_AGE = 15 * 60
"""Seconds a signed request stays acceptable (either way, for clocks that disagree)."""
UNMATCHED = "Mailgun reports carry the Message-ID we set; this one is not an email this service sent (or was pruned)."


class Tokens:
    """The tokens of signatures applied within MAX_AGE: a second request with one is a replay. Bounded by the
    window: older tokens are dropped as new ones come (a token older than MAX_AGE is refused by its timestamp)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def seen(self, token: str) -> bool:
        return token in self._seen

    def remember(self, token: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if len(self._seen) >= 1000:
            self._seen = {t: at for t, at in self._seen.items() if now - at <= MAX_AGE}
        self._seen[token] = now


TOKENS = Tokens()


def verify(settings: Settings, body: bytes, now: float | None = None) -> tuple[dict[str, Any], str]:
    """The webhook's `event-data` and its signature's token once the signature verifies, or Unverified."""
    key = settings.mail_events_mailgun_signing_key
    if key is None:
        raise not_configured(PROVIDER, "mail_events_mailgun_signing_key")
    try:
        document: Any = json.loads(body)
    except ValueError:
        document = None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(signature, dict):
        raise Unverified("A Mailgun report must carry Mailgun's `signature` (the JSON webhook form).")
    timestamp, token, given = (str(signature.get(k, "")) for k in ("timestamp", "token", "signature"))
    expected = hmac.new(key.get_secret_value().encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not (timestamp and token and hmac.compare_digest(expected.encode(), given.lower().encode())):
        raise Unverified("The signature of this Mailgun report does not verify with the signing key configured here.")
    now = time.time() if now is None else now
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > MAX_AGE:
        raise Unverified(f"This Mailgun report was signed more than {MAX_AGE // 60} minutes ago (or ahead).")
    data = document.get("event-data")
    return (data if isinstance(data, dict) else {}), token


def reports(data: dict[str, Any]) -> list[Report]:
    """The report in a verified webhook's `event-data`: one event, one recipient."""
    kind = text(data.get("event")) or "unknown"
    severity = text(data.get("severity"))
    event: Event | None = None
    if kind == "failed" and severity == "permanent":
        event = "bounced"
    elif kind == "complained":
        event = "complained"
    elif kind == "delivered":
        event = "delivered"
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    message_id = text(headers.get("message-id")) if isinstance(headers, dict) else None
    status = data.get("delivery-status")
    reason = None
    if isinstance(status, dict):
        reason = joined(status.get("code"), status.get("description") or status.get("message"))
    return [
        Report(
            provider_event=f"{kind}/{severity}" if severity else kind,
            event=event,
            recipient=text(data.get("recipient")),
            message_ids=(message_id,) if message_id else (),
            reason=reason or text(data.get("reason")),
        )
    ]
