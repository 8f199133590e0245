"""The delivery schedule and the signing, as pure functions: the retries of Standard Webhooks' schedule, and
signatures the reference library verifies under each secret that signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from domain.webhooks import MAX_ATTEMPTS, next_attempt_delay
from webhooks.signing import new_secret, signed_headers


def test_retries_come_at_5s_5m_30m_2h_5h_10h_10h_then_stop() -> None:
    delays = [next_attempt_delay(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert delays == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
        None,
    ]
    assert MAX_ATTEMPTS == 8
    assert next_attempt_delay(0) is None


def test_every_secret_that_signs_verifies_and_no_other() -> None:
    current, previous, stranger = new_secret(), new_secret(), new_secret()
    assert current.startswith("whsec_") and current != previous
    body = b'{"id":"evt_1","type":"enrollment.created"}'
    headers = signed_headers("msg_1", datetime.now(UTC), body, [current, previous])
    assert headers["webhook-id"] == "msg_1" and len(headers["webhook-signature"].split(" ")) == 2
    for secret in (current, previous):
        assert Webhook(secret).verify(body, headers) == {"id": "evt_1", "type": "enrollment.created"}
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(current).verify(body + b" ", headers)
