"""Redaction: what no log line and no exported span may carry."""

from __future__ import annotations

import re

_TOKEN_PATH = re.compile(r"/(enroll|activate|reset)/(?!thanks\b)[A-Za-z0-9_-]+")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Free text typed into a search or a sign-in form and carried in a URL: an organization's name, an address.
_TYPED_QUERY = re.compile(r"([?&](?:q|email|organization|organization_name)=)[^&\s\"']*")


def redact(text: str) -> str:
    """`text` without link tokens (the contact's form, an administrator's activation, a password reset), email
    addresses or search text typed into a URL."""
    text = _TOKEN_PATH.sub(r"/\1/<redacted>", text)
    text = _TYPED_QUERY.sub(r"\1<redacted>", text)
    return _EMAIL.sub("<email>", text)
