"""Users and their API tokens. Passwords are Argon2 hashes; tokens are stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from domain.models import Role
from store.db import transaction
from store.enrollments import now
from store.tables import ApiToken, User

_hasher = PasswordHasher()
TOKEN_PREFIX = "enr_"  # noqa: S105 - a prefix that marks our tokens, not a secret
ACCOUNT_ROLES = frozenset({Role.reseller, Role.customer})


class UserError(ValueError):
    pass


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def add_user(url: str, *, email: str, role: Role, password: str, account_id: str | None = None) -> User:
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


async def create_token(url: str, email: str, *, expires_at: datetime | None = None) -> str:
    """A new bearer token for the user; only its hash is kept, so this is the one time it is seen."""
    user = await user_by_email(url, email)
    if user is None:
        raise UserError(f"no user with the email {email}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with transaction(url) as session:
        session.add(
            ApiToken(
                id=secrets.token_hex(6),
                user_id=user.id,
                token_hash=_token_hash(token),
                created_at=now(),
                expires_at=expires_at,
            )
        )
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


async def set_disabled(url: str, email: str, disabled: bool) -> User:
    """Disable (or enable again) a user: a disabled user cannot sign in and its tokens stop working."""
    async with transaction(url) as session:
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise UserError(f"no user with the email {email}")
        user.disabled = disabled
        return user


async def list_tokens(url: str, email: str | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens (never their secret: only id, owner and dates), newest first."""
    query = select(ApiToken, User.email).join(User, User.id == ApiToken.user_id).order_by(ApiToken.created_at.desc())
    if email is not None:
        query = query.where(User.email == email.strip().lower())
    async with transaction(url) as session:
        return [(token, owner) for token, owner in (await session.execute(query)).all()]


async def revoke_token(url: str, token_id: str) -> ApiToken:
    async with transaction(url) as session:
        token = await session.get(ApiToken, token_id)
        if token is None:
            raise UserError(f"no token with the id {token_id}")
        if token.revoked_at is None:
            token.revoked_at = now()
        return token
