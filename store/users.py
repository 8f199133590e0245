"""Users and their API tokens. Passwords are Argon2 hashes; tokens are stored only as SHA-256 hashes.

Every change (user added, disabled, enabled; token created, revoked) goes into the audit trail in the same
transaction, with who made it (`by`).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import SYSTEM, Actor, Role
from store import audit
from store.db import transaction
from store.enrollments import now
from store.tables import ApiToken, SignInThrottle, User

_hasher = PasswordHasher()
TOKEN_PREFIX = "enr_"  # noqa: S105 - a prefix that marks our tokens, not a secret
ACCOUNT_ROLES = frozenset({Role.reseller, Role.customer})
FAILURES_PER_EMAIL = 5
FAILURES_PER_ADDRESS = 20  # higher: an office behind one NAT address shares it
FAILURE_WINDOW = timedelta(minutes=15)
LOCKED_FOR = timedelta(minutes=15)


class UserError(ValueError):
    pass


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_user(
    url: str, *, email: str, role: Role, password: str, account_id: str | None = None, by: Actor = SYSTEM
) -> User:
    if role in ACCOUNT_ROLES and not account_id:
        raise UserError(f"role {role.value} needs --account: the member account the user belongs to")
    if role not in ACCOUNT_ROLES and account_id:
        raise UserError(f"role {role.value} is not bound to a member account; drop --account")
    if len(password) < 12:
        raise UserError("password must be at least 12 characters")
    user = User(
        id=secrets.token_hex(8),
        email=email.strip().lower(),
        role=role.value,
        account_id=account_id,
        password_hash=_hasher.hash(password),
        disabled=False,
        created_at=now(),
    )
    try:
        async with transaction(url) as session:
            session.add(user)
            account = f", member account {account_id}" if account_id else ""
            audit.append(session, event="user added", by=by, note=f"{user.email}: role {role.value}{account}")
    except IntegrityError as exc:
        raise UserError(f"a user with the email {user.email} already exists") from exc
    return user


async def user_by_email(url: str, email: str) -> User | None:
    async with transaction(url) as session:
        return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def user_by_id(url: str, user_id: str) -> User | None:
    async with transaction(url) as session:
        return await session.get(User, user_id)


async def count_users(url: str) -> int:
    async with transaction(url) as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def check_password(url: str, email: str, password: str) -> User | None:
    user = await user_by_email(url, email)
    if user is None or user.disabled:
        _hasher.hash(password)  # the same work either way, so timing does not tell who exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


async def sign_in(url: str, email: str, password: str, *, source: str | None) -> User | None:
    """The user these credentials are for, or None: for wrong ones, and for any attempt while the email or the
    source address is locked (after FAILURES_PER_EMAIL or FAILURES_PER_ADDRESS failures within FAILURE_WINDOW,
    for LOCKED_FOR). Every None is answered alike, so a refusal tells neither whether the email exists nor
    whether the password was right."""
    keys = _throttle_keys(email, source)
    at = now()
    async with transaction(url) as session:
        locked = await session.scalar(
            select(func.count())
            .select_from(SignInThrottle)
            .where(SignInThrottle.key.in_([key for key, _ in keys]), SignInThrottle.locked_until > at)
        )
    if locked:
        return None
    user = await check_password(url, email, password)
    async with transaction(url) as session:
        if user is not None:
            await session.execute(delete(SignInThrottle).where(SignInThrottle.key == keys[0][0]))
        else:
            await _count_failures(session, keys, at)
    return user


def _throttle_keys(email: str, source: str | None) -> list[tuple[str, int]]:
    """(key, failures allowed) of the email and of the source address; hashed, so what someone typed into
    the email field (a password, by mistake) is not kept."""
    keys = [(hashlib.sha256(f"email:{email.strip().lower()}".encode()).hexdigest(), FAILURES_PER_EMAIL)]
    if source:
        keys.append((hashlib.sha256(f"address:{source}".encode()).hexdigest(), FAILURES_PER_ADDRESS))
    return keys


async def _count_failures(session: AsyncSession, keys: list[tuple[str, int]], at: datetime) -> None:
    stale = and_(
        SignInThrottle.window_started_at < at - FAILURE_WINDOW,
        or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until < at),
    )
    await session.execute(delete(SignInThrottle).where(stale))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for key, allowed in keys:
        # Insert-if-missing, then count under a row lock: concurrent failures are all counted.
        row = {"key": key, "failures": 0, "window_started_at": at, "locked_until": None}
        await session.execute(insert(SignInThrottle).values(row).on_conflict_do_nothing(index_elements=["key"]))
        throttle = await session.get(SignInThrottle, key, with_for_update=True, populate_existing=True)
        assert throttle is not None
        if throttle.window_started_at < at - FAILURE_WINDOW:
            throttle.failures, throttle.window_started_at = 0, at
        throttle.failures += 1
        if throttle.failures >= allowed:
            throttle.failures, throttle.window_started_at, throttle.locked_until = 0, at, at + LOCKED_FOR


async def create_token(url: str, email: str, *, expires_at: datetime | None = None, by: Actor = SYSTEM) -> str:
    """A new bearer token for the user; only its hash is kept, so this is the one time it is seen."""
    user = await user_by_email(url, email)
    if user is None:
        raise UserError(f"no user with the email {email}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(6)
    async with transaction(url) as session:
        session.add(
            ApiToken(
                id=token_id,
                user_id=user.id,
                token_hash=_token_hash(token),
                created_at=now(),
                expires_at=expires_at,
            )
        )
        until = f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        audit.append(session, event="token created", by=by, note=f"token {token_id} of {user.email}{until}")
    return token


async def user_for_token(url: str, token: str) -> User | None:
    """The enabled user a live token belongs to, else None."""
    async with transaction(url) as session:
        row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
        if row is None or row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= now():
            return None
        user = await session.get(User, row.user_id)
        if user is None or user.disabled:
            return None
        return user


async def list_users(url: str) -> list[User]:
    async with transaction(url) as session:
        return list(await session.scalars(select(User).order_by(User.email)))


async def set_disabled(url: str, email: str, disabled: bool, *, by: Actor = SYSTEM) -> User:
    """Disable (or enable again) a user: a disabled user cannot sign in and its tokens stop working."""
    async with transaction(url) as session:
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise UserError(f"no user with the email {email}")
        if user.disabled != disabled:
            user.disabled = disabled
            audit.append(session, event="user disabled" if disabled else "user enabled", by=by, note=user.email)
        return user


async def list_tokens(url: str, email: str | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens (never their secret: only id, owner and dates), newest first."""
    query = select(ApiToken, User.email).join(User, User.id == ApiToken.user_id).order_by(ApiToken.created_at.desc())
    if email is not None:
        query = query.where(User.email == email.strip().lower())
    async with transaction(url) as session:
        return [(token, owner) for token, owner in (await session.execute(query)).all()]


async def revoke_token(url: str, token_id: str, *, by: Actor = SYSTEM) -> ApiToken:
    async with transaction(url) as session:
        token = await session.get(ApiToken, token_id)
        if token is None:
            raise UserError(f"no token with the id {token_id}")
        if token.revoked_at is None:
            token.revoked_at = now()
            owner = await session.get(User, token.user_id)
            note = f"token {token.id} of {owner.email if owner else token.user_id}"
            audit.append(session, event="token revoked", by=by, note=note)
        return token
