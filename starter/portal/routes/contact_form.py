"""/enroll/{token}: the corporate contact's enrollment form (public, no login).

Opening the link never consumes it (mail scanners open links); only a successful submit does. Rate limits
(per source address, and submits per link) answer 429 before the link is even looked up, so unknown, forged
and real links are limited alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from starter.deps import ServiceDep
from starter.portal.pages import templates
from starter.portal.ratelimit import RateLimit
from starter.security import request_network, request_source
from starter.services.enrollments import DEAD_LINK, UNKNOWN_LINK
from starter.services.errors import Gone, InvalidInput, NotFound, Unavailable

router = APIRouter(prefix="/enroll", include_in_schema=False)
# Kept out of caches and search engines (the security headers, no referrer among them, come from the middleware).
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
TOO_MANY_FROM_ADDRESS = "There were too many requests from your network in a short time. Wait a minute and try again."
TOO_MANY_SUBMITS = (
    "This form was sent too many times in the last hour. Wait a while and try again, or ask your representative "
    "for a new link."
)
NOT_SENT = (
    "We could not reach our enrollment service just now, so your form may not have been received. Go back and "
    "send it again in a few minutes: your link still works."
)


@dataclass
class FormLimits:
    """30 requests a minute per source address (opening or sending the form), 10 submits an hour per link."""

    per_address: RateLimit = field(default_factory=lambda: RateLimit(30, 60))
    per_link: RateLimit = field(default_factory=lambda: RateLimit(10, 3600))

    def refusal(self, request: Request, token: str, *, submit: bool) -> HTMLResponse | None:
        wait = self.per_address.hit(request_network() or "unknown")
        if wait is not None:
            return _too_many(request, wait, TOO_MANY_FROM_ADDRESS)
        if submit:
            # By the token's hash: the limiter keeps no link.
            wait = self.per_link.hit(hashlib.sha256(token.encode()).hexdigest())
            if wait is not None:
                return _too_many(request, wait, TOO_MANY_SUBMITS)
        return None


async def form_limits(request: Request) -> FormLimits:
    """The limits of this app (one set per API process)."""
    limits: FormLimits | None = getattr(request.app.state, "form_limits", None)
    if limits is None:
        limits = request.app.state.form_limits = FormLimits()
    return limits


Limits = Annotated[FormLimits, Depends(form_limits)]


def _too_many(request: Request, wait: int, message: str) -> HTMLResponse:
    response = _message(request, 429, "Too many attempts", message)
    response.headers["Retry-After"] = str(wait)
    return response


def _message(request: Request, status: int, heading: str, message: str, tone: str = "error") -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "contact_message.html",
        {"heading": heading, "message": message, "tone": tone},
        status_code=status,
        headers=PRIVATE,
    )


def _refusal(request: Request, exc: NotFound | Gone) -> HTMLResponse:
    if isinstance(exc, Gone):
        return _message(request, 410, "This link is no longer valid", DEAD_LINK)
    return _message(request, 404, "This link is not valid", UNKNOWN_LINK)


@router.get("/thanks", response_class=HTMLResponse)
async def thanks(request: Request) -> HTMLResponse:
    return _message(
        request,
        200,
        "Thank you: your enrollment form is complete",
        "We have received it and emailed you a confirmation. It now goes to review; we will email you the outcome.",
        tone="ok",
    )


@router.get("/{token:record}", response_class=HTMLResponse)
async def show_form(token: str, request: Request, service: ServiceDep, limits: Limits) -> Response:
    if (refused := limits.refusal(request, token, submit=False)) is not None:
        return refused
    try:
        view, _ = await service.open_form(token)
    except (NotFound, Gone) as exc:
        return _refusal(request, exc)
    context = {"e": view, "token": token, "values": {}, "errors": {}}
    return templates.TemplateResponse(request, "contact_form.html", context, headers=PRIVATE)


@router.post("/{token:record}", response_class=HTMLResponse)
async def submit_form(token: str, request: Request, service: ServiceDep, limits: Limits) -> Response:
    if (refused := limits.refusal(request, token, submit=True)) is not None:
        return refused
    submitted = await request.form()
    raw: dict[str, Any] = {key: value for key, value in submitted.items() if isinstance(value, str)}
    try:
        await service.submit_form(token, raw, source=request_source())
    except (NotFound, Gone) as exc:
        return _refusal(request, exc)
    except Unavailable:
        response = _message(request, 503, "Please try again in a few minutes", NOT_SENT)
        response.headers["Retry-After"] = "60"
        return response
    except InvalidInput as exc:
        view, _ = await service.open_form(token)
        context = {"e": view, "token": token, "values": raw, "errors": {e.field: e.message for e in exc.errors}}
        return templates.TemplateResponse(request, "contact_form.html", context, status_code=422, headers=PRIVATE)
    return RedirectResponse("/enroll/thanks", status_code=303, headers=PRIVATE)
