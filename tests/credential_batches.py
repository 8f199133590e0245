"""PSKC files made with python-pskc for the credential import's tests, and what they hold."""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field

from pskc import PSKC

from credentials.sealing import SecretsKeys

HOTP = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
PASSPHRASE = "correct horse battery staple for the batch"
PRESHARED = bytes.fromhex("12345678901234567890123456789012")


@dataclass
class Made:
    data: bytes = field(repr=False)
    secrets: dict[str, bytes] = field(repr=False)
    """serial → secret, of every key in the file (the first of a repeated serial)."""


def make_pskc(
    count: int,
    *,
    prefix: str = "SN",
    passphrase: str | None = PASSPHRASE,
    preshared_key: bytes | None = None,
    repeat: tuple[int, ...] = (),
    short: tuple[int, ...] = (),
    iterations: int = 1000,
) -> Made:
    """`count` HOTP keys (every third one TOTP) with serials `<prefix>00000000`…, encrypted with `passphrase`
    (PBKDF2) or `preshared_key`; the keys at the indexes in `repeat` take the serial of key 0, those in `short`
    an 8-byte secret."""
    pskc = PSKC()
    made: dict[str, bytes] = {}
    for index in range(count):
        serial = f"{prefix}{0 if index in repeat else index:08d}"
        secret = os.urandom(8 if index in short else 20)
        totp = index % 3 == 2
        pskc.add_key(
            serial=serial,
            secret=secret,
            algorithm=TOTP if totp else HOTP,
            response_length=6,
            manufacturer="Acme Tokens",
            **({"time_interval": 30} if totp else {"counter": 0}),
        )
        made.setdefault(serial, secret)
    if preshared_key is not None:
        pskc.encryption.setup_preshared_key(key=preshared_key)
    else:
        assert passphrase is not None
        pskc.encryption.setup_pbkdf2(passphrase, iterations=iterations)
    out = io.BytesIO()
    pskc.write(out)
    return Made(data=out.getvalue(), secrets=made)


def secrets_keys_of(*ids: str) -> SecretsKeys:
    """`ENROLL_SECRETS_KEY` of the given key ids (the first is current), each a fixed 32-byte key."""
    return SecretsKeys.parse(",".join(f"{key_id}:{keys_value(key_id)}" for key_id in ids))


def keys_value(key_id: str) -> str:
    return base64.b64encode(key_id.encode().ljust(32, b"k")[:32]).decode()


def secret_forms(secret: bytes) -> list[bytes]:
    """The ways a secret could show in a payload or a log: raw, hex (both cases), base64, base32."""
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode(), base64.b64encode(secret)]
    forms.append(base64.urlsafe_b64encode(secret).rstrip(b"="))
    forms.append(base64.b32encode(secret).rstrip(b"="))
    return forms
