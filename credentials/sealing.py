"""Token secrets at rest: sealed with AES-256-GCM under `ENROLL_SECRETS_KEY`, a key id in every sealed blob so
the key can be rotated.

`ENROLL_SECRETS_KEY` is written `id:base64key[,id:base64key…]` (the format of `ENROLL_PAYLOAD_KEY`): each key
32 random bytes in standard base64, each id 1–32 letters, digits or `-`. The first key seals; every key unseals.
To rotate, put a new key first and keep the old ones until everything is resealed under the new one
(`reseal`). `new_key_text("k1")` makes one.

A blob is `version (1 byte) | id length (1 byte) | id | nonce (12 bytes) | ciphertext + tag`. The caller's
associated data (the credential's identity: a sealed secret moved to another row does not open) and the header
are both authenticated.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = 1
_NONCE_BYTES = 12
_KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9-]{1,32}$")
SETTING = "ENROLL_SECRETS_KEY"


class SecretsKeyError(ValueError):
    """ENROLL_SECRETS_KEY is malformed; the message says how, and never quotes a key."""


class UnsealError(ValueError):
    """A sealed blob does not open: unknown key id, another key or associated data, or not a blob at all."""


@dataclass(frozen=True)
class SecretsKeys:
    current_id: str
    """The id of the key new seals use (the first in ENROLL_SECRETS_KEY)."""
    keys: Mapping[str, bytes] = field(repr=False)
    """Key id → 32-byte AES key; every one unseals."""

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise SecretsKeyError(f"{SETTING}: the current key id {self.current_id} has no key")
        for key_id, key in self.keys.items():
            if not _KEY_ID.match(key_id):
                raise SecretsKeyError(f"{SETTING}: a key id must be 1 to 32 letters, digits or -")
            if len(key) != _KEY_BYTES:
                raise SecretsKeyError(f"{SETTING}: key {key_id} must be {_KEY_BYTES} bytes (it is {len(key)})")

    @classmethod
    def parse(cls, text: str) -> SecretsKeys:
        """`k2:<base64>,k1:<base64>` → the keys, the first current. A SecretsKeyError names what is wrong."""
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key_id, sep, encoded = part.partition(":")
            key_id = key_id.strip()
            if not sep or not _KEY_ID.match(key_id):
                raise SecretsKeyError(
                    f"{SETTING}: each key must be written id:base64key, the id 1 to 32 letters, digits or -"
                )
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise SecretsKeyError(f"{SETTING}: key {key_id} is not valid base64") from None
            if len(key) != _KEY_BYTES:
                raise SecretsKeyError(
                    f"{SETTING}: key {key_id} must be {_KEY_BYTES} bytes (256 bits) of base64; it is {len(key)}. "
                    f"Make one with: python -c 'from credentials.sealing import new_key_text; print(new_key_text())'"
                )
            if key_id in keys:
                raise SecretsKeyError(f"{SETTING}: key id {key_id} appears twice")
            keys[key_id] = key
        if not keys:
            raise SecretsKeyError(f"{SETTING}: no key given")
        return cls(current_id=next(iter(keys)), keys=keys)


def new_key_text(key_id: str = "k1") -> str:
    """A fresh key in the ENROLL_SECRETS_KEY format."""
    if not _KEY_ID.match(key_id):
        raise ValueError("a key id is 1 to 32 letters, digits or -")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((_VERSION, len(encoded))) + encoded


def seal(keys: SecretsKeys, plaintext: bytes, *, aad: bytes) -> bytes:
    """The plaintext sealed under the current key, bound to `aad` (which is not stored)."""
    header = _header(keys.current_id)
    nonce = os.urandom(_NONCE_BYTES)
    return header + nonce + AESGCM(keys.keys[keys.current_id]).encrypt(nonce, plaintext, header + aad)


def _split(blob: bytes) -> tuple[bytes, str, bytes, memoryview]:
    if len(blob) < 2 or blob[0] != _VERSION:
        raise UnsealError("not a sealed secret (unknown format version)")
    end = 2 + blob[1]
    if blob[1] == 0 or len(blob) < end + _NONCE_BYTES + 16:
        raise UnsealError("not a sealed secret (too short)")
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise UnsealError("not a sealed secret (bad key id)") from None
    # The ciphertext as a view, not a copy: a sealed 50 MB file is not held twice while it is opened.
    return blob[:end], key_id, blob[end : end + _NONCE_BYTES], memoryview(blob)[end + _NONCE_BYTES :]


def key_id_of(blob: bytes) -> str:
    """The id of the key a blob was sealed under (for rotation: which rows still need resealing)."""
    return _split(blob)[1]


def unseal(keys: SecretsKeys, blob: bytes, *, aad: bytes) -> bytes:
    """The plaintext; an UnsealError when the blob's key is not among `keys`, or the key or `aad` is not the
    one it was sealed with."""
    header, key_id, nonce, sealed = _split(blob)
    key = keys.keys.get(key_id)
    if key is None:
        raise UnsealError(f"sealed under key {key_id}, which {SETTING} no longer holds")
    try:
        return AESGCM(key).decrypt(nonce, sealed, header + aad)
    except InvalidTag:
        raise UnsealError(f"does not open with key {key_id} and this associated data") from None


def reseal(keys: SecretsKeys, blob: bytes, *, aad: bytes) -> bytes:
    """The blob under the current key: unchanged when it already is, else unsealed and sealed again."""
    if key_id_of(blob) == keys.current_id:
        return blob
    return seal(keys, unseal(keys, blob, aad=aad), aad=aad)
