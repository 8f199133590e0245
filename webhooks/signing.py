"""Standard Webhooks signing (https://www.standardwebhooks.com), with the reference library `standardwebhooks`.

Every attempt carries `webhook-id` (the delivery's id, the same over its retries and replays), `webhook-timestamp`
(the attempt's time, in seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under
each secret that signs now, separated by spaces. After a rotation both the new secret and the previous one sign for
24 hours, so a receiver that still has the previous one keeps verifying while it switches.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and 32 random bytes in base64, as Standard Webhooks spells them."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(msg_id: str, at: datetime, body: bytes, signing_secrets: Sequence[str]) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed under every secret in `signing_secrets`."""
    if not signing_secrets:
        raise ValueError("a webhook needs at least one secret to sign it")
    signatures = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in signing_secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
