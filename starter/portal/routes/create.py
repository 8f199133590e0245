"""Create New Member Accounts and its Next Steps page."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.models import AccountView, EnrollmentView, MemberType
from domain.settings import Settings
from starter.deps import ServiceDep, SettingsDep, actor_of
from starter.portal.common import (
    ERROR_TARGETS,
    PortalRoute,
    account_fields_of,
    errors_by_field,
    form_text,
    page,
    redirect,
)
from starter.portal.partners import PortalEnroller, partner_account
from starter.services.enrollments import PARTNER_DUPLICATE, PartnerRefused, check_partner, visible_enrollment
from starter.services.errors import Conflict, InvalidInput, Unavailable
from store import enrollments as enrollment_store
from store.tables import User

router = APIRouter(include_in_schema=False, route_class=PortalRoute)


def account_form(
    request: Request,
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    problem: str | None = None,
    holder: str | None = None,
    status: int = 200,
    partner: AccountView | None = None,
) -> HTMLResponse:
    context = {
        "partner": partner,
        "values": values,
        "errors": errors,
        "error_targets": ERROR_TARGETS,
        "problem": problem,
        "holder": holder,
    }
    return page(request, "portal/create.html", context, status_code=status)


async def partner_of(settings: Settings, user: User) -> AccountView | None:
    """A partner's own reseller account, once its rules allow it to create at all (`PartnerRefused`, shown as
    a refusal page naming the rule: a suspended reseller is told so); None for staff."""
    await check_partner(settings.effective_database_url, user, MemberType.customer.value, None)
    return await partner_account(settings, user)


@router.get("/accounts/new", response_class=HTMLResponse)
async def new_account(request: Request, user: PortalEnroller, settings: SettingsDep) -> Response:
    partner = await partner_of(settings, user)
    return account_form(request, {"idempotency_key": secrets.token_urlsafe(16)}, {}, partner=partner)


@router.post("/accounts/new", response_class=HTMLResponse)
async def create_account(
    request: Request, user: PortalEnroller, service: ServiceDep, settings: SettingsDep
) -> Response:
    partner = await partner_of(settings, user)
    form = await request.form()
    raw = account_fields_of(form)
    if partner is not None:
        # Fixed on the page: a customer of the partner's own account (a forged value is refused by the service).
        raw.setdefault("member_type", MemberType.customer.value)
        raw.setdefault("reseller_account_id", partner.id)
    # One key per form shown: a double click or a resubmitted page finds the enrollment it already created.
    key = form_text(form, "idempotency_key")
    key = key if key and 8 <= len(key) <= 64 else secrets.token_urlsafe(16)
    values = {**raw, "idempotency_key": key}
    try:
        view, _ = await service.create(
            raw, actor_of(user), user_id=user.id, idempotency_key=f"portal:{key}", viewer=user
        )
    except InvalidInput as exc:
        return account_form(request, values, errors_by_field(exc.errors), status=422, partner=partner)
    except Conflict as exc:
        holder = await enrollment_store.find_claim(settings.effective_database_url, raw.get("organization_name", ""))
        if holder is not None and partner is not None and exc.message == PARTNER_DUPLICATE:
            holder = None  # another reseller's, or a direct customer's: not linked for a partner
        return account_form(request, values, {}, problem=exc.message, holder=holder, status=409, partner=partner)
    except (PartnerRefused, Unavailable) as exc:  # Unavailable: a retry finds an enrollment that did start
        return account_form(request, values, {}, problem=exc.message, status=exc.status, partner=partner)
    return redirect(f"/enrollments/{view.id}/next-steps")


def schedule_of(view: EnrollmentView, settings: Settings) -> tuple[datetime, list[datetime], datetime]:
    """(invited at, reminder dates, deadline): reminders go out only while the form is still due."""
    invited = view.invitation_sent_at or view.created_at
    deadline = view.expires_at or invited + settings.enrollment_ttl
    return invited, [invited + o for o in settings.reminders if invited + o < deadline], deadline


@router.get("/enrollments/{enrollment_id}/next-steps", response_class=HTMLResponse)
async def next_steps(request: Request, enrollment_id: str, user: PortalEnroller, settings: SettingsDep) -> Response:
    view = await visible_enrollment(settings.effective_database_url, user, enrollment_id)
    invited, reminders, deadline = schedule_of(view, settings)
    context = {"e": view, "invited": invited, "reminders": reminders, "deadline": deadline}
    return page(request, "portal/next_steps.html", context)
