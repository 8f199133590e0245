"""Changes to a member account from the portal, each a page that asks first and takes an audit note.

Add users purchased, switch Display Users Purchased and change the service end date (admin, csm, sales);
suspend, reactivate and delete (admin, reviewer; delete only once Suspended): the access table's
`accounts.change` and `accounts.suspend`, as in the API. Each goes through the account service to
MemberAccountWorkflow: the portal writes nothing itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.models import AccountView
from starter.deps import AccountReaderDep, AccountServiceDep, actor_of
from starter.portal.allowed_changes import BY_PATH, Change, refusal_of
from starter.portal.common import (
    FIELD_LABELS,
    PortalRoute,
    form_text,
    page,
    redirect,
    refusal,
)
from starter.portal.session import PortalAccountEditor, PortalAccountManager
from starter.services.errors import Conflict, InvalidInput, Unavailable

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
LABELS = {**FIELD_LABELS, "add": "Users to add", "body": "The change"}
FORM_ORDER = ["add", "service_end_date", "display_users_purchased", "audit_note"]


def change_page(
    request: Request,
    view: AccountView,
    change: Change,
    values: dict[str, Any] | None = None,
    *,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {
        "a": view,
        "change": change,
        "values": values or {},
        "errors": errors or {},
        "problem": problem,
        "field_labels": LABELS,
    }
    return page(request, "portal/account_change.html", context, status_code=status)


async def show(request: Request, reader: AccountReaderDep, account_id: str, path: str) -> HTMLResponse:
    view = await reader.get(account_id[:64])
    change = BY_PATH[path]
    reason = refusal_of(view, change)
    if reason is not None:
        return refusal(request, 409, "That cannot be done now", reason)
    values = {"service_end_date": view.service_end_date.isoformat()} if path == "end-date" else {}
    return change_page(request, view, change, values)


async def apply(
    request: Request,
    service: AccountServiceDep,
    account_id: str,
    path: str,
    make: Callable[[AccountView, dict[str, str]], Awaitable[AccountView]],
    done: Callable[[AccountView], str],
) -> Response:
    """Make the change from the posted form; its problems are shown on the same page, next to their fields."""
    view = await service.get(account_id[:64])
    change = BY_PATH[path]
    form = await request.form()
    values = {name: text for name in ("add", "service_end_date", "audit_note") if (text := form_text(form, name))}
    reason = refusal_of(view, change)
    if reason is not None:
        return change_page(request, view, change, values, problem=reason, status=409)
    try:
        changed = await make(view, values)
    except InvalidInput as exc:
        errors = sorted(exc.errors, key=lambda e: FORM_ORDER.index(e.field) if e.field in FORM_ORDER else 0)
        return change_page(request, view, change, values, errors={e.field: e.message for e in errors}, status=422)
    except (Conflict, Unavailable) as exc:
        return change_page(request, view, change, values, problem=exc.message, status=exc.status)
    return redirect(done(changed))


def signed_number(text: str | None) -> object:
    """'-100', '−100' or '1,100' as a whole number; anything else as typed (the service names the problem)."""
    raw = (text or "").strip().replace(",", "").replace("−", "-")
    digits = raw.removeprefix("-")
    if digits.isascii() and digits.isdigit() and len(digits) <= 12:
        return -int(digits) if raw.startswith("-") else int(digits)
    return text


def done_at(view: AccountView, done: str, tab: str = "account") -> str:
    return f"/accounts/{view.id}?tab={tab}&done={done}&id={view.id}"


@router.get("/accounts/{account_id}/users-purchased", response_class=HTMLResponse)
async def users_purchased_form(
    request: Request, account_id: str, user: PortalAccountEditor, reader: AccountReaderDep
) -> Response:
    return await show(request, reader, account_id, "users-purchased")


@router.post("/accounts/{account_id}/users-purchased", response_class=HTMLResponse)
async def add_users_purchased(
    request: Request, account_id: str, user: PortalAccountEditor, service: AccountServiceDep
) -> Response:
    async def make(view: AccountView, values: dict[str, str]) -> AccountView:
        add = signed_number(values.get("add"))
        return await service.add_users_purchased(view.id, actor_of(user), add, values.get("audit_note"))

    return await apply(
        request, service, account_id, "users-purchased", make, lambda v: done_at(v, "users_added", "users")
    )


@router.get("/accounts/{account_id}/display", response_class=HTMLResponse)
async def display_form(
    request: Request, account_id: str, user: PortalAccountEditor, reader: AccountReaderDep
) -> Response:
    return await show(request, reader, account_id, "display")


@router.post("/accounts/{account_id}/display", response_class=HTMLResponse)
async def switch_display(
    request: Request, account_id: str, user: PortalAccountEditor, service: AccountServiceDep
) -> Response:
    """The page offers one thing: switch it the other way (so there is no "no change" to refuse)."""

    async def make(view: AccountView, values: dict[str, str]) -> AccountView:
        switched = "no" if view.display_users_purchased else "yes"
        changes = {"display_users_purchased": switched, "audit_note": values.get("audit_note")}
        return await service.edit(view.id, actor_of(user), changes)

    def done(view: AccountView) -> str:
        return done_at(view, "display_on" if view.display_users_purchased else "display_off", "users")

    return await apply(request, service, account_id, "display", make, done)


@router.get("/accounts/{account_id}/end-date", response_class=HTMLResponse)
async def end_date_form(
    request: Request, account_id: str, user: PortalAccountEditor, reader: AccountReaderDep
) -> Response:
    return await show(request, reader, account_id, "end-date")


@router.post("/accounts/{account_id}/end-date", response_class=HTMLResponse)
async def change_end_date(
    request: Request, account_id: str, user: PortalAccountEditor, service: AccountServiceDep
) -> Response:
    async def make(view: AccountView, values: dict[str, str]) -> AccountView:
        changes = {"service_end_date": values.get("service_end_date", ""), "audit_note": values.get("audit_note")}
        return await service.edit(view.id, actor_of(user), changes)

    return await apply(request, service, account_id, "end-date", make, lambda v: done_at(v, "end_date"))


@router.get("/accounts/{account_id}/suspend", response_class=HTMLResponse)
async def suspend_form(
    request: Request, account_id: str, user: PortalAccountManager, reader: AccountReaderDep
) -> Response:
    return await show(request, reader, account_id, "suspend")


@router.post("/accounts/{account_id}/suspend", response_class=HTMLResponse)
async def suspend(
    request: Request, account_id: str, user: PortalAccountManager, service: AccountServiceDep
) -> Response:
    async def make(view: AccountView, values: dict[str, str]) -> AccountView:
        return await service.suspend(view.id, actor_of(user), values.get("audit_note"))

    return await apply(request, service, account_id, "suspend", make, lambda v: done_at(v, "suspended"))


@router.get("/accounts/{account_id}/reactivate", response_class=HTMLResponse)
async def reactivate_form(
    request: Request, account_id: str, user: PortalAccountManager, reader: AccountReaderDep
) -> Response:
    return await show(request, reader, account_id, "reactivate")


@router.post("/accounts/{account_id}/reactivate", response_class=HTMLResponse)
async def reactivate(
    request: Request, account_id: str, user: PortalAccountManager, service: AccountServiceDep
) -> Response:
    async def make(view: AccountView, values: dict[str, str]) -> AccountView:
        return await service.reactivate(view.id, actor_of(user), values.get("audit_note"))

    return await apply(request, service, account_id, "reactivate", make, lambda v: done_at(v, "reactivated"))


@router.get("/accounts/{account_id}/delete", response_class=HTMLResponse)
async def delete_form(
    request: Request, account_id: str, user: PortalAccountManager, reader: AccountReaderDep
) -> Response:
    return await show(request, reader, account_id, "delete")


@router.post("/accounts/{account_id}/delete", response_class=HTMLResponse)
async def delete(request: Request, account_id: str, user: PortalAccountManager, service: AccountServiceDep) -> Response:
    async def make(view: AccountView, values: dict[str, str]) -> AccountView:
        return await service.delete(view.id, actor_of(user), values.get("audit_note"))

    return await apply(request, service, account_id, "delete", make, lambda v: f"/accounts?done=deleted&id={v.id}")
