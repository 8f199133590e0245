"""A reseller's customers for its partner, in the store (SQLite and PostgreSQL): the users totalled by the
database across every customer, and the reseller's administrators who receive its customers' service-end
notices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from domain.models import AccountStatus, AccountView, MemberType, RecordAccount, Role
from store import users
from store.accounts import CustomerUsage, customer_usage, record_account, reseller_recipients
from store.db import transaction
from store.tables import User
from tests.support import account_view

PASSWORD = "a long enough password"


async def put(url: str, view: AccountView, n: int = 1) -> None:
    await record_account(url, RecordAccount(view=view, event_key=f"account-{view.id}/event-{n}", event=None))


def reseller(account_id: str, name: str, **changes: object) -> AccountView:
    return account_view(
        id=account_id,
        enrollment_id=f"e-{account_id}",
        organization_name=name,
        member_type=MemberType.reseller,
        **changes,
    )


async def administrator(url: str, email: str, account_id: str, role: Role = Role.reseller) -> User:
    return await users.add_user(url, email=email, role=role, password=PASSWORD, account_id=account_id)


def customer(n: int, reseller: str | None = "r1", **changes: object) -> AccountView:
    created = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    return account_view(
        id=f"c{n}",
        enrollment_id=f"e{n}",
        organization_name=f"Customer {n}",
        reseller_account_id=reseller,
        created_at=created,
        **changes,
    )


async def test_the_totals_are_added_up_customer_by_customer(database_url: str) -> None:
    url = database_url
    await put(url, reseller("r1", "Vertex", display_users_purchased=False, users_purchased=None))
    assert await customer_usage(url, "r1") == CustomerUsage(0, 0, 0, 0, 0, 0, 0), "no customers: all zero"

    await put(url, customer(1, users_purchased=1000, users_existing=400))  # 600 available
    await put(url, customer(2, users_purchased=100, users_existing=150))  # 50 over, 0 available
    await put(url, customer(3, display_users_purchased=False, users_purchased=None, users_existing=30))  # paygo
    await put(url, customer(4, users_purchased=200, users_existing=None))  # never reported: 200 available
    await put(url, customer(5, users_purchased=999, users_existing=1, status=AccountStatus.deleted))  # not counted
    await put(url, customer(6, reseller="r2", users_purchased=5000, users_existing=1))  # another reseller's
    await put(url, customer(7, reseller=None, users_purchased=5000, users_existing=1))  # sold directly
    await put(url, customer(8, users_purchased=50, users_existing=50, status=AccountStatus.suspended))  # counted

    assert await customer_usage(url, "r1") == CustomerUsage(
        customers=5,
        customers_displaying_purchased=4,
        customers_not_reported=1,
        users_purchased=1000 + 100 + 200 + 50,
        users_existing=400 + 150 + 30 + 50,
        users_available=600 + 0 + 200 + 0,
        users_over=50,
    )
    assert (await customer_usage(url, "r2")).users_purchased == 5000
    assert await customer_usage(url, "nobody") == CustomerUsage(0, 0, 0, 0, 0, 0, 0)


async def test_the_notices_go_to_the_resellers_active_administrators_only(database_url: str) -> None:
    url = database_url
    vertex = reseller("r1", "Vertex")
    await put(url, vertex)
    await put(url, reseller("r2", "Other"))
    await put(url, customer(1))
    await administrator(url, "Zed@Vertex.example", "r1")
    await administrator(url, "amy@vertex.example", "r1")
    disabled = await administrator(url, "off@vertex.example", "r1")
    invited = await administrator(url, "new@vertex.example", "r1")
    await administrator(url, "sam@other.example", "r2")
    await administrator(url, "pat@acme.example", "c1", Role.customer)
    async with transaction(url) as session:
        await session.execute(update(User).where(User.id == disabled.id).values(disabled=True))
        await session.execute(update(User).where(User.id == invited.id).values(invitation="invited", password_hash=""))

    assert await reseller_recipients(url, "r1") == ["amy@vertex.example", "zed@vertex.example"]
    assert await reseller_recipients(url, "r2") == ["sam@other.example"]
    assert await reseller_recipients(url, "c1") == [], "a customer account is no reseller"
    assert await reseller_recipients(url, "missing") == []

    await put(url, vertex.model_copy(update={"status": AccountStatus.deleted}), 2)
    assert await reseller_recipients(url, "r1") == [], "a Deleted reseller is told nothing"
