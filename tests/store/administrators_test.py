"""Member administrators in the store, on SQLite and PostgreSQL: made from the approved contacts, activation
and reset links used once, the last active administrator kept, the inactivity sweep, and the second factor's
codes accepted once."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from domain.models import (
    SYSTEM,
    AdministratorStatus,
    CreateAdministrators,
    InvitationEvent,
    InvitationRound,
    MemberType,
    NewAdministrator,
    Role,
)
from store import administrators, second_factor, users
from store.administrators import LinkRefused, LinkState
from store.db import transaction
from store.paging import now
from store.tables import TimelineEntry, User, UserLink

ACCOUNT = "acct-globex"
KEY = b"a signing key for the store tests, long enough"
PASSWORD = "marble harbour 52 quietly"


def approval(*emails: str) -> CreateAdministrators:
    return CreateAdministrators(
        account_id=ACCOUNT,
        organization_name="Globex Corporation",
        member_type=MemberType.manufacturer,
        contacts=[NewAdministrator(email=email, name=f"name of {email}") for email in emails],
        by=SYSTEM,
    )


async def invited(url: str, email: str = "pat@globex.example") -> str:
    """An administrator invited with a live version-1 link (`token(user_id, 1)`); their user id."""
    created = await administrators.create_administrators(url, approval(email), "approval")
    user_id = created.invite[0]
    await round_of(url, user_id, 1)
    return user_id


async def round_of(url: str, user_id: str, version: int) -> None:
    expires_at = now() + timedelta(days=7)
    event = InvitationEvent(
        user_id=user_id,
        account_id=ACCOUNT,
        event="administrator invited",
        actor=SYSTEM,
        link_version=version,
        expires_at=expires_at,
    )
    await administrators.record_invitation(url, event, f"round-{version}")
    round = InvitationRound(user_id=user_id, account_id=ACCOUNT, link_version=version, expires_at=expires_at)
    assert await administrators.open_activation_link(url, token=token(user_id, version), round=round)


def token(user_id: str, version: int) -> str:
    return f"token-{user_id}-{version}"


async def test_the_contacts_become_administrators_once_and_another_accounts_user_is_not_attached(
    database_url: str,
) -> None:
    await users.add_user(database_url, email="sam@elsewhere.example", role=Role.csm, password=PASSWORD)
    request = approval("Pat@Globex.example", "pat@globex.example", "sam@elsewhere.example")
    first = await administrators.create_administrators(database_url, request, "approval")
    again = await administrators.create_administrators(database_url, request, "approval")
    assert len(first.invite) == 1 and again.invite == first.invite
    assert first.skipped == [
        "sam@elsewhere.example was not made an administrator: the address belongs to a user of another account"
    ]
    listed = await administrators.list_administrators(database_url, ACCOUNT)
    assert [(a.email, a.role, a.status) for a in listed] == [
        ("pat@globex.example", "manufacturer", AdministratorStatus.invited)
    ]
    async with transaction(database_url) as session:
        notes = list(await session.scalars(select(TimelineEntry.event)))
    assert notes.count(administrators.NOT_ATTACHED) == 1 and notes.count("administrator added") == 1


async def test_an_activation_link_works_once_and_a_resend_kills_the_old_one(database_url: str) -> None:
    user_id = await invited(database_url)
    assert (await administrators.link_state(database_url, token(user_id, 1), "activation"))[0] == LinkState.live
    await round_of(database_url, user_id, 2)
    with pytest.raises(LinkRefused) as replaced:
        await administrators.activate(database_url, token(user_id, 1), await users.hash_password(PASSWORD))
    assert replaced.value.state == LinkState.dead
    user = await administrators.activate(database_url, token(user_id, 2), await users.hash_password(PASSWORD))
    assert user.invitation == "activated"
    with pytest.raises(LinkRefused) as used:
        await administrators.activate(database_url, token(user_id, 2), await users.hash_password("another one"))
    assert used.value.state == LinkState.used
    assert await users.check_password(database_url, "pat@globex.example", PASSWORD) is not None
    assert (await administrators.round_outcome(database_url, user_id, 2)).state == "activated"


async def test_an_expired_link_is_refused_and_the_round_expires(database_url: str) -> None:
    user_id = await invited(database_url)
    async with transaction(database_url) as session:
        await session.execute(update(UserLink).values(expires_at=now() - timedelta(seconds=1)))
    with pytest.raises(LinkRefused) as late:
        await administrators.activate(database_url, token(user_id, 1), await users.hash_password(PASSWORD))
    assert late.value.state == LinkState.expired
    round = InvitationRound(user_id=user_id, account_id=ACCOUNT, link_version=1)
    assert (await administrators.expire_round(database_url, round, "expiry")).state == "expired"
    listed = await administrators.list_administrators(database_url, ACCOUNT)
    assert listed[0].status == AdministratorStatus.expired


async def test_the_last_active_administrator_cannot_be_disabled(database_url: str) -> None:
    pat = await invited(database_url)
    await administrators.activate(database_url, token(pat, 1), await users.hash_password(PASSWORD))
    with pytest.raises(users.UserError, match="last active administrator"):
        await administrators.set_disabled(database_url, ACCOUNT, pat, True, by=SYSTEM)
    sam = await invited(database_url, "sam@globex.example")
    await administrators.activate(database_url, token(sam, 1), await users.hash_password(PASSWORD))
    disabled = await administrators.set_disabled(database_url, ACCOUNT, pat, True, by=SYSTEM)
    assert disabled.disabled and disabled.session_epoch > 0
    with pytest.raises(users.UserError, match="last active administrator"):
        await administrators.set_disabled(database_url, ACCOUNT, sam, True, by=SYSTEM)


async def test_the_sweep_warns_a_week_before_and_disables_at_the_limit(database_url: str) -> None:
    ids = {}
    for name, idle in (("fresh", 10), ("warned", 175), ("idle", 181)):
        ids[name] = await invited(database_url, f"{name}@globex.example")
        await administrators.activate(database_url, token(ids[name], 1), await users.hash_password(PASSWORD))
        async with transaction(database_url) as session:
            await session.execute(
                update(User).where(User.id == ids[name]).values(last_signed_in_at=now() - timedelta(days=idle))
            )
    swept = await administrators.sweep_inactive(database_url, 180)
    assert swept.warn == [ids["warned"]] and swept.disabled == 1
    again = await administrators.sweep_inactive(database_url, 180)
    assert again.warn == [] and again.disabled == 0  # each is warned once
    statuses = {a.email: a.status for a in await administrators.list_administrators(database_url, ACCOUNT)}
    assert statuses == {
        "fresh@globex.example": AdministratorStatus.active,
        "warned@globex.example": AdministratorStatus.active,
        "idle@globex.example": AdministratorStatus.disabled,
    }
    await users.mark_signed_in(database_url, ids["warned"])  # signing in restarts the clock and the warning
    assert (await users.user_by_id(database_url, ids["warned"])).inactive_warned_at is None  # type: ignore[union-attr]


async def test_a_reset_link_is_single_use_and_ends_in_thirty_minutes(database_url: str) -> None:
    await users.add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    assert await administrators.create_reset_link(database_url, "nobody@provider.example") is None
    made = await administrators.create_reset_link(database_url, "csm@provider.example")
    assert made is not None
    token, user = made
    async with transaction(database_url) as session:
        link = await session.get(UserLink, administrators.token_hash(token))
    assert link is not None and timedelta(minutes=29) < link.expires_at - now() <= timedelta(minutes=30)
    changed = await administrators.reset_password(database_url, token, await users.hash_password("new words here ok"))
    assert changed.session_epoch == user.session_epoch + 1
    with pytest.raises(LinkRefused):
        await administrators.reset_password(database_url, token, await users.hash_password("again and again"))


async def test_a_totp_code_and_a_recovery_code_are_each_accepted_once(database_url: str) -> None:
    user = await users.add_user(database_url, email="rev@provider.example", role=Role.reviewer, password=PASSWORD)
    key = await second_factor.setup_key(database_url, KEY, user.id)
    codes = await second_factor.turn_on(database_url, KEY, user.id, pyotp.TOTP(key).now())
    assert codes is not None and len(set(codes)) == 10
    totp = pyotp.TOTP(key)
    later = totp.generate_otp(totp.timecode(now()) + 1)
    assert await second_factor.check_code(database_url, KEY, user.id, later) == "totp"
    assert await second_factor.check_code(database_url, KEY, user.id, later) is None  # replayed
    assert await second_factor.check_code(database_url, KEY, user.id, totp.now()) is None  # an older step
    assert await second_factor.check_code(database_url, KEY, user.id, codes[3].upper()) == "recovery"
    assert await second_factor.check_code(database_url, KEY, user.id, codes[3]) is None
    assert await second_factor.codes_left(database_url, user.id) == 9
    async with transaction(database_url) as session:
        stored = await session.get(User, user.id)
    assert stored is not None and stored.totp_secret is not None and key not in stored.totp_secret
