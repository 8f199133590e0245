"""`/account/administrators` (a member administrator: their own account) and `/accounts/{id}/administrators`
(staff holding `administrators.manage`: any account; a member administrator: only their own, any other id is
404 exactly like an unknown one): a member account's administrators, and inviting, resending, disabling,
enabling, unlocking them and resetting their second factor.

The rules are the API's (`starter.deps.manageable`, `domain.access.may_manage_administrators`); the changes go
through the same services. After each change the page says what was done (`?done=<name>&who=<user id>`, a
fixed sentence filled in from the store, never from the URL); a refusal (the last active administrator) is
shown at the top of the page itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from domain.access import MEMBERS, Permission
from domain.models import AccountView, AdministratorStatus, Role
from domain.rules import check_email
from starter.deps import (
    AccountReaderDep,
    AdministratorChangesDep,
    AdministratorServiceDep,
    SettingsDep,
    actor_of,
    manageable,
)
from starter.portal.common import PortalRoute, form_text, page, redirect, refusal
from starter.portal.session import require_portal
from starter.services.administrator_changes import AdministratorChanges
from starter.services.errors import Conflict, NotFound
from store.administrators import Administrator
from store.tables import User
from store.users import UserError

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
PortalAdministrators = Annotated[User, require_portal(Permission.administrators_manage)]
OWN_PAGE = "/account/administrators"
LABELS = {"email": "Email address"}
ACTIVE = frozenset({AdministratorStatus.active, AdministratorStatus.locked})
"""Activated and not disabled: they can manage the account (a locked one once the lock lifts)."""

# `?done=` names one of these fixed sentences; `{who}` becomes the administrator's email, read from the store.
DONE = {
    "invited": "An invitation is on its way to {who}. They become an administrator once they activate it.",
    "resent": "The invitation was sent again to {who} with a new link. The old link no longer works and the "
    "deadline starts again.",
    "disabled": "{who} is disabled: they cannot sign in, and their sessions and API tokens stop working.",
    "enabled": "{who} is enabled again and can sign in.",
    "unlocked": "{who} is unlocked and can sign in again.",
    "second_factor_reset": "The second factor of {who} is reset: they set up a new one at their next sign-in.",
}


def is_member(user: User) -> bool:
    return user.role in MEMBERS


def page_of(user: User, account_id: str) -> str:
    """Where this account's administrators are listed for `user`: their own page, or the account's."""
    if is_member(user) and user.account_id == account_id:
        return OWN_PAGE
    return f"/accounts/{account_id}/administrators"


def member_links(user: User) -> list[tuple[str, str]]:
    """The Links pane of a member administrator: their own pages."""
    links = [(f"/accounts/{user.account_id}", "Account Summary"), (OWN_PAGE, "Administrators")]
    if user.role == Role.reseller:
        links.insert(0, (f"/accounts/{user.account_id}/customers", "Your customers"))
    return links


async def done_message(request: Request, changes: AdministratorChanges, account_id: str) -> str | None:
    template = DONE.get(request.query_params.get("done", ""))
    if template is None:
        return None
    who = "The administrator"
    user_id = request.query_params.get("who", "")
    if 0 < len(user_id) <= 64:
        with contextlib.suppress(NotFound):
            who = (await changes.get(account_id, user_id)).email
    return template.replace("{who}", who)


async def administrators_page(
    request: Request,
    user: User,
    account: AccountView,
    changes: AdministratorChanges,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    people = await changes.of_account(account.id)
    active = [a for a in people if a.status in ACTIVE]
    context: dict[str, object] = {
        "a": account,
        "people": people,
        "active_count": len(active),
        "values": values or {},
        "errors": errors or {},
        "field_labels": LABELS,
        "problem": problem,
        "message": None if errors or problem else await done_message(request, changes, account.id),
        "member_view": is_member(user),
    }
    if is_member(user):
        context["links"] = member_links(user)
    return page(request, "portal/administrators.html", context, status_code=status)


@router.get("/account/administrators", response_class=HTMLResponse)
async def own_administrators(
    request: Request, user: PortalAdministrators, reader: AccountReaderDep, changes: AdministratorChangesDep
) -> Response:
    if not is_member(user) or not user.account_id:
        return refusal(
            request,
            404,
            "Not found",
            "Staff users have no member account of their own: find the member account and open its Administrators.",
        )
    account = await manageable(reader, user, user.account_id)
    return await administrators_page(request, user, account, changes)


async def managed_account(account_id: str, user: PortalAdministrators, reader: AccountReaderDep) -> AccountView:
    """The account whose administrators the page is about, if `user` may manage them; else the 404 page, before
    the form is read or Temporal asked."""
    return await manageable(reader, user, account_id[:64])


PortalManagedAccount = Annotated[AccountView, Depends(managed_account)]


@router.get("/accounts/{account_id}/administrators", response_class=HTMLResponse)
async def account_administrators(
    request: Request, account: PortalManagedAccount, user: PortalAdministrators, changes: AdministratorChangesDep
) -> Response:
    return await administrators_page(request, user, account, changes)


@router.post("/accounts/{account_id}/administrators", response_class=HTMLResponse)
async def invite(
    request: Request,
    account: PortalManagedAccount,
    user: PortalAdministrators,
    changes: AdministratorChangesDep,
    service: AdministratorServiceDep,
    settings: SettingsDep,
) -> Response:
    form = await request.form()
    values = {"email": (form_text(form, "email") or "").strip()[:320]}
    email, error = check_email(values["email"], settings.free_mail)
    if error is not None or email is None:
        errors = {"email": error or "is required"}
        return await administrators_page(request, user, account, changes, values=values, errors=errors, status=422)
    try:
        invited = await service.invite(account, email, actor_of(user))
    except (Conflict, UserError) as exc:
        problem = exc.message if isinstance(exc, Conflict) else str(exc)
        return await administrators_page(request, user, account, changes, values=values, problem=problem, status=409)
    return redirect(f"{page_of(user, account.id)}?done=invited&who={invited.user_id}")


async def _then(
    request: Request,
    user: User,
    account: AccountView,
    changes: AdministratorChanges,
    done: str,
    change: Awaitable[Administrator],
) -> Response:
    """Make the change, then back to the list saying what was done; or the list saying why it could not be."""
    try:
        changed = await change
    except Conflict as exc:
        return await administrators_page(request, user, account, changes, problem=exc.message, status=409)
    return redirect(f"{page_of(user, account.id)}?done={done}&who={changed.user_id}")


@router.post("/accounts/{account_id}/administrators/{user_id}/resend", response_class=HTMLResponse)
async def resend(
    request: Request,
    user_id: str,
    account: PortalManagedAccount,
    user: PortalAdministrators,
    changes: AdministratorChangesDep,
    service: AdministratorServiceDep,
) -> Response:
    resent = service.resend(account.id, user_id[:64], actor_of(user))
    return await _then(request, user, account, changes, "resent", resent)


@router.post("/accounts/{account_id}/administrators/{user_id}/disable", response_class=HTMLResponse)
async def disable(
    request: Request,
    user_id: str,
    account: PortalManagedAccount,
    user: PortalAdministrators,
    changes: AdministratorChangesDep,
) -> Response:
    disabled = changes.set_disabled(account.id, user_id[:64], True, actor_of(user))
    return await _then(request, user, account, changes, "disabled", disabled)


@router.post("/accounts/{account_id}/administrators/{user_id}/enable", response_class=HTMLResponse)
async def enable(
    request: Request,
    user_id: str,
    account: PortalManagedAccount,
    user: PortalAdministrators,
    changes: AdministratorChangesDep,
) -> Response:
    enabled = changes.set_disabled(account.id, user_id[:64], False, actor_of(user))
    return await _then(request, user, account, changes, "enabled", enabled)


@router.post("/accounts/{account_id}/administrators/{user_id}/unlock", response_class=HTMLResponse)
async def unlock(
    request: Request,
    user_id: str,
    account: PortalManagedAccount,
    user: PortalAdministrators,
    changes: AdministratorChangesDep,
) -> Response:
    unlocked = changes.unlock(account.id, user_id[:64], actor_of(user))
    return await _then(request, user, account, changes, "unlocked", unlocked)


@router.post("/accounts/{account_id}/administrators/{user_id}/reset-second-factor", response_class=HTMLResponse)
async def reset_second_factor(
    request: Request,
    user_id: str,
    account: PortalManagedAccount,
    user: PortalAdministrators,
    changes: AdministratorChangesDep,
) -> Response:
    reset = changes.reset_second_factor(account.id, user_id[:64], actor_of(user))
    return await _then(request, user, account, changes, "second_factor_reset", reset)
