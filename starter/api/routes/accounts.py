"""/api/accounts: member accounts, their Account Summary, and changes through MemberAccountWorkflow.

Staff see every account; a customer user sees only its own account; a reseller user its own account and
the customers it sold (their `reseller_account_id` is the reseller's account), and its own roll-up. Anyone
else's account is answered 404, as if it did not exist. The portal asks the same functions.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from domain.access import STAFF
from domain.models import AccountStatus, AccountView, MemberType, Role
from starter.api.body import JsonBodyRoute
from starter.api.responses import BODY_RESPONSES, CHANGE_RESPONSES
from starter.api.schemas import AccountEdit, AuditNote, Detail, UsageCount, UsersPurchasedOrder
from starter.customers_csv import COLUMNS, customers_csv
from starter.deps import (
    AccountEditor,
    AccountManager,
    AccountReaderDep,
    AccountServiceDep,
    CurrentUser,
    Metering,
    actor_of,
    visible,
)
from starter.services.accounts import AccountSummary
from starter.services.customers import CustomersRollup, customers_rollup, visible_reseller
from starter.services.errors import NotFound

router = APIRouter(prefix="/api/accounts", tags=["accounts"], route_class=JsonBodyRoute)
BODY_CHANGE_RESPONSES = {**BODY_RESPONSES, **CHANGE_RESPONSES}


class AccountPage(BaseModel):
    items: list[AccountView]
    next_cursor: str | None


PARTNER = {"x-partner": True}
"""The OpenAPI mark of an operation a reseller's (partner's) token may call."""


@router.get("", response_model=AccountPage, openapi_extra=PARTNER)
async def list_accounts(
    user: CurrentUser,
    reader: AccountReaderDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    status: AccountStatus | None = None,
    member_type: MemberType | None = None,
    reseller_account_id: Annotated[str | None, Query(max_length=64)] = None,
    ends_after: date | None = None,
    ends_before: date | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> AccountPage:
    """Partners (reseller tokens) may call this. Newest first; `q` matches part of the organization name. A
    customer or manufacturer user gets its own account alone; a reseller user only the customers it sold (its
    `reseller_account_id` is then always its own account). Staff filter by reseller with `reseller_account_id`."""
    if user.role not in STAFF and not user.account_id:
        return AccountPage(items=[], next_cursor=None)
    if user.role in (Role.customer, Role.manufacturer):
        try:
            account = await reader.get(user.account_id or "")
        except NotFound:
            return AccountPage(items=[], next_cursor=None)
        return AccountPage(items=[account.model_copy(update={"timeline": []})], next_cursor=None)
    if user.role == Role.reseller:
        reseller_account_id = user.account_id
    elif user.role not in STAFF:
        return AccountPage(items=[], next_cursor=None)
    items, next_cursor = await reader.list(
        q=q,
        status=status,
        member_type=member_type,
        reseller_account_id=reseller_account_id,
        ends_after=ends_after,
        ends_before=ends_before,
        limit=limit,
        cursor=cursor,
    )
    return AccountPage(items=items, next_cursor=next_cursor)


@router.get("/{account_id}", response_model=AccountView, responses={404: {"model": Detail}}, openapi_extra=PARTNER)
async def get_account(account_id: str, user: CurrentUser, reader: AccountReaderDep) -> AccountView:
    """Partners (reseller tokens) may call this. The account (a reseller's own, or a customer it sold); customer
    and reseller users get it without the timeline (staff audit notes stay internal)."""
    account = await visible(reader, user, account_id)
    if user.role not in STAFF:
        return account.model_copy(update={"timeline": []})
    return account


@router.get(
    "/{account_id}/summary", response_model=AccountSummary, responses={404: {"model": Detail}}, openapi_extra=PARTNER
)
async def account_summary(account_id: str, user: CurrentUser, reader: AccountReaderDep) -> AccountSummary:
    """Partners (reseller tokens) may call this. Users purchased, existing and available of the account (a
    reseller's own, or a customer it sold; purchased/available null unless the account displays them)."""
    return reader.summary_of(await visible(reader, user, account_id))


@router.get(
    "/{account_id}/rollup", response_model=CustomersRollup, responses={404: {"model": Detail}}, openapi_extra=PARTNER
)
async def reseller_rollup(
    account_id: str,
    user: CurrentUser,
    reader: AccountReaderDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CustomersRollup:
    """Partners (reseller tokens) may call this. A reseller's customers (its own, for a partner; newest
    first, not Deleted; each with users purchased, existing and available) and its counts: customers enrolled,
    enrollments pending (New, Pending Review, In Review) that name it, customers expiring within 30 days, and
    `totals`, the users across all its customers (not just this page). Staff may ask for any reseller; anyone
    else, and an account that is not a reseller's, gets 404."""
    return await customers_rollup(reader, user, account_id, limit=limit, cursor=cursor)


@router.get(
    "/{account_id}/customers.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": ", ".join(COLUMNS) + "; one row per customer"},
        404: {"model": Detail},
    },
    openapi_extra=PARTNER,
)
async def export_customers(account_id: str, user: CurrentUser, reader: AccountReaderDep) -> StreamingResponse:
    """Partners (reseller tokens) may call this. Every customer of the reseller (its own, for a partner; not
    Deleted, newest first) as CSV, streamed: the roll-up's figures, empty where a customer does not display
    users purchased or never reported usage. Same access as the roll-up: 404 for anyone else."""
    reseller = await visible_reseller(reader, user, account_id)
    return customers_csv(reader, reseller.id)


@router.post("/{account_id}/users-purchased", response_model=AccountView, responses=BODY_CHANGE_RESPONSES)
async def add_users_purchased(
    account_id: str, body: UsersPurchasedOrder, user: AccountEditor, service: AccountServiceDep
) -> AccountView:
    """Add an order to the cumulative total (`{"add": 100, "audit_note": ...}`: 1,000 + 100 = 1,100)."""
    return await service.add_users_purchased(account_id, actor_of(user), body.add, body.audit_note)


@router.post("/{account_id}/usage", response_model=AccountView, responses=BODY_CHANGE_RESPONSES)
async def report_usage(account_id: str, body: UsageCount, user: Metering, service: AccountServiceDep) -> AccountView:
    """Existing users as metered (`{"users_existing": n, "reported_at": optional ISO time}`)."""
    return await service.report_usage(account_id, body.users_existing, body.reported_at)


@router.patch("/{account_id}", response_model=AccountView, responses=BODY_CHANGE_RESPONSES)
async def edit_account(
    account_id: str, body: AccountEdit, user: AccountEditor, service: AccountServiceDep
) -> AccountView:
    """Change the service end date (extending it revives an Expired account) or Display Users Purchased."""
    return await service.edit(account_id, actor_of(user), body.model_dump(exclude_unset=True))


@router.post("/{account_id}/suspend", response_model=AccountView, responses=BODY_CHANGE_RESPONSES)
async def suspend(account_id: str, body: AuditNote, user: AccountManager, service: AccountServiceDep) -> AccountView:
    return await service.suspend(account_id, actor_of(user), body.audit_note)


@router.post("/{account_id}/reactivate", response_model=AccountView, responses=BODY_CHANGE_RESPONSES)
async def reactivate(account_id: str, body: AuditNote, user: AccountManager, service: AccountServiceDep) -> AccountView:
    return await service.reactivate(account_id, actor_of(user), body.audit_note)


@router.delete("/{account_id}", response_model=AccountView, responses=CHANGE_RESPONSES)
async def delete_account(
    account_id: str,
    user: AccountManager,
    service: AccountServiceDep,
    audit_note: Annotated[str, Query(max_length=1000)],
) -> AccountView:
    """Only a Suspended account can be deleted."""
    return await service.delete(account_id, actor_of(user), audit_note)
