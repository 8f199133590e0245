"""A user's own API tokens in the store, on SQLite and PostgreSQL: issued with a cap on live ones (also when
two race), the time each was last used, and revoked only by their owner."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from domain.models import Role
from store.db import transaction
from store.paging import now
from store.tables import ApiToken, TimelineEntry
from store.users import (
    LAST_USED_EVERY,
    TooManyTokens,
    UserError,
    add_user,
    authenticate,
    issue_token,
    revoke_token,
    tokens_of,
)

PASSWORD = "correct horse battery"


async def test_live_tokens_are_capped_and_revoked_or_expired_ones_do_not_count(database_url: str) -> None:
    user = await add_user(
        database_url, email="pat@reseller.example", role=Role.reseller, password=PASSWORD, account_id="r1"
    )
    first, _ = await issue_token(database_url, user, expires_at=now() + timedelta(days=1), live_at_most=2)
    await issue_token(database_url, user, live_at_most=2)
    with pytest.raises(TooManyTokens):
        await issue_token(database_url, user, live_at_most=2)
    await revoke_token(database_url, first.id, owner_id=user.id)
    await issue_token(database_url, user, live_at_most=2)
    async with transaction(database_url) as session:
        await session.execute(update(ApiToken).where(ApiToken.user_id == user.id).values(expires_at=now()))
    both = await asyncio.gather(
        *(issue_token(database_url, user, live_at_most=1) for _ in range(2)), return_exceptions=True
    )
    assert sorted(type(outcome).__name__ for outcome in both) == ["TooManyTokens", "tuple"]
    assert len(await tokens_of(database_url, user.id)) == 4


async def test_a_token_records_when_it_was_last_used_at_most_once_a_minute(database_url: str) -> None:
    user = await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    row, token = await issue_token(database_url, user)
    assert row.last_used_at is None
    found = await authenticate(database_url, token)
    assert found is not None and found[0].id == row.id and found[1].id == user.id
    [first] = await tokens_of(database_url, user.id)
    assert first.last_used_at is not None
    await authenticate(database_url, token)
    [again] = await tokens_of(database_url, user.id)
    assert again.last_used_at == first.last_used_at  # within the minute: no write
    async with transaction(database_url) as session:
        earlier = now() - LAST_USED_EVERY - timedelta(seconds=1)
        await session.execute(update(ApiToken).values(last_used_at=earlier))
    await authenticate(database_url, token)
    [later] = await tokens_of(database_url, user.id)
    assert later.last_used_at is not None and later.last_used_at > earlier


async def test_only_the_owner_revokes_and_another_users_token_is_refused_like_a_missing_one(database_url: str) -> None:
    owner = await add_user(
        database_url, email="pat@reseller.example", role=Role.reseller, password=PASSWORD, account_id="r1"
    )
    other = await add_user(
        database_url, email="sam@other.example", role=Role.reseller, password=PASSWORD, account_id="r2"
    )
    row, token = await issue_token(database_url, owner)
    with pytest.raises(UserError) as theirs:
        await revoke_token(database_url, row.id, owner_id=other.id)
    with pytest.raises(UserError) as missing:
        await revoke_token(database_url, "nope", owner_id=other.id)
    assert str(theirs.value) == f"no token with the id {row.id}" and str(missing.value) == "no token with the id nope"
    assert await authenticate(database_url, token) is not None

    revoked = await revoke_token(database_url, row.id, owner_id=owner.id)
    assert revoked.revoked_at is not None and await authenticate(database_url, token) is None
    assert (await revoke_token(database_url, row.id, owner_id=owner.id)).revoked_at == revoked.revoked_at
    async with transaction(database_url) as session:
        entries = list(
            await session.scalars(
                select(TimelineEntry).where(TimelineEntry.account_id == "r1").order_by(TimelineEntry.id)
            )
        )
    assert [e.event for e in entries] == ["token created", "token revoked"]  # on the account's trail, once each
    assert all(token not in (e.note or "") for e in entries)
