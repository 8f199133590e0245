"""Users, passwords and API tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text, update

from domain.models import Role
from store.db import transaction
from store.paging import now
from store.tables import ApiToken, User
from store.users import (
    UserError,
    add_user,
    check_password,
    count_users,
    create_token,
    user_by_email,
    user_for_token,
)

PASSWORD = "correct horse battery"


async def test_a_user_is_added(database_url: str) -> None:
    user = await add_user(database_url, email="  CSM@Provider.Example ", role=Role.csm, password=PASSWORD)
    assert user.email == "csm@provider.example"
    assert user.role == "csm"
    assert user.account_id is None
    found = await user_by_email(database_url, "csm@provider.example")
    assert found is not None and found.id == user.id
    assert await count_users(database_url) == 1


@pytest.mark.parametrize("role", [Role.reseller, Role.customer])
async def test_account_roles_are_bound_to_an_account(database_url: str, role: Role) -> None:
    with pytest.raises(UserError, match="--account"):
        await add_user(database_url, email="pat@acme.example", role=role, password=PASSWORD)
    user = await add_user(database_url, email="pat@acme.example", role=role, password=PASSWORD, account_id="a1")
    assert user.account_id == "a1"


@pytest.mark.parametrize("role", [Role.admin, Role.csm, Role.sales, Role.reviewer])
async def test_staff_roles_refuse_an_account(database_url: str, role: Role) -> None:
    with pytest.raises(UserError, match="not bound to a member account"):
        await add_user(database_url, email="staff@provider.example", role=role, password=PASSWORD, account_id="a1")
    assert await count_users(database_url) == 0


@pytest.mark.parametrize("password", ["", "short", "x" * 11])
async def test_a_short_password_is_refused(database_url: str, password: str) -> None:
    with pytest.raises(UserError, match="at least 12 characters"):
        await add_user(database_url, email="csm@provider.example", role=Role.csm, password=password)
    assert await count_users(database_url) == 0


async def test_a_twelve_character_password_is_enough(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password="x" * 12)
    assert await check_password(database_url, "csm@provider.example", "x" * 12) is not None


@pytest.mark.parametrize("again", ["csm@provider.example", "CSM@PROVIDER.EXAMPLE", " Csm@Provider.example "])
async def test_a_duplicate_email_is_refused(database_url: str, again: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    with pytest.raises(UserError, match="already exists"):
        await add_user(database_url, email=again, role=Role.reviewer, password=PASSWORD)
    assert await count_users(database_url) == 1


async def test_the_password_is_stored_as_an_argon2_hash(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    async with transaction(database_url) as session:
        rows = (await session.execute(text("SELECT * FROM users"))).all()
    [stored] = rows
    assert PASSWORD not in repr(tuple(stored))
    user = await user_by_email(database_url, "csm@provider.example")
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")


async def test_two_users_with_the_same_password_get_different_hashes(database_url: str) -> None:
    one = await add_user(database_url, email="a@provider.example", role=Role.csm, password=PASSWORD)
    two = await add_user(database_url, email="b@provider.example", role=Role.csm, password=PASSWORD)
    assert one.password_hash != two.password_hash


async def test_check_password(database_url: str) -> None:
    user = await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    right = await check_password(database_url, "csm@provider.example", PASSWORD)
    assert right is not None and right.id == user.id
    assert await check_password(database_url, "CSM@provider.example", PASSWORD) is not None
    assert await check_password(database_url, "csm@provider.example", PASSWORD + "!") is None
    assert await check_password(database_url, "csm@provider.example", PASSWORD.upper()) is None
    assert await check_password(database_url, "csm@provider.example", "") is None
    assert await check_password(database_url, "nobody@provider.example", PASSWORD) is None


async def disable(url: str, email: str) -> None:
    async with transaction(url) as session:
        await session.execute(update(User).where(User.email == email).values(disabled=True))


async def test_a_disabled_user_cannot_sign_in(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    await disable(database_url, "csm@provider.example")
    assert await check_password(database_url, "csm@provider.example", PASSWORD) is None


# -- API tokens ----------------------------------------------------------------------------------------------------


async def test_a_token_finds_its_user(database_url: str) -> None:
    user = await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "CSM@provider.example")
    found = await user_for_token(database_url, token)
    assert found is not None and found.id == user.id and found.email == "csm@provider.example"


async def test_each_token_is_new_and_separate(database_url: str) -> None:
    one = await add_user(database_url, email="a@provider.example", role=Role.csm, password=PASSWORD)
    two = await add_user(database_url, email="b@provider.example", role=Role.reviewer, password=PASSWORD)
    first = await create_token(database_url, "a@provider.example")
    second = await create_token(database_url, "a@provider.example")
    third = await create_token(database_url, "b@provider.example")
    assert len({first, second, third}) == 3
    for token, owner in [(first, one), (second, one), (third, two)]:
        found = await user_for_token(database_url, token)
        assert found is not None and found.id == owner.id


async def test_the_token_is_not_stored_in_plain_text(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example")
    async with transaction(database_url) as session:
        rows = (await session.execute(text("SELECT * FROM api_tokens"))).all()
    assert len(rows) == 1
    dump = repr(tuple(rows[0]))
    assert token not in dump
    assert token.removeprefix("enr_")[:16] not in dump


async def test_a_token_for_an_unknown_user_is_refused(database_url: str) -> None:
    with pytest.raises(UserError, match="no user"):
        await create_token(database_url, "nobody@provider.example")


@pytest.mark.parametrize("token", ["", "enr_", "enr_unknown", "Bearer enr_x", "x" * 300])
async def test_an_unknown_token_finds_nobody(database_url: str, token: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    await create_token(database_url, "csm@provider.example")
    assert await user_for_token(database_url, token) is None


async def test_a_slightly_wrong_token_finds_nobody(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example")
    assert await user_for_token(database_url, token[:-1]) is None
    assert await user_for_token(database_url, token + "A") is None
    assert await user_for_token(database_url, token.upper()) is None


async def test_a_revoked_token_finds_nobody(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example")
    assert await user_for_token(database_url, token) is not None
    async with transaction(database_url) as session:
        await session.execute(update(ApiToken).values(revoked_at=now()))
    assert await user_for_token(database_url, token) is None


async def test_revoking_one_token_leaves_the_others(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    await create_token(database_url, "csm@provider.example")
    first_id = await _only_token_id(database_url)
    keep = await create_token(database_url, "csm@provider.example")
    async with transaction(database_url) as session:
        await session.execute(update(ApiToken).where(ApiToken.id == first_id).values(revoked_at=now()))
    assert await user_for_token(database_url, keep) is not None


async def _only_token_id(url: str) -> str:
    async with transaction(url) as session:
        [row] = (await session.execute(text("SELECT id FROM api_tokens"))).all()
    return str(row[0])


async def test_an_expired_token_finds_nobody(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example")
    async with transaction(database_url) as session:
        await session.execute(update(ApiToken).values(expires_at=now() - timedelta(seconds=1)))
    assert await user_for_token(database_url, token) is None


async def test_a_token_with_a_future_expiry_still_works(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example", expires_at=now() + timedelta(hours=1))
    assert await user_for_token(database_url, token) is not None


async def test_a_token_created_already_expired_finds_nobody(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example", expires_at=now() - timedelta(minutes=1))
    assert await user_for_token(database_url, token) is None


async def test_a_disabled_users_token_finds_nobody(database_url: str) -> None:
    await add_user(database_url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    token = await create_token(database_url, "csm@provider.example")
    await disable(database_url, "csm@provider.example")
    assert await user_for_token(database_url, token) is None
