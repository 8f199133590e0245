"""Users and their API tokens. Passwords are Argon2 hashes; tokens are stored only as SHA-256 hashes.

Every change (user added, disabled, enabled; token created, revoked) goes into the audit trail in the same
transaction, with who made it (`by`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Connection,
    DateTime,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from domain.models import SYSTEM, Actor, Role
from store import audit
from store.db import run, transaction
from store.paging import now
from store.tables import ApiToken, SignInThrottle, User

_hasher = PasswordHasher()
TOKEN_PREFIX = "enr_"  # noqa: S105 - a prefix that marks our tokens, not a secret
ACCOUNT_ROLES = frozenset({Role.reseller, Role.customer, Role.manufacturer})
FAILURES_PER_EMAIL = 5
FAILURES_PER_ADDRESS = 20  # higher: an office behind one NAT address shares it
FAILURE_WINDOW = timedelta(minutes=15)
LOCKED_FOR = timedelta(minutes=15)
LAST_USED_EVERY = timedelta(minutes=1)
"""How stale a token's `last_used_at` may get: it is written at most this often."""


class UserError(ValueError):
    pass


class TooManyTokens(UserError):
    """The user has as many live tokens as `issue_token` was told to allow."""


class _Locked(Exception):
    """Sign-in is locked for the email or the address: roll back whatever the attempt counted so far."""


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
        password_hash=await asyncio.to_thread(_hasher.hash, password),  # Argon2 takes a while: not on the loop
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


async def hash_password(password: str) -> str:
    """Argon2 takes a while by design: on a thread, not the loop."""
    return await asyncio.to_thread(_hasher.hash, password)


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
    """The enabled user with this email and password, else None. The Argon2 work (tens of milliseconds, by
    design) runs on a thread, so the API's other requests go on meanwhile."""
    user = await user_by_email(url, email)
    if user is None or user.disabled or not user.password_hash:
        await asyncio.to_thread(_hasher.hash, password)  # the same work either way, so timing does not tell
        return None
    try:
        await asyncio.to_thread(_hasher.verify, user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


async def sign_in(url: str, email: str, password: str, *, source: str | None) -> User | None:
    """The user these credentials are for, or None: for wrong ones, and for any attempt while the email or the
    source address is locked (after FAILURES_PER_EMAIL or FAILURES_PER_ADDRESS failures within FAILURE_WINDOW,
    for LOCKED_FOR). Every None is answered alike, so a refusal tells neither whether the email exists nor
    whether the password was right.

    The check and the count are one transaction: an attempt is counted as a failure before its password is
    checked (and given back if it was right), so a burst of simultaneous guesses gets no more checked than
    the limit allows. The password check itself runs outside any transaction, holding no lock."""
    if not await count_attempt(url, email, source):
        return None
    user = await check_password(url, email, password)
    if user is not None:
        await forgive(url, email, source)
    else:
        async with transaction(url) as session:
            await _forget_stale(session, now())
    return user


async def count_attempt(url: str, email: str, source: str | None) -> bool:
    """Count one attempt (a password, a second-factor code, a reset) against the email and the source address
    before it is checked; False, with nothing counted, while either is locked."""
    at = now()
    try:
        async with transaction(url) as session:
            for key, allowed in _throttle_keys(email, source):
                if not await _count_attempt(session, key, allowed, at):
                    raise _Locked
    except _Locked:
        return False
    return True


async def forgive(url: str, email: str, source: str | None) -> None:
    """The attempt counted by `count_attempt` was right: give it back."""
    async with transaction(url) as session:
        await _forgive(session, _throttle_keys(email, source))


async def locked_emails(url: str, emails: list[str]) -> set[str]:
    """Which of `emails` are locked out of signing in now (too many failed passwords or codes)."""
    keys = {_throttle_keys(email, None)[0][0]: email.strip().lower() for email in emails}
    if not keys:
        return set()
    query = select(SignInThrottle.key).where(SignInThrottle.key.in_(keys), SignInThrottle.locked_until > _at(now()))
    async with transaction(url) as session:
        return {keys[key] for key in await session.scalars(query)}


async def unlock(url: str, email: str, *, by: Actor = SYSTEM, account_id: str | None = None) -> bool:
    """Lift the lock on an email (and forget its failures); False when it was not locked."""
    key = _throttle_keys(email, None)[0][0]
    async with transaction(url) as session:
        row = await session.get(SignInThrottle, key)
        locked = row is not None and row.locked_until is not None and row.locked_until > now()
        await session.execute(delete(SignInThrottle).where(SignInThrottle.key == key))
        if locked:
            audit.append(session, event="user unlocked", by=by, note=email.strip().lower(), account_id=account_id)
        return locked


async def mark_signed_in(url: str, user_id: str) -> None:
    """A sign-in completed (password, and the second factor where there is one): the inactivity clock restarts."""
    async with transaction(url) as session:
        await session.execute(
            update(User).where(User.id == user_id).values(last_signed_in_at=now(), inactive_warned_at=None)
        )


def _network(source: str) -> str:
    """The address a throttle counts: an IPv6 client by its /64 (whoever has one address has the whole /64), an
    IPv4-mapped address as IPv4, anything else as it is."""
    try:
        ip = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return source
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _throttle_keys(email: str, source: str | None) -> list[tuple[str, int]]:
    """(key, failures allowed) of the email and of the source address; hashed, so what someone typed into
    the email field (a password, by mistake) is not kept."""
    keys = [(hashlib.sha256(f"email:{email.strip().lower()}".encode()).hexdigest(), FAILURES_PER_EMAIL)]
    if source:
        keys.append((hashlib.sha256(f"address:{_network(source)}".encode()).hexdigest(), FAILURES_PER_ADDRESS))
    return keys


def _at(moment: datetime) -> BindParameter[datetime]:
    """A time as a bound value of the throttle's timestamp columns (timezone-aware on both databases)."""
    return literal(moment, DateTime(timezone=True))


async def _count_attempt(session: AsyncSession, key: str, allowed: int, at: datetime) -> bool:
    """Count one attempt against `key`, unless it is locked: one atomic upsert (the row is locked while it
    is decided, on PostgreSQL; SQLite writes one at a time). The attempt that reaches `allowed` locks the key
    for LOCKED_FOR. False when the key is locked (nothing counted)."""
    throttle = SignInThrottle
    window_over = throttle.window_started_at < _at(at - FAILURE_WINDOW)
    failures = case((window_over, 1), else_=throttle.failures + 1)
    unlocked = or_(throttle.locked_until.is_(None), throttle.locked_until <= _at(at))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # A first failure never locks: both limits are above 1.
    first = {"key": key, "failures": 1, "window_started_at": at, "locked_until": None}
    counted = await session.scalar(
        insert(throttle)
        .values(first)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": failures,
                "window_started_at": case((window_over, _at(at)), else_=throttle.window_started_at),
                "locked_until": case((failures >= allowed, _at(at + LOCKED_FOR)), else_=None),
            },
            where=and_(unlocked, or_(window_over, throttle.failures < allowed)),
        )
        .returning(throttle.key)
    )
    return counted is not None


async def _forgive(session: AsyncSession, keys: list[tuple[str, int]]) -> None:
    """A right password: the email's failures are forgotten, and the address gets its attempt back (an office
    behind one address is not locked by its own sign-ins)."""
    throttle = SignInThrottle
    (email_key, _), *others = keys
    await session.execute(delete(throttle).where(throttle.key == email_key))
    for key, allowed in others:
        await session.execute(
            update(throttle)
            .where(throttle.key == key)
            .values(
                failures=case((throttle.failures > 0, throttle.failures - 1), else_=0),
                locked_until=case((throttle.failures - 1 < allowed, None), else_=throttle.locked_until),
            )
        )


async def _forget_stale(session: AsyncSession, at: datetime) -> None:
    """Drop counters whose window and lock are over, so the table stays small. Rows another sign-in holds
    are skipped (PostgreSQL), so this never waits on one, nor deadlocks with it."""
    stale = and_(
        SignInThrottle.window_started_at < _at(at - FAILURE_WINDOW),
        or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until < _at(at)),
    )
    over = select(SignInThrottle.key).where(stale).with_for_update(skip_locked=True)
    await session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_(over)))


async def create_token(url: str, email: str, *, expires_at: datetime | None = None, by: Actor = SYSTEM) -> str:
    """A new bearer token for the user; only its hash is kept, so this is the one time it is seen."""
    user = await user_by_email(url, email)
    if user is None:
        raise UserError(f"no user with the email {email}")
    _, token = await issue_token(url, user, expires_at=expires_at, by=by)
    return token


async def issue_token(
    url: str, user: User, *, expires_at: datetime | None = None, by: Actor = SYSTEM, live_at_most: int | None = None
) -> tuple[ApiToken, str]:
    """A new bearer token for `user`: its row and the token itself, which is seen this once (only its hash is
    kept). With `live_at_most`, refused (TooManyTokens) while the user already has that many live tokens; the count
    and the insert are one transaction that holds the user's row, so two at once cannot both pass."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    at = now()
    row = ApiToken(
        id=secrets.token_hex(6), user_id=user.id, token_hash=_token_hash(token), created_at=at, expires_at=expires_at
    )
    async with transaction(url) as session:
        if live_at_most is not None:
            # A write first, so the count below cannot be raced: it locks the user's row on PostgreSQL, and takes
            # the database's write lock on SQLite (where FOR UPDATE does nothing and reads take no lock).
            await session.execute(update(User).where(User.id == user.id).values(session_epoch=User.session_epoch))
            if len(await _live_tokens(session, user.id, at)) >= live_at_most:
                raise TooManyTokens(f"{user.email} has {live_at_most} live API tokens already")
        session.add(row)
        until = f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
        note = f"token {row.id} of {user.email}{until}"
        audit.append(session, event="token created", by=by, note=note, account_id=user.account_id)
    return row, token


async def _live_tokens(session: AsyncSession, user_id: str, at: datetime) -> list[ApiToken]:
    live = and_(
        ApiToken.user_id == user_id,
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > _at(at)),
    )
    return list(await session.scalars(select(ApiToken).where(live)))


_TOKENS, _USERS = ApiToken.__table__, User.__table__
_TOKEN_AND_USER = (
    select(_TOKENS, _USERS)
    .join_from(_TOKENS, _USERS, _TOKENS.c.user_id == _USERS.c.id)
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
)
_BY_HASH = _TOKEN_AND_USER.where(_TOKENS.c.token_hash == bindparam("b_digest"))
_USED = update(ApiToken).where(ApiToken.id == bindparam("b_id")).values(last_used_at=bindparam("b_at"))
"""`authenticate`'s statements, built once with bound parameters: every API request runs them."""


async def authenticate(url: str, token: str) -> tuple[ApiToken, User] | None:
    """The live token and its enabled user, else None. Its last use is written at most once per LAST_USED_EVERY
    (a busy script does not write on every request).

    Every API request asks, so this is one plain statement (and the rare write), no ORM session: the token and the
    user come back as detached objects, read-only to the caller."""
    at = now()
    digest = _token_hash(token)

    def read(conn: Connection) -> tuple[ApiToken, User] | None:
        found = conn.execute(_BY_HASH, {"b_digest": digest}).first()
        if found is None:
            return None
        columns = found._mapping
        row = ApiToken(**{column.key: columns[column] for column in _TOKENS.c})
        user = User(**{column.key: columns[column] for column in _USERS.c})
        if row.revoked_at is not None:
            return None
        if row.expires_at is not None and row.expires_at <= at:
            return None
        if user.disabled:
            return None
        if row.last_used_at is None or row.last_used_at <= at - LAST_USED_EVERY:
            conn.execute(_USED, {"b_id": row.id, "b_at": at})
            row.last_used_at = at
        return row, user

    return await run(url, read)


async def user_for_token(url: str, token: str) -> User | None:
    """The enabled user a live token belongs to, else None."""
    found = await authenticate(url, token)
    return found[1] if found else None


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
            user.session_epoch += 1
            audit.append(session, event="user disabled" if disabled else "user enabled", by=by, note=user.email)
        return user


async def list_tokens(url: str, email: str | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens (never their secret: only id, owner and dates), newest first."""
    query = select(ApiToken, User.email).join(User, User.id == ApiToken.user_id).order_by(ApiToken.created_at.desc())
    if email is not None:
        query = query.where(User.email == email.strip().lower())
    async with transaction(url) as session:
        return [(token, owner) for token, owner in (await session.execute(query)).all()]


async def tokens_of(url: str, user_id: str) -> list[ApiToken]:
    """One user's tokens, live, expired and revoked (never their secret), newest first."""
    query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc(), ApiToken.id)
    async with transaction(url) as session:
        return list(await session.scalars(query))


async def revoke_token(url: str, token_id: str, *, by: Actor = SYSTEM, owner_id: str | None = None) -> ApiToken:
    """Revoke a token (it stops working at once); revoking a revoked one changes nothing. With `owner_id`, only
    a token of that user: another user's token is refused exactly like one that does not exist."""
    async with transaction(url) as session:
        token = await session.get(ApiToken, token_id)
        if token is None or (owner_id is not None and token.user_id != owner_id):
            raise UserError(f"no token with the id {token_id}")
        if token.revoked_at is None:
            token.revoked_at = now()
            owner = await session.get(User, token.user_id)
            note = f"token {token.id} of {owner.email if owner else token.user_id}"
            account_id = owner.account_id if owner else None
            audit.append(session, event="token revoked", by=by, note=note, account_id=account_id)
        return token
