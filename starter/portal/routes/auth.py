"""Signing in and out, the signed-in user's own page, and `/`."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from starter.deps import SettingsDep
from starter.portal.common import PortalRoute, done_message, form_text, page, redirect
from starter.portal.session import (
    PortalUser,
    SessionDep,
    check_csrf_token,
    clear_session,
    local_path,
    new_session,
    signed_in_user,
    write_session,
)
from starter.security import request_source
from store import users

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
HOME = "/enrollments"
# One sentence for every refusal: it must not tell whether the email exists, nor whether sign-in is locked.
SIGN_IN_REFUSED = (
    "The email address or password is not right, or sign-in is paused for 15 minutes after repeated failures. "
    "Check them and try again."
)


@router.get("/")
async def home() -> Response:
    return redirect(HOME)


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    target = local_path(request.query_params.get("next"), HOME)
    if await signed_in_user(settings, session) is not None:
        return redirect(target)
    # A visitor keeps the token they have (two tabs of this page both work). The session of a user who is gone
    # or disabled is signed out here: replaced by a visitor's, so it no longer names them (and no page sends
    # them back and forth between here and the one they asked for).
    visitor = session if session is not None and session.user_id is None else new_session(None)
    request.state.portal_csrf = visitor.csrf
    context = {"next": target, "email": "", "problem": None, "message": await done_message(request, settings)}
    response = page(request, "portal/signin.html", context)
    write_session(response, settings, visitor)
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    form = await request.form()
    check_csrf_token(session, form.get("csrf_token"))
    assert session is not None
    email = (form_text(form, "email") or "").strip()[:254]
    password = form_text(form, "password") or ""
    target = local_path(form.get("next"), HOME)
    url = settings.effective_database_url
    user = await users.sign_in(url, email, password, source=request_source()) if email else None
    if user is None:
        request.state.portal_csrf = session.csrf
        context = {"next": target, "email": email, "problem": SIGN_IN_REFUSED, "message": None}
        return page(request, "portal/signin.html", context, status_code=401)
    response = redirect(target)
    write_session(response, settings, new_session(user.id))
    return response


@router.post("/signout")
async def signout(user: PortalUser, settings: SettingsDep) -> Response:
    response = redirect("/signin?done=signed_out")
    clear_session(response, settings)
    return response


@router.get("/me", response_class=HTMLResponse)
async def me(request: Request, user: PortalUser, session: SessionDep) -> Response:
    signed_in_at = datetime.fromtimestamp(session.issued_at, UTC) if session else None
    return page(request, "portal/me.html", {"signed_in_at": signed_in_at})
