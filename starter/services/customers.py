"""A reseller's customers as its partner sees them: the roll-up with the users totalled across every customer, and
the customers page by page for the CSV export. Store reads only, so both work while Temporal is down.

Who may ask is `domain.access.may_see_rollup` (staff; the reseller's own users): anyone else, an id that does
not exist and an account that is not a reseller's all get the same `NotFound`, so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict

from pydantic import BaseModel, Field

from domain.access import Viewer, may_see_rollup
from domain.models import AccountView, MemberType
from starter.services.accounts import AccountReader, AccountSummary, Rollup
from starter.services.errors import NotFound
from store import accounts as store
from store.paging import MAX_PAGE


class UsageTotals(BaseModel):
    """Users across the reseller's customers (not Deleted), added up by the database."""

    customers: int = Field(description="Customers counted (every one not Deleted, on every page).")
    customers_displaying_purchased: int = Field(
        description="Customers that display users purchased; the others are pay-as-you-go."
    )
    customers_not_reported: int = Field(description="Customers whose usage was never reported (counted as 0).")
    users_purchased: int = Field(description="Users purchased, over the customers that display it.")
    users_existing: int = Field(description="Existing users, over every customer.")
    users_available: int = Field(
        description="Purchased less existing, customer by customer (never below 0), over those that display it."
    )
    users_over: int = Field(description="Existing users beyond what they purchased, over those that display it.")


class CustomersRollup(Rollup):
    """The roll-up (one page of customers) and the totals of all its customers."""

    totals: UsageTotals


def _not_found(account_id: str) -> NotFound:
    return NotFound(f"No reseller account has the id {account_id}.")


async def visible_reseller(reader: AccountReader, viewer: Viewer, account_id: str) -> AccountView:
    """The reseller account whose customers `viewer` asks about; the same 404 for an account they may not see,
    one that does not exist and one that is not a reseller's."""
    if not may_see_rollup(viewer, account_id):
        raise _not_found(account_id)
    try:
        reseller = await reader.get(account_id)
    except NotFound:
        raise _not_found(account_id) from None
    if reseller.member_type != MemberType.reseller:
        raise _not_found(account_id)
    return reseller


async def customers_rollup(
    reader: AccountReader, viewer: Viewer, account_id: str, *, limit: int = 50, cursor: str | None = None
) -> CustomersRollup:
    """The roll-up `viewer` may see, with the totals over all of the reseller's customers."""
    reseller = await visible_reseller(reader, viewer, account_id)
    rollup = await reader.rollup(reseller.id, limit=limit, cursor=cursor)
    usage = await store.customer_usage(reader.url, reseller.id)
    return CustomersRollup(**dict(rollup), totals=UsageTotals(**asdict(usage)))


async def customer_pages(
    reader: AccountReader, reseller_account_id: str, *, page_size: int = MAX_PAGE
) -> AsyncIterator[list[tuple[AccountView, AccountSummary]]]:
    """Every customer of the reseller (not Deleted), newest first, a page at a time: keyset pages, so the last
    page costs what the first does and nothing holds all of them at once."""
    cursor: str | None = None
    while True:
        page, cursor = await store.list_accounts(
            reader.url, reseller_account_id=reseller_account_id, exclude_deleted=True, limit=page_size, cursor=cursor
        )
        if page:
            yield [(view, reader.summary_of(view)) for view in page]
        if cursor is None:
            return
