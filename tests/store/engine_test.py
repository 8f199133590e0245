"""The store's engines keep bound values (personal data) out of error messages, on SQLite and PostgreSQL."""

from __future__ import annotations

import traceback

import pytest
from sqlalchemy.exc import IntegrityError

from store.db import transaction
from store.paging import now
from store.tables import User

EMAIL = "jordan.private.person@customer.example"


def user(user_id: str) -> User:
    return User(
        id=user_id, email=EMAIL, role="csm", account_id=None, password_hash="x", disabled=False, created_at=now()
    )


async def test_an_integrity_error_does_not_carry_the_values(database_url: str) -> None:
    async with transaction(database_url) as session:
        session.add(user("u1"))
    with pytest.raises(IntegrityError) as caught:
        async with transaction(database_url) as session:
            session.add(user("u2"))  # the same email: unique
    logged = "".join(traceback.format_exception(caught.value))  # what a log line of it would show
    assert "users" in str(caught.value)  # still says what failed
    assert EMAIL not in str(caught.value) and EMAIL not in logged
