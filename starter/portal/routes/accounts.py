"""Member accounts in the portal: Find Member Accounts, one account's tabs, the Account Summary, the roll-up.

Staff see every account (Find Member Accounts, and tabs Account, Contacts, Users, Audit notes). A customer
user sees only its own Account Summary; a reseller user its roll-up and the summaries of its own account and
of the customers it sold. Anything else is answered 404, by the same rules as the API (`may_see`,
`may_see_rollup`). Every page reads the store only, so it works while Temporal is down.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from domain.access import STAFF, may_manage_administrators
from domain.models import AccountStatus, AccountView, MemberType, Role
from domain.settings import Settings
from starter.customers_csv import customers_csv
from starter.deps import AccountReaderDep, SettingsDep, visible
from starter.portal.allowed_changes import actions_for
from starter.portal.common import PortalRoute, choice, day, page
from starter.portal.session import PortalStaff, PortalUser
from starter.services.accounts import AccountReader
from starter.services.customers import customers_rollup, visible_reseller
from starter.services.errors import NotFound
from store.tables import User
from workflows.names import account_workflow_id

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
PAGE_SIZE = 50
TABS = {"account": "Account", "contacts": "Contacts", "users": "Users", "audit": "Audit notes"}

# `?done=` names one of these fixed sentences, filled in from the account as the store has it.
DONE = {
    "users_added": "{org}: users purchased changed. The total is now {purchased}.",
    "display_on": "{org}: Display Users Purchased is on. The Account Summary shows users purchased, existing and "
    "available.",
    "display_off": "{org}: Display Users Purchased is off. The Account Summary shows existing users only.",
    "end_date": "{org}: the service end date is now {end}. Warnings are set for the new date.",
    "suspended": "{org}: suspended. It can be reactivated, or deleted.",
    "reactivated": "{org}: reactivated. The account is {status}.",
    "deleted": "{org}: the member account is deleted. Its organization name is free for a new enrollment.",
}


async def account_done(request: Request, reader: AccountReader) -> str | None:
    """The status message that `?done=<name>&id=<account>` asks for; never text taken from the URL."""
    template = DONE.get(request.query_params.get("done", ""))
    account_id = request.query_params.get("id", "")
    if template is None or not 0 < len(account_id) <= 64:
        return None
    try:
        view = await reader.get(account_id)
    except NotFound:
        return None
    purchased = f"{view.users_purchased or 0:,}"
    return template.format(
        org=view.organization_name, purchased=purchased, end=day(view.service_end_date), status=view.status.value
    )


def own_links(user: User) -> list[tuple[str, str]]:
    """The Links pane of a member account's administrator (reseller, customer, manufacturer): their own pages."""
    administrators = ("/account/administrators", "Administrators")
    if user.role == Role.reseller:
        return [
            (f"/accounts/{user.account_id}/customers", "Your customers"),
            (f"/accounts/{user.account_id}", "Your Account Summary"),
            administrators,
        ]
    return [(f"/accounts/{user.account_id}", "Account Summary"), administrators]


def day_param(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@router.get("/accounts", response_class=HTMLResponse)
async def find_accounts(request: Request, user: PortalStaff, reader: AccountReaderDep) -> Response:
    params = request.query_params
    filters = {
        "q": (params.get("q") or "").strip()[:200] or None,
        "status": choice(AccountStatus, params.get("status")),
        "member_type": choice(MemberType, params.get("member_type")),
        "reseller_account_id": (params.get("reseller_account_id") or "").strip()[:64] or None,
        "ends_after": day_param(params.get("ends_after")),
        "ends_before": day_param(params.get("ends_before")),
    }
    cursor = (params.get("cursor") or "")[:500] or None
    found, next_cursor = await reader.list(**filters, limit=PAGE_SIZE, cursor=cursor)
    shown = {name: str(value) for name, value in filters.items() if value}

    def link(cursor: str | None = None) -> str:
        """This search's URL, on its first page unless a cursor is given."""
        query = {**shown, **({"cursor": cursor} if cursor else {})}
        return "/accounts" + (f"?{urlencode(query)}" if query else "")

    def link_for_reseller(reseller_account_id: str) -> str:
        """This search narrowed to one reseller's customers, on its first page."""
        return "/accounts?" + urlencode({**shown, "reseller_account_id": reseller_account_id})

    context = {
        "accounts": found,
        "next_cursor": next_cursor,
        "filters": filters,
        "filtered": bool(shown),
        "first_page": cursor is None,
        "link": link,
        "link_for_reseller": link_for_reseller,
        "resellers": await reader.resellers(),
        "account_statuses": list(AccountStatus),
        "message": await account_done(request, reader),
    }
    return page(request, "portal/accounts.html", context)


def temporal_url(settings: Settings, account_id: str) -> str:
    return (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/"
        f"{account_workflow_id(account_id)}"
    )


@router.get("/accounts/{account_id:record}", response_class=HTMLResponse)
async def account(
    request: Request, account_id: str, user: PortalUser, reader: AccountReaderDep, settings: SettingsDep
) -> Response:
    view = await visible(reader, user, account_id[:64])
    context: dict[str, object] = {
        "a": view,
        "summary": reader.summary_of(view),
        "message": await account_done(request, reader),
    }
    if user.role not in STAFF:
        context |= {"links": own_links(user), "reseller_view": user.role == Role.reseller, "staff_view": False}
        return page(request, "portal/account_summary.html", context)
    tab = request.query_params.get("tab", "account")
    context |= {
        "staff_view": True,
        "tab": tab if tab in TABS else "account",
        "tabs": TABS,
        "actions": actions_for(user, view),
        "reseller": await reseller_of(reader, view),
        "temporal_url": temporal_url(settings, view.id),
        "can_manage_administrators": may_manage_administrators(user, view.id),
    }
    return page(request, "portal/account.html", context)


async def reseller_of(reader: AccountReader, view: AccountView) -> AccountView | None:
    if view.reseller_account_id is None:
        return None
    try:
        return await reader.get(view.reseller_account_id)
    except NotFound:
        return None


@router.get("/accounts/{account_id}/customers", response_class=HTMLResponse)
async def customers(request: Request, account_id: str, user: PortalUser, reader: AccountReaderDep) -> Response:
    """A reseller's roll-up: its own users see it as their home page; staff reach it from the account."""
    cursor = (request.query_params.get("cursor") or "")[:500] or None
    rollup = await customers_rollup(reader, user, account_id[:64], limit=PAGE_SIZE, cursor=cursor)
    context: dict[str, object] = {"r": rollup, "first_page": cursor is None, "staff": user.role in STAFF}
    if user.role not in STAFF:
        context["links"] = own_links(user)
    return page(request, "portal/account_customers.html", context)


@router.get("/accounts/{account_id}/customers.csv", response_class=StreamingResponse)
async def customers_export(account_id: str, user: PortalUser, reader: AccountReaderDep) -> StreamingResponse:
    """The roll-up's customers as CSV (the API's `/api/accounts/{id}/customers.csv`): same access as the page."""
    reseller = await visible_reseller(reader, user, account_id[:64])
    return customers_csv(reader, reseller.id)
