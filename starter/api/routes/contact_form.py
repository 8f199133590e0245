"""/enroll/{token}: the corporate contact's enrollment form (public, no login).

Opening the link never consumes it (mail scanners open links); only a successful submit does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from starter.api.deps import ServiceDep
from starter.api.pages import templates
from starter.service import DEAD_LINK, UNKNOWN_LINK, Gone, InvalidInput, NotFound

router = APIRouter(prefix="/enroll", include_in_schema=False)
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


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


@router.get("/{token}", response_class=HTMLResponse)
async def show_form(token: str, request: Request, service: ServiceDep) -> Response:
    try:
        view, _ = await service.open_form(token)
    except (NotFound, Gone) as exc:
        return _refusal(request, exc)
    context = {"e": view, "token": token, "values": {}, "errors": {}}
    return templates.TemplateResponse(request, "contact_form.html", context, headers=PRIVATE)


@router.post("/{token}", response_class=HTMLResponse)
async def submit_form(token: str, request: Request, service: ServiceDep) -> Response:
    submitted = await request.form()
    raw: dict[str, Any] = {key: value for key, value in submitted.items() if isinstance(value, str)}
    try:
        await service.submit_form(token, raw)
    except (NotFound, Gone) as exc:
        return _refusal(request, exc)
    except InvalidInput as exc:
        view, _ = await service.open_form(token)
        context = {"e": view, "token": token, "values": raw, "errors": {e.field: e.message for e in exc.errors}}
        return templates.TemplateResponse(request, "contact_form.html", context, status_code=422, headers=PRIVATE)
    return RedirectResponse("/enroll/thanks", status_code=303, headers=PRIVATE)
