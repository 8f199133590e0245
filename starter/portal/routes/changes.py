"""Edit (with an audit note, and the question whether to invite a new contact), Delete and Resend.

Each asks the status machine before it shows its form, and each change goes through the service, which asks
the workflow: the portal writes nothing itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.models import EnrollmentStatus, EnrollmentView
from domain.settings import Settings
from domain.status import EnrollmentAction, enrollment_refusal
from starter.deps import ServiceDep, SettingsDep, actor_of
from starter.portal.common import (
    ERROR_TARGETS,
    PortalRoute,
    account_fields_of,
    errors_by_field,
    form_text,
    page,
    redirect,
    refusal,
)
from starter.portal.partners import PortalEnroller, partner_account
from starter.services.enrollments import changeable_enrollment, edited_fields
from starter.services.errors import Conflict, InvalidInput, Unavailable, check_note
from store.tables import User

router = APIRouter(include_in_schema=False, route_class=PortalRoute)


def refused(request: Request, view: EnrollmentView, action: EnrollmentAction) -> HTMLResponse | None:
    reason = enrollment_refusal(view.status, action)
    if reason is None:
        return None
    return refusal(request, 409, "That cannot be done now", reason)


def values_of(view: EnrollmentView) -> dict[str, str]:
    """The enrollment's fields as the form shows them."""
    return {
        "organization_name": view.organization_name,
        "member_type": view.member_type.value,
        "display_users_purchased": "yes" if view.display_users_purchased else "no",
        "users_purchased": str(view.users_purchased) if view.users_purchased is not None else "",
        "reseller_account_id": view.reseller_account_id or "",
        "service_end_date": view.service_end_date.isoformat(),
        "corporate_contact_email": view.corporate_contact_email,
    }


async def changeable(settings: Settings, user: User, enrollment_id: str) -> EnrollmentView:
    """The enrollment, if `user` may change it: a partner's own customers' alone (404 for any other, 403 naming
    the rule while its reseller account is not Active); staff creators any."""
    return await changeable_enrollment(settings.effective_database_url, user, enrollment_id)


async def edit_page(
    request: Request,
    view: EnrollmentView,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> HTMLResponse:
    user: User = request.state.portal_user
    partner = await partner_account(request.app.state.settings, user)
    context = {"e": view, "values": values, "errors": errors, "error_targets": ERROR_TARGETS, "partner": partner}
    return page(request, "portal/edit.html", context, status_code=status)


@router.get("/enrollments/{enrollment_id}/edit", response_class=HTMLResponse)
async def edit_form(request: Request, enrollment_id: str, user: PortalEnroller, settings: SettingsDep) -> Response:
    view = await changeable(settings, user, enrollment_id)
    return refused(request, view, EnrollmentAction.edit) or await edit_page(request, view, values_of(view), {})


def check_edit(
    view: EnrollmentView, changes: dict[str, str], note: str | None, free_mail: frozenset[str]
) -> tuple[dict[str, str], bool]:
    """Every problem with an edit before anything is asked or sent: (errors by field, contact email changed).
    The fields are merged and checked as the service will (`edited_fields`)."""
    fields, problems = edited_fields(view, changes, free_mail=free_mail)
    errors = {e.field: e.message for e in problems}
    try:
        check_note(note)
    except InvalidInput as exc:
        errors.update(errors_by_field(exc.errors))
    changed = fields is not None and fields.corporate_contact_email != view.corporate_contact_email
    return errors, changed


@router.post("/enrollments/{enrollment_id}/edit", response_class=HTMLResponse)
async def edit(
    request: Request, enrollment_id: str, user: PortalEnroller, service: ServiceDep, settings: SettingsDep
) -> Response:
    view = await changeable(settings, user, enrollment_id)
    if (refusal_page := refused(request, view, EnrollmentAction.edit)) is not None:
        return refusal_page
    form = await request.form()
    changes = account_fields_of(form)
    note = form_text(form, "audit_note")
    send = form_text(form, "send_invitation")
    values = {**changes, "audit_note": note or ""}
    errors, contact_changed = check_edit(view, changes, note, settings.free_mail)
    if errors or send == "back":
        return await edit_page(request, view, values, errors, status=422 if errors else 200)
    ask = contact_changed and view.status == EnrollmentStatus.new
    if ask and send not in ("yes", "no"):
        context = {"e": view, "values": values, "new_email": changes.get("corporate_contact_email", "").strip()}
        return page(request, "portal/edit_send.html", context)
    try:
        await service.edit(
            view.id, actor_of(user), {**changes, "audit_note": note}, send_invitation=send != "no", viewer=user
        )
    except InvalidInput as exc:
        return await edit_page(request, view, values, errors_by_field(exc.errors), status=422)
    done = ("edited_sent" if send != "no" else "edited_not_sent") if ask else "edited"
    return redirect(f"/enrollments/{view.id}?done={done}&id={view.id}")


@router.get("/enrollments/{enrollment_id}/delete", response_class=HTMLResponse)
async def delete_form(request: Request, enrollment_id: str, user: PortalEnroller, settings: SettingsDep) -> Response:
    view = await changeable(settings, user, enrollment_id)
    return refused(request, view, EnrollmentAction.cancel) or page(request, "portal/delete.html", {"e": view})


@router.post("/enrollments/{enrollment_id}/delete", response_class=HTMLResponse)
async def delete(
    request: Request, enrollment_id: str, user: PortalEnroller, service: ServiceDep, settings: SettingsDep
) -> Response:
    view = await changeable(settings, user, enrollment_id)
    form = await request.form()
    note = form_text(form, "audit_note")
    try:
        await service.cancel(view.id, actor_of(user), note, viewer=user)
    except InvalidInput as exc:
        context = {"e": view, "values": {"audit_note": note or ""}, "errors": errors_by_field(exc.errors)}
        return page(request, "portal/delete.html", context, status_code=422)
    return redirect(f"/enrollments?done=deleted&id={view.id}")


@router.get("/enrollments/{enrollment_id}/resend", response_class=HTMLResponse)
async def resend_form(request: Request, enrollment_id: str, user: PortalEnroller, settings: SettingsDep) -> Response:
    view = await changeable(settings, user, enrollment_id)
    context = {"e": view, "deadline": datetime.now(UTC) + settings.enrollment_ttl}
    return refused(request, view, EnrollmentAction.resend) or page(request, "portal/resend.html", context)


@router.post("/enrollments/{enrollment_id}/resend", response_class=HTMLResponse)
async def resend(
    request: Request, enrollment_id: str, user: PortalEnroller, service: ServiceDep, settings: SettingsDep
) -> Response:
    view = await changeable(settings, user, enrollment_id)
    form = await request.form()
    note = (form_text(form, "audit_note") or "").strip() or "invitation resent"
    context: dict[str, Any] = {
        "e": view,
        "deadline": datetime.now(UTC) + settings.enrollment_ttl,
        "values": {"audit_note": note},
    }
    try:
        await service.resend(view.id, actor_of(user), note, viewer=user)
    except InvalidInput as exc:
        context["errors"] = errors_by_field(exc.errors)
        return page(request, "portal/resend.html", context, status_code=422)
    except (Conflict, Unavailable) as exc:
        context["problem"] = exc.message
        return page(request, "portal/resend.html", context, status_code=exc.status)
    return redirect(f"/enrollments/{view.id}?done=resent&id={view.id}")
