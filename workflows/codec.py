"""Encryption of Temporal payloads (names, emails, the submitted form) with AES-GCM.

`ENROLL_PAYLOAD_KEY` holds one or more keys as `id:base64key` separated by commas. The first encrypts; every
key decrypts, so a key is rotated by putting a new one first and keeping the old ones until no history
that needs them is retained. Search attributes and workflow ids are not payloads and carry no personal data.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class PayloadKeyError(ValueError):
    """ENROLL_PAYLOAD_KEY is malformed; the message says how."""


def parse_keys(text: str) -> dict[str, bytes]:
    """`id:base64key,...` → {id: key}, first (current) key first; each key 16, 24 or 32 bytes."""
    keys: dict[str, bytes] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        if not sep or not key_id or not key_id.isascii() or not key_id.replace("-", "").isalnum():
            raise PayloadKeyError("each key must be written id:base64key, the id made of letters, digits and -")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise PayloadKeyError(f"key {key_id} is not valid base64") from exc
        if len(key) not in (16, 24, 32):
            raise PayloadKeyError(f"key {key_id} must be 16, 24 or 32 bytes (it is {len(key)})")
        if key_id in keys:
            raise PayloadKeyError(f"key id {key_id} appears twice")
        keys[key_id] = key
    if not keys:
        raise PayloadKeyError("no key given")
    return keys


def new_key_text(key_id: str) -> str:
    """A fresh 256-bit key in the ENROLL_PAYLOAD_KEY format."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        self.current_id = next(iter(keys))
        self.ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(12)
        sealed = self.ciphers[self.current_id].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self.current_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was switched on
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self.ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"payload was encrypted with key {key_id!r}, which ENROLL_PAYLOAD_KEY lacks")
        try:
            plain = cipher.decrypt(payload.data[:12], payload.data[12:], None)
        except InvalidTag as exc:
            raise PayloadKeyError(f"payload does not decrypt with key {key_id!r}") from exc
        return Payload.FromString(plain)
