"""/admin/users: an admin lists, adds, disables and enables users, and revokes their API tokens.

Every change goes through store.users, which writes it to the audit trail with the admin and their address;
/admin/audit.csv exports the whole trail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from domain.models import MemberType, Role
from domain.rules import check_email, has_control_characters
from domain.settings import Settings
from starter.audit_csv import audit_csv
from starter.deps import SettingsDep, actor_of
from starter.portal.common import PortalRoute, form_text, page, redirect, refusal
from starter.portal.session import PortalAdmin, PortalAuditExporter
from starter.services.errors import NotFound
from store import accounts, audit, users
from store import second_factor as second_factors
from store.tables import User

router = APIRouter(prefix="/admin", include_in_schema=False, route_class=PortalRoute)
LABELS = {"email": "Email address", "role": "Role", "account_id": "Member account", "password": "Initial password"}
ROLES = [
    (Role.admin.value, "Admin", "Everything, including users, API tokens and the audit trail."),
    (Role.csm.value, "CSM", "Creates and changes member accounts and their enrollments."),
    (Role.sales.value, "Sales", "Creates and changes member accounts and their enrollments."),
    (Role.reviewer.value, "Reviewer", "Reviews submitted forms; suspends and reactivates accounts."),
    (Role.reseller.value, "Reseller", "Sees its own reseller account and its customers' (needs the account)."),
    (Role.customer.value, "Customer", "Sees its own member account (needs the account)."),
    (
        Role.manufacturer.value,
        "Manufacturer",
        "Sees its own manufacturer account and uploads its credentials (needs the account).",
    ),
    (Role.mail_events.value, "Mail events", "A service user for the mail provider's webhook: reports bounces only."),
]
DONE = {
    "added": "The user is added. They can sign in with the initial password now.",
    "disabled": "The user is disabled: they cannot sign in, and their API tokens stop working.",
    "enabled": "The user is enabled again.",
    "revoked": "The token is revoked: it stops working at once.",
    "second_factor_reset": "The user's second factor is reset: their sessions ended, and they set up a new one "
    "at their next sign-in.",
}
MAX_PASSWORD = 1000


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


async def users_page(
    request: Request,
    settings: Settings,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    url = settings.effective_database_url
    context = {
        "people": await users.list_users(url),
        "changes": await audit.user_entries(url),
        "roles": ROLES,
        "values": values or {},
        "errors": errors or {},
        "field_labels": LABELS,
        "message": None if errors else _done(request),
    }
    return page(request, "portal/admin_users.html", context, status_code=status)


@router.get("/users", response_class=HTMLResponse)
async def list_users(request: Request, user: PortalAdmin, settings: SettingsDep) -> Response:
    return await users_page(request, settings)


async def check_new_user(settings: Settings, form: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(values to show again, errors by field) of the add-user form; never the password among the values."""
    values = {name: (form_text(form, name) or "").strip() for name in ("email", "role", "account_id")}
    errors: dict[str, str] = {}
    _, problem = check_email(values["email"])
    if problem:
        errors["email"] = problem
    elif await users.user_by_email(settings.effective_database_url, values["email"]) is not None:
        errors["email"] = "is already the email of a user"
    role = values["role"]
    if role not in {r.value for r in Role}:
        errors["role"] = "must be one of " + ", ".join(r.value for r in Role)
    elif role in users.ACCOUNT_ROLES:
        account = await accounts.get_account(settings.effective_database_url, values["account_id"][:64])
        if account is None:
            errors["account_id"] = f"must be the id of the member account this {role} user belongs to"
        elif role == Role.reseller and account.member_type != MemberType.reseller:
            errors["account_id"] = "must be a reseller member account for a reseller user"
        elif role == Role.manufacturer and account.member_type != MemberType.manufacturer:
            errors["account_id"] = "must be a manufacturer member account for a manufacturer user"
    elif values["account_id"]:
        errors["account_id"] = f"must be left empty: a {role} user is not bound to a member account"
    if problem := _weak(form_text(form, "password") or ""):
        errors["password"] = problem
    return values, errors


def _weak(password: str) -> str | None:
    if len(password) < 12 or len(password) > MAX_PASSWORD:
        return f"must be 12 to {MAX_PASSWORD} characters"
    if has_control_characters(password):
        return "must not contain control characters or line breaks"
    return None


@router.post("/users", response_class=HTMLResponse)
async def add_user(request: Request, user: PortalAdmin, settings: SettingsDep) -> Response:
    form = await request.form()
    values, errors = await check_new_user(settings, form)
    if not errors:
        try:
            await users.add_user(
                settings.effective_database_url,
                email=values["email"],
                role=Role(values["role"]),
                password=form_text(form, "password") or "",
                account_id=values["account_id"] or None,
                by=actor_of(user),
            )
        except users.UserError as exc:  # added at the same moment by someone else
            errors["email"] = str(exc)
    if errors:
        return await users_page(request, settings, values=values, errors=errors, status=422)
    return redirect("/admin/users?done=added")


async def _person(settings: Settings, user_id: str) -> User:
    person = await users.user_by_id(settings.effective_database_url, user_id[:32])
    if person is None:
        raise NotFound("There is no user at this address.")
    return person


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def show_user(request: Request, user_id: str, user: PortalAdmin, settings: SettingsDep) -> Response:
    person = await _person(settings, user_id)
    tokens = [token for token, _ in await users.list_tokens(settings.effective_database_url, person.email)]
    url = settings.effective_database_url
    context = {
        "person": person,
        "tokens": tokens,
        "now": datetime.now(UTC),
        "message": _done(request),
        "has_factor": second_factors.has_second_factor(person),
        "codes_left": await second_factors.codes_left(url, person.id),
    }
    return page(request, "portal/admin_user.html", context)


@router.post("/users/{user_id}/second-factor/reset", response_class=HTMLResponse)
async def reset_second_factor(request: Request, user_id: str, user: PortalAdmin, settings: SettingsDep) -> Response:
    """Take another user's second factor off (a lost phone): their sessions end, and they set up a new one at
    their next sign-in. One's own is reset from /me, with a current code."""
    person = await _person(settings, user_id)
    if person.id == user.id:
        return refusal(
            request, 409, "That cannot be done", "Reset your own second factor from your page (Your account)."
        )
    await second_factors.reset(settings.effective_database_url, person.id, by=actor_of(user))
    return redirect(f"/admin/users/{person.id}?done=second_factor_reset")


async def _set_disabled(request: Request, user_id: str, user: User, settings: Settings, disabled: bool) -> Response:
    person = await _person(settings, user_id)
    if disabled and person.id == user.id:
        return refusal(request, 409, "That cannot be done", "You cannot disable yourself: ask another admin.")
    await users.set_disabled(settings.effective_database_url, person.email, disabled, by=actor_of(user))
    return redirect(f"/admin/users?done={'disabled' if disabled else 'enabled'}")


@router.post("/users/{user_id}/disable", response_class=HTMLResponse)
async def disable(request: Request, user_id: str, user: PortalAdmin, settings: SettingsDep) -> Response:
    return await _set_disabled(request, user_id, user, settings, True)


@router.post("/users/{user_id}/enable", response_class=HTMLResponse)
async def enable(request: Request, user_id: str, user: PortalAdmin, settings: SettingsDep) -> Response:
    return await _set_disabled(request, user_id, user, settings, False)


@router.post("/users/{user_id}/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, user_id: str, token_id: str, user: PortalAdmin, settings: SettingsDep) -> Response:
    person = await _person(settings, user_id)
    url = settings.effective_database_url
    if token_id not in {token.id for token, _ in await users.list_tokens(url, person.email)}:
        return refusal(request, 404, "Not found", "This user has no API token with that id.")
    await users.revoke_token(url, token_id, by=actor_of(user))
    return redirect(f"/admin/users/{person.id}?done=revoked")


@router.get("/audit.csv", response_class=StreamingResponse)
async def export_audit(user: PortalAuditExporter, settings: SettingsDep) -> StreamingResponse:
    return audit_csv(settings.effective_database_url)
