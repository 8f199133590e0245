"""The second factor: a TOTP key per user (RFC 6238: SHA-1, 6 digits, 30 s steps) and ten recovery codes.

The key is sealed at rest (`store.sealed`); recovery codes are kept as keyed hashes. A TOTP code is accepted
once: the last accepted time step is kept, and only a later step in the ±1 window passes, by a conditional
update, so two requests racing with the same code cannot both win. Failed codes count against the user's
email like failed passwords (`store.users.count_attempt`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import SYSTEM, Actor
from store import audit, sealed
from store.db import transaction
from store.paging import now
from store.tables import RecoveryCode, User

ISSUER = "Member Account Enrollment"
RECOVERY_CODES = 10
WINDOW = 1
"""Steps either side of now that a code may come from (clocks drift, people type slowly)."""


class SecondFactorError(ValueError):
    pass


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=6, interval=30)


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def _matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step within ±WINDOW of `at` whose code is `code`, if any (latest first)."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return None
    totp = _totp(secret)
    current = totp.timecode(at)
    for step in (current + WINDOW, current, current - WINDOW):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def _normal(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _code_hash(signing_key: bytes, user_id: str, code: str) -> str:
    return hmac.new(signing_key, f"recovery:{user_id}:{_normal(code)}".encode(), hashlib.sha256).hexdigest()


def _new_codes() -> list[str]:
    return [f"{secrets.token_hex(3)[:5]}-{secrets.token_hex(3)[:5]}" for _ in range(RECOVERY_CODES)]


def has_second_factor(user: User) -> bool:
    return user.totp_secret is not None


async def setup_key(url: str, signing_key: bytes, user_id: str) -> str:
    """The key to set up (the same one on every visit until it is turned on, so a reload shows what was
    scanned). Shown on /me/second-factor only; sealed in the store."""
    async with transaction(url) as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise SecondFactorError("no such user")
        if user.totp_pending is not None:
            return sealed.unseal(signing_key, user.totp_pending, user.id)
        secret = pyotp.random_base32()
        user.totp_pending = sealed.seal(signing_key, secret, user.id)
        return secret


async def turn_on(url: str, signing_key: bytes, user_id: str, code: str, *, by: Actor = SYSTEM) -> list[str] | None:
    """Turn the second factor on with a code from the key being set up; the ten recovery codes (shown once),
    or None when the code does not match. Ends the user's other sessions (`session_epoch`)."""
    at = now()
    async with transaction(url) as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None or user.totp_pending is None:
            return None
        secret = sealed.unseal(signing_key, user.totp_pending, user.id)
        step = _matching_step(secret, code, at)
        if step is None:
            return None
        user.totp_secret = user.totp_pending
        user.totp_pending = None
        user.totp_last_step = step
        user.second_factor_at = at
        user.session_epoch += 1
        codes = await _replace_codes(session, signing_key, user.id, at)
        audit.append(session, event="second factor on", by=by, note=user.email, account_id=user.account_id)
        return codes


async def _replace_codes(session: AsyncSession, signing_key: bytes, user_id: str, at: datetime) -> list[str]:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = _new_codes()
    for code in codes:
        session.add(RecoveryCode(user_id=user_id, code_hash=_code_hash(signing_key, user_id, code), created_at=at))
    return codes


async def check_code(url: str, signing_key: bytes, user_id: str, code: str) -> str | None:
    """Accept `code` once: a TOTP code of a step later than the last one accepted ("totp"), or an unused
    recovery code ("recovery"); None otherwise. No throttling here: callers count the attempt first."""
    at = now()
    async with transaction(url) as session:
        user = await session.get(User, user_id)
        if user is None or user.totp_secret is None:
            return None
        secret = sealed.unseal(signing_key, user.totp_secret, user.id)
        step = _matching_step(secret, code, at)
        if step is not None:
            taken = await session.execute(
                update(User)
                .where(User.id == user_id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
                .values(totp_last_step=step)
            )
            return "totp" if taken.rowcount == 1 else None  # type: ignore[attr-defined]
        if len(_normal(code)) != 10:
            return None
        used = await session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == _code_hash(signing_key, user_id, code),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=at)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            return None
        audit.append(session, event="recovery code used", by=SYSTEM, note=user.email, account_id=user.account_id)
        return "recovery"


async def codes_left(url: str, user_id: str) -> int:
    async with transaction(url) as session:
        query = select(func.count()).where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        return int(await session.scalar(query) or 0)


async def regenerate_codes(url: str, signing_key: bytes, user_id: str, *, by: Actor = SYSTEM) -> list[str]:
    """Ten new recovery codes (the old ones stop working). The caller has checked a current code."""
    async with transaction(url) as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None or user.totp_secret is None:
            raise SecondFactorError("The second factor is not on.")
        user.session_epoch += 1
        codes = await _replace_codes(session, signing_key, user.id, now())
        audit.append(session, event="recovery codes renewed", by=by, note=user.email, account_id=user.account_id)
        return codes


async def reset(url: str, user_id: str, *, by: Actor = SYSTEM) -> User:
    """Take the second factor off: the user sets up a new one at the next sign-in; every session ends."""
    async with transaction(url) as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            raise SecondFactorError("no such user")
        user.totp_secret = None
        user.totp_pending = None
        user.totp_last_step = None
        user.second_factor_at = None
        user.session_epoch += 1
        await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        audit.append(session, event="second factor reset", by=by, note=user.email, account_id=user.account_id)
        return user
