"""Member administrators: the users of a member account who manage it, from the approval that makes the
contacts administrators to activation, disabling and the inactivity sweep; and the single-use links they
activate with (`/activate/<token>`) and everyone resets a password with (`/reset/<token>`).

Links are kept as the SHA-256 of their token. An activation token is derived from the secret key, the user and
the link version (`activities.email.activation_token`), so the workflow that sends it never holds it; a reset
token is random and leaves the API only in its email. Every step lands on the account's timeline.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    MEMBER_ROLES,
    SYSTEM,
    Actor,
    AdministratorsCreated,
    AdministratorStatus,
    CreateAdministrators,
    InactiveSwept,
    InvitationEvent,
    InvitationOutcome,
    InvitationRound,
    MemberType,
    Role,
)
from domain.webhooks import EventType
from store import audit, events, users
from store.db import transaction
from store.paging import now
from store.tables import Account, TimelineEntry, User, UserLink
from store.users import UserError

MEMBER_ROLE_NAMES = frozenset(role.value for role in MEMBER_ROLES.values())
ACTIVATION = "activation"
RESET = "reset"
RESET_TTL = timedelta(minutes=30)
NOT_ATTACHED = "administrator not attached"
"""The account's timeline event of a contact that could not become an administrator (the note says why)."""
WARN_BEFORE = timedelta(days=7)
"""How long before the inactivity sweep disables an administrator it warns them by email."""


class LinkState(StrEnum):
    unknown = "unknown"
    live = "live"
    used = "used"
    expired = "expired"
    dead = "dead"
    """Replaced by a newer link (a resend), or its user was disabled."""


class LinkRefused(ValueError):
    """A link that cannot be used: `state` says why (the page says it in a sentence)."""

    def __init__(self, state: LinkState) -> None:
        super().__init__(state.value)
        self.state = state


@dataclass(frozen=True)
class Administrator:
    user_id: str
    email: str
    name: str | None
    role: str
    account_id: str
    status: AdministratorStatus
    invited_at: datetime
    invited_by: str | None
    invitation_expires_at: datetime | None
    activated_at: datetime | None
    last_signed_in_at: datetime | None
    bounce: str | None
    second_factor: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def status_of(user: User, locked: bool, at: datetime) -> AdministratorStatus:
    if user.disabled:
        return AdministratorStatus.disabled
    if user.invitation == "expired" or (
        user.invitation == "invited" and user.invitation_expires_at is not None and user.invitation_expires_at <= at
    ):
        return AdministratorStatus.expired
    if user.invitation == "invited":
        return AdministratorStatus.invited
    if locked:
        return AdministratorStatus.locked
    return AdministratorStatus.active


def _administrator(user: User, locked: bool, at: datetime) -> Administrator:
    assert user.account_id is not None
    return Administrator(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        account_id=user.account_id,
        status=status_of(user, locked, at),
        invited_at=user.created_at,
        invited_by=user.invited_by,
        invitation_expires_at=user.invitation_expires_at,
        activated_at=user.activated_at,
        last_signed_in_at=user.last_signed_in_at,
        bounce=user.invitation_bounce,
        second_factor=user.totp_secret is not None,
    )


def _new_administrator(account_id: str, member_type: MemberType, email: str, name: str | None, by: Actor) -> User:
    return User(
        id=secrets.token_hex(8),
        email=email,
        role=MEMBER_ROLES[member_type].value,
        account_id=account_id,
        password_hash="",
        disabled=False,
        created_at=now(),
        name=name,
        invitation="invited",
        invitation_version=0,
        invited_by=by.email,
        session_epoch=0,
    )


async def create_administrators(url: str, request: CreateAdministrators, key: str) -> AdministratorsCreated:
    """Approval: each contact becomes an administrator of the account (one login per address). An address
    that belongs to a user of another account (or to staff) is not attached: the account's timeline says so
    (`NOT_ATTACHED`, keyed by `key`), and so does the result. Safe to run again: a contact already made an
    administrator of this account is invited (again) if they have not activated yet, and skipped silently if
    they have."""
    invite: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()
    async with transaction(url) as session:
        for contact in request.contacts:
            email = contact.email.strip().lower()
            if email in seen:
                continue
            seen.add(email)
            user = await session.scalar(select(User).where(User.email == email))
            if user is None:
                user = _new_administrator(request.account_id, request.member_type, email, contact.name, request.by)
                session.add(user)
                audit.append(
                    session,
                    event="administrator added",
                    by=request.by,
                    note=f"{email}: role {user.role}, from the approved enrollment",
                    account_id=request.account_id,
                    key=f"administrators/{request.account_id}/{email}",
                )
                invite.append(user.id)
            elif user.account_id == request.account_id:
                if user.invitation == "invited":
                    invite.append(user.id)
            else:
                sentence = f"{email} was not made an administrator: the address belongs to a user of another account"
                skipped.append(sentence)
                note_key = f"{key}/skipped-{len(skipped)}"
                if not await _recorded(session, note_key):
                    audit.append(
                        session,
                        event=NOT_ATTACHED,
                        by=request.by,
                        note=sentence,
                        account_id=request.account_id,
                        key=note_key,
                    )
    return AdministratorsCreated(invite=invite, skipped=skipped)


async def invite(
    url: str, *, account_id: str, member_type: MemberType, email: str, by: Actor, name: str | None = None
) -> User:
    """An administrator invited by another one (or by staff). Refused with `UserError` for an address that
    already has a user."""
    address = email.strip().lower()
    async with transaction(url) as session:
        existing = await session.scalar(select(User).where(User.email == address))
        if existing is not None:
            if existing.account_id == account_id:
                raise UserError(f"{address} is already an administrator of this account.")
            raise UserError(f"{address} already belongs to a user of another account; use another address.")
        user = _new_administrator(account_id, member_type, address, name, by)
        session.add(user)
        audit.append(
            session, event="administrator added", by=by, note=f"{address}: role {user.role}", account_id=account_id
        )
        return user


async def list_administrators(url: str, account_id: str) -> list[Administrator]:
    async with transaction(url) as session:
        rows = list(
            await session.scalars(
                select(User)
                .where(User.account_id == account_id, User.role.in_(MEMBER_ROLE_NAMES))
                .order_by(User.created_at, User.email)
            )
        )
    locked = await users.locked_emails(url, [row.email for row in rows])
    at = now()
    return [_administrator(row, row.email in locked, at) for row in rows]


async def get_administrator(url: str, account_id: str, user_id: str) -> Administrator | None:
    async with transaction(url) as session:
        user = await session.get(User, user_id)
    if user is None or user.account_id != account_id or user.role not in MEMBER_ROLE_NAMES:
        return None
    locked = await users.locked_emails(url, [user.email])
    return _administrator(user, user.email in locked, now())


async def record_invitation(url: str, event: InvitationEvent, key: str) -> None:
    """A step of an administrator's invitation (the workflow's): the user's row and the account's timeline,
    once per `key` whatever the retries."""
    async with transaction(url) as session:
        user = await session.get(User, event.user_id, with_for_update=True)
        if user is None:
            return
        version = event.link_version
        if version is not None and version >= user.invitation_version and user.invitation in ("invited", "expired"):
            user.invitation = "invited"
            user.invitation_version = version
            user.invitation_expires_at = event.expires_at
            user.invitation_bounce = None
            await _kill_links(session, user.id, ACTIVATION, below=version)  # a resend: the old link dies now
        if event.bounce is not None:
            user.invitation_bounce = event.bounce
        if await _recorded(session, key):
            return
        audit.append(
            session,
            event=event.event,
            by=event.actor,
            note=f"{user.email}: {event.note}" if event.note else user.email,
            account_id=event.account_id,
            key=key,
        )


async def _recorded(session: AsyncSession, key: str) -> bool:
    return await session.scalar(select(TimelineEntry.id).where(TimelineEntry.key == key)) is not None


async def open_activation_link(url: str, *, token: str, round: InvitationRound) -> bool:
    """Make `token` the live activation link of this round, only while the user is still invited at this
    version (older versions die); False (nothing opened) once they activated, were disabled or re-invited."""
    digest = token_hash(token)
    async with transaction(url) as session:
        user = await session.get(User, round.user_id, with_for_update=True)
        if (
            user is None
            or user.disabled
            or user.invitation != "invited"
            or user.invitation_version != round.link_version
        ):
            return False
        existing = await session.get(UserLink, digest)
        if existing is not None:
            return existing.dead_at is None and existing.used_at is None
        session.add(
            UserLink(
                token_hash=digest,
                user_id=user.id,
                purpose=ACTIVATION,
                version=round.link_version,
                created_at=now(),
                expires_at=round.expires_at or user.invitation_expires_at or now(),
            )
        )
        await _kill_links(session, user.id, ACTIVATION, below=round.link_version)
        return True


async def _kill_links(session: AsyncSession, user_id: str, purpose: str, *, below: int | None = None) -> None:
    query = update(UserLink).where(
        UserLink.user_id == user_id, UserLink.purpose == purpose, UserLink.dead_at.is_(None), UserLink.used_at.is_(None)
    )
    if below is not None:
        query = query.where(UserLink.version < below)
    await session.execute(query.values(dead_at=now()))


async def round_outcome(url: str, user_id: str, link_version: int) -> InvitationOutcome:
    async with transaction(url) as session:
        user = await session.get(User, user_id)
        return InvitationOutcome(state=_outcome(user, link_version))


def _outcome(user: User | None, link_version: int) -> str:
    if user is None or user.disabled:
        return "disabled"
    if user.invitation == "activated":
        return "activated"
    if user.invitation_version != link_version:
        return "replaced"
    return user.invitation or "activated"


async def expire_round(url: str, round: InvitationRound, key: str) -> InvitationOutcome:
    """The round's deadline: an administrator still invited at this version is Expired, and the link dies."""
    async with transaction(url) as session:
        user = await session.get(User, round.user_id, with_for_update=True)
        state = _outcome(user, round.link_version)
        if user is None or state != "invited":
            return InvitationOutcome(state=state)
        user.invitation = "expired"
        await _kill_links(session, user.id, ACTIVATION)
        if not await _recorded(session, key):
            audit.append(
                session,
                event="administrator invitation expired",
                by=SYSTEM,
                note=f"{user.email}: not activated before the link's deadline",
                account_id=round.account_id,
                key=key,
            )
        return InvitationOutcome(state="expired")


async def link_state(url: str, token: str, purpose: str) -> tuple[LinkState, User | None]:
    """What an activation or reset link is now, and its user; never consumes it (a mail scanner may open it)."""
    async with transaction(url) as session:
        link = await session.get(UserLink, token_hash(token))
        if link is None or link.purpose != purpose:
            return LinkState.unknown, None
        user = await session.get(User, link.user_id)
        return _state(link, user), user


def _state(link: UserLink, user: User | None) -> LinkState:
    if link.used_at is not None:
        return LinkState.used
    if link.dead_at is not None or user is None or user.disabled:
        return LinkState.dead
    if link.expires_at <= now():
        return LinkState.expired
    return LinkState.live


async def _consume(session: AsyncSession, token: str, purpose: str) -> tuple[UserLink, User]:
    """Use the link once: a conditional update, so two submits racing with it cannot both pass."""
    link = await session.get(UserLink, token_hash(token), with_for_update=True)
    if link is None or link.purpose != purpose:
        raise LinkRefused(LinkState.unknown)
    user = await session.get(User, link.user_id, with_for_update=True)
    state = _state(link, user)
    if state != LinkState.live or user is None:
        raise LinkRefused(state)
    taken = await session.execute(
        update(UserLink).where(UserLink.token_hash == link.token_hash, UserLink.used_at.is_(None)).values(used_at=now())
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise LinkRefused(LinkState.used)
    return link, user


async def activate(url: str, token: str, password_hash: str) -> User:
    """Set the administrator's password and consume the activation link; `LinkRefused` says why not."""
    async with transaction(url) as session:
        link, user = await _consume(session, token, ACTIVATION)
        at = now()
        user.password_hash = password_hash
        user.invitation = "activated"
        user.invitation_bounce = None
        user.activated_at = at
        user.last_signed_in_at = at
        user.session_epoch += 1
        audit.append(
            session,
            event="administrator activated",
            by=Actor(user_id=user.id, email=user.email, kind=user.role),
            note=user.email,
            account_id=user.account_id,
        )
        await _activated_event(session, user, link.token_hash, at)
        return user


def administrator_data(administrator: Administrator) -> dict[str, Any]:
    """The administrator as the API shows it (`AdministratorOut`): never a token, password or second-factor key."""
    data: dict[str, Any] = _ADMINISTRATOR_JSON.dump_python(administrator, mode="json")
    return data


_ADMINISTRATOR_JSON = TypeAdapter(Administrator)


async def _activated_event(session: AsyncSession, user: User, link_hash: str, at: datetime) -> None:
    """`administrator.activated`, last in the activation's transaction (keyed by the link, which is used once).
    Just activated with a new password, the administrator is Active: no failed sign-in has locked them yet. The
    account's reseller, if any, sees it."""
    assert user.account_id is not None
    reseller = await session.scalar(select(Account.reseller_account_id).where(Account.id == user.account_id))
    await events.add_event(
        session,
        key=f"administrator-activated/{link_hash}",
        type=EventType.administrator_activated,
        created_at=at,
        data=administrator_data(_administrator(user, False, at)),
        account_id=user.account_id,
        reseller_account_id=reseller,
    )


async def create_reset_link(url: str, email: str) -> tuple[str, User] | None:
    """A new reset link for the enabled, activated user with this email (older reset links die); None for any
    other address, which the page answers exactly as it answers a real one."""
    async with transaction(url) as session:
        user = await session.scalar(select(User).where(User.email == email.strip().lower()).with_for_update())
        if user is None or user.disabled or not user.password_hash:
            return None
        await _kill_links(session, user.id, RESET)
        token = secrets.token_urlsafe(32)
        at = now()
        session.add(
            UserLink(
                token_hash=token_hash(token),
                user_id=user.id,
                purpose=RESET,
                version=0,
                created_at=at,
                expires_at=at + RESET_TTL,
            )
        )
        audit.append(session, event="password reset asked", by=SYSTEM, note=user.email, account_id=user.account_id)
        return token, user


async def reset_password(url: str, token: str, password_hash: str) -> User:
    """Set a new password through a reset link, consuming it; every session of the user ends."""
    async with transaction(url) as session:
        _, user = await _consume(session, token, RESET)
        user.password_hash = password_hash
        user.session_epoch += 1
        audit.append(
            session,
            event="password reset",
            by=Actor(user_id=user.id, email=user.email, kind=user.role),
            note=user.email,
            account_id=user.account_id,
        )
        return user


async def set_disabled(url: str, account_id: str, user_id: str, disabled: bool, *, by: Actor) -> User:
    """Disable or enable an administrator of the account. The last active administrator cannot be disabled."""
    async with transaction(url) as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None or user.account_id != account_id or user.role not in MEMBER_ROLE_NAMES:
            raise UserError("No administrator of this account has that id.")
        if user.disabled == disabled:
            return user
        if disabled and user.invitation in (None, "activated"):
            active = await session.scalar(
                select(func.count()).where(
                    User.account_id == account_id,
                    User.role.in_(MEMBER_ROLE_NAMES),
                    User.disabled.is_(False),
                    User.password_hash != "",
                )
            )
            if (active or 0) <= 1:
                raise UserError(
                    "This is the account's last active administrator and cannot be disabled; invite and activate "
                    "another administrator first."
                )
        user.disabled = disabled
        user.session_epoch += 1
        if disabled:
            await _kill_links(session, user.id, ACTIVATION)
        audit.append(
            session,
            event="administrator disabled" if disabled else "administrator enabled",
            by=by,
            note=user.email,
            account_id=account_id,
        )
        return user


async def sweep_inactive(url: str, days: int) -> InactiveSwept:
    """Disable the member administrators who have not signed in for `days` (since activation, if never), and
    pick those a week short of it who have not been warned yet (marked warned here, so each is warned once)."""
    at = now()
    last = func.coalesce(User.last_signed_in_at, User.activated_at)
    active = (
        User.role.in_(MEMBER_ROLE_NAMES),
        User.disabled.is_(False),
        User.invitation == "activated",
    )
    async with transaction(url) as session:
        stale = list(await session.scalars(select(User).where(*active, last <= at - timedelta(days=days))))
        for user in stale:
            user.disabled = True
            user.session_epoch += 1
            audit.append(
                session,
                event="administrator disabled",
                by=SYSTEM,
                note=f"{user.email}: no sign-in for {days} days",
                account_id=user.account_id,
            )
        warned = list(
            await session.scalars(
                select(User).where(
                    *active,
                    last <= at - timedelta(days=days) + WARN_BEFORE,
                    last > at - timedelta(days=days),
                    User.inactive_warned_at.is_(None),
                )
            )
        )
        for user in warned:
            user.inactive_warned_at = at
        return InactiveSwept(warn=[user.id for user in warned], disabled=len(stale))


def role_for(member_type: MemberType) -> Role:
    return MEMBER_ROLES[member_type]
