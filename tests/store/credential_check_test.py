"""The check of a code against the store, on SQLite and PostgreSQL: the secret unsealed for the check alone, and
a code accepted once even when several checks race (the conditional UPDATE of the last HOTP counter and TOTP step).
And `verify_code`, the service's comparison with pyotp: HOTP's look-ahead window, TOTP's ±1 step, the digits."""

from __future__ import annotations

import asyncio
import base64
import dataclasses

import pyotp

from starter.services.credentials import HOTP_LOOK_AHEAD, verify_code
from store import credentials as store
from tests.store.credentials_test import KEYS, MAKER, accounts, entries, imported, new_batch

NOW = 1_800_000_000.0


async def material_of(url: str) -> tuple[store.CheckMaterial, store.CheckMaterial]:
    """A HOTP and a TOTP credential of a new batch, with their secrets."""
    await accounts(url)
    keys = entries(2)  # SN00000: TOTP, SN00001: HOTP
    batch = await new_batch(url)
    await imported(url, batch.id, keys)
    views, _ = await store.list_credentials(url, account_id=MAKER)
    by_serial = {v.serial: v for v in views}
    totp = await store.check_material(url, KEYS, by_serial["SN00000"].id)
    hotp = await store.check_material(url, KEYS, by_serial["SN00001"].id)
    assert totp is not None and hotp is not None
    assert (hotp.secret, totp.secret) == (keys[1].secret, keys[0].secret)
    assert str(keys[1].secret) not in repr(hotp)  # never shown
    return hotp, totp


def hotp_at(material: store.CheckMaterial, counter: int) -> str:
    return pyotp.HOTP(base64.b32encode(material.secret).decode()).at(counter)


def totp_at(material: store.CheckMaterial, step: int) -> str:
    return pyotp.TOTP(base64.b32encode(material.secret).decode()).generate_otp(step)


async def test_a_code_is_accepted_once_even_by_racing_checks(database_url: str) -> None:
    hotp, totp = await material_of(database_url)
    credential = hotp.view.id
    results = await asyncio.gather(*(store.accept_counter(database_url, credential, 3) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert not await store.accept_counter(database_url, credential, 2)  # only forward
    assert await store.accept_counter(database_url, credential, 4)
    again = await store.check_material(database_url, KEYS, credential)
    assert again is not None and again.last_counter == 4

    step = int(NOW) // 30
    results = await asyncio.gather(*(store.accept_step(database_url, totp.view.id, step) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert not await store.accept_step(database_url, totp.view.id, step - 1)
    assert await store.accept_step(database_url, totp.view.id, step + 1)
    assert await store.check_material(database_url, KEYS, "no-such-credential") is None


async def test_verify_code_looks_ahead_for_hotp_and_one_step_either_side_for_totp(database_url: str) -> None:
    hotp, totp = await material_of(database_url)
    assert verify_code(hotp, hotp_at(hotp, 0)) == ("counter", 0)
    assert verify_code(hotp, hotp_at(hotp, HOTP_LOOK_AHEAD)) == ("counter", HOTP_LOOK_AHEAD)
    assert verify_code(hotp, hotp_at(hotp, HOTP_LOOK_AHEAD + 1)) is None
    moved = dataclasses.replace(hotp, last_counter=5)
    assert verify_code(moved, hotp_at(hotp, 5)) is None  # accepted already
    assert verify_code(moved, hotp_at(hotp, 6 + HOTP_LOOK_AHEAD)) == ("counter", 6 + HOTP_LOOK_AHEAD)
    assert verify_code(hotp, hotp_at(hotp, 0)[:5]) is None  # digits other than the credential's

    step = int(NOW) // 30
    for offset in (-1, 0, 1):
        assert verify_code(totp, totp_at(totp, step + offset), at=NOW) == ("step", step + offset)
    for offset in (-2, 2):
        assert verify_code(totp, totp_at(totp, step + offset), at=NOW) is None
    used = dataclasses.replace(totp, last_step=step)
    assert verify_code(used, totp_at(totp, step), at=NOW) is None
    assert verify_code(used, totp_at(totp, step - 1), at=NOW) is None
    assert verify_code(used, totp_at(totp, step + 1), at=NOW) == ("step", step + 1)
