"""Reviewers: the queue of submitted forms, and one review page with Start review, Approve and Reject."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.models import EnrollmentStatus
from domain.settings import Settings
from starter.deps import ServiceDep, SettingsDep, actor_of
from starter.portal.common import (
    PortalRoute,
    done_message,
    enrollment_or_404,
    errors_by_field,
    form_text,
    page,
    redirect,
    reseller_name,
)
from starter.portal.session import PortalReviewer
from starter.services.errors import InvalidInput
from store.portal import Sort, enrollment_page

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
QUEUE_SIZE = 50


@router.get("/review", response_class=HTMLResponse)
async def queue(request: Request, user: PortalReviewer, settings: SettingsDep) -> Response:
    """Oldest first: whoever submitted first has waited longest."""
    url = settings.effective_database_url
    cursor = (request.query_params.get("cursor") or "")[:500] or None
    pending = EnrollmentStatus.pending_review
    waiting = await enrollment_page(url, status=pending, sort=Sort.oldest, limit=QUEUE_SIZE, cursor=cursor)
    in_review = await enrollment_page(url, status=EnrollmentStatus.in_review, sort=Sort.oldest, limit=QUEUE_SIZE)
    context = {
        "waiting": waiting,
        "in_review": in_review,
        "first_page": cursor is None,
        "message": await done_message(request, settings),
    }
    return page(request, "portal/review_queue.html", context)


async def review_page(
    request: Request, enrollment_id: str, settings: Settings, *, errors: dict[str, str] | None = None, status: int = 200
) -> HTMLResponse:
    view = await enrollment_or_404(settings, enrollment_id)
    values = {"reason": form_text(await request.form(), "reason") or ""} if request.method == "POST" else {}
    context = {
        "e": view,
        "reseller_name": await reseller_name(settings, view.reseller_account_id),
        "errors": errors or {},
        "values": values,
        "message": await done_message(request, settings),
    }
    return page(request, "portal/review.html", context, status_code=status)


@router.get("/review/{enrollment_id}", response_class=HTMLResponse)
async def review(request: Request, enrollment_id: str, user: PortalReviewer, settings: SettingsDep) -> Response:
    return await review_page(request, enrollment_id, settings)


def _note(form: Any, default: str) -> str:
    return (form_text(form, "audit_note") or "").strip() or default


@router.post("/review/{enrollment_id}/start", response_class=HTMLResponse)
async def start(request: Request, enrollment_id: str, user: PortalReviewer, service: ServiceDep) -> Response:
    note = _note(await request.form(), "review started")
    view = await service.start_review(enrollment_id, actor_of(user), note)
    return redirect(f"/review/{view.id}?done=review_started&id={view.id}")


@router.post("/review/{enrollment_id}/approve", response_class=HTMLResponse)
async def approve(request: Request, enrollment_id: str, user: PortalReviewer, service: ServiceDep) -> Response:
    note = _note(await request.form(), "approved")
    view = await service.approve(enrollment_id, actor_of(user), note)
    return redirect(f"/review?done=approved&id={view.id}")


@router.post("/review/{enrollment_id}/reject", response_class=HTMLResponse)
async def reject(
    request: Request, enrollment_id: str, user: PortalReviewer, service: ServiceDep, settings: SettingsDep
) -> Response:
    form = await request.form()
    try:
        view = await service.reject(enrollment_id, actor_of(user), _note(form, "rejected"), form_text(form, "reason"))
    except InvalidInput as exc:
        errors = errors_by_field(exc.errors)
        return await review_page(request, enrollment_id, settings, errors=errors, status=422)
    return redirect(f"/review?done=rejected&id={view.id}")
