"""Secrets kept at rest (TOTP keys): sealed with AES-GCM under a key derived from `ENROLL_SECRET_KEY`.

The store holds `v1.<nonce>.<ciphertext>` (URL-safe base64), so a copy of the database alone does not give
anyone a user's second factor. The user id is the associated data: a sealed key moved to another user's row
does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"


def _key(signing_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"enroll:sealed-secrets:v1").derive(signing_key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(signing_key: bytes, secret: str, owner: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(signing_key)).encrypt(nonce, secret.encode(), owner.encode())
    return f"{_VERSION}.{_b64(nonce)}.{_b64(sealed)}"


def unseal(signing_key: bytes, stored: str, owner: str) -> str:
    """The secret; raises ValueError when it was sealed under another key or for another owner."""
    version, nonce, sealed = stored.split(".")
    if version != _VERSION:
        raise ValueError(f"unknown sealing version {version!r}")
    try:
        return AESGCM(_key(signing_key)).decrypt(_unb64(nonce), _unb64(sealed), owner.encode()).decode()
    except InvalidTag as exc:
        raise ValueError("the sealed secret does not open with this key") from exc
