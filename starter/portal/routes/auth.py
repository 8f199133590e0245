"""Signing in (the password step; the second factor's step is in `second_factor.py`) and out, the signed-in
user's own page, and `/`."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from starter.deps import SettingsDep
from starter.portal.common import PortalRoute, account_home, done_message, form_text, page, redirect
from starter.portal.session import (
    PartialUser,
    PortalUser,
    SessionDep,
    Stage,
    check_csrf_token,
    clear_session,
    complete_sign_in,
    local_path,
    new_session,
    session_for,
    session_stage,
    step_after_password,
    write_session,
)
from starter.security import request_source
from store import second_factor, users

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
HOME = "/enrollments"
# One sentence for every refusal: it must not tell whether the email exists, nor whether sign-in is locked.
SIGN_IN_REFUSED = (
    "The email address or password is not right, or sign-in is paused for 15 minutes after repeated failures. "
    "Check them and try again."
)
ME_DONE = {
    "second_factor_on": "Your second factor is on. Keep your recovery codes somewhere safe.",
    "second_factor_reset": "Your second factor is off. Set up a new one below when you are ready.",
    "password_reset": "Your password is changed. Sign in with it.",
}


@router.get("/")
async def home() -> Response:
    return redirect(HOME)


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    target = local_path(request.query_params.get("next"), HOME)
    user, stage = await session_stage(settings, session)
    if stage == Stage.full:
        return redirect(target)
    # A visitor keeps the token they have (two tabs of this page both work), and so does someone between the
    # password and the second factor. The session of a user who is gone, disabled, locked or whose sessions
    # were ended is signed out here: replaced by a visitor's, so it no longer names them (and no page sends
    # them back and forth between here and the one they asked for).
    keep = session is not None and (session.user_id is None or user is not None)
    visitor = session if keep and session is not None else new_session(None)
    request.state.portal_csrf = visitor.csrf
    message = ME_DONE.get(request.query_params.get("done", "")) or await done_message(request, settings)
    context = {"next": target, "email": "", "problem": None, "message": message}
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
    if target == HOME:  # a reseller or customer user starts on its own page (a reseller: its customers' roll-up)
        target = await account_home(settings, user) or HOME
    location, complete = step_after_password(settings, user, target)
    response = redirect(location)
    if complete:
        await complete_sign_in(response, settings, user, second_factor=False)
    else:  # the password step is done: a new session (new token) that says only that
        write_session(response, settings, session_for(user, second_factor=False))
    return response


@router.post("/signout")
async def signout(partial: PartialUser, settings: SettingsDep) -> Response:
    """Sign out, from any page past the password (the second factor's step too)."""
    response = redirect("/signin?done=signed_out")
    clear_session(response, settings)
    return response


@router.get("/me", response_class=HTMLResponse)
async def me(request: Request, user: PortalUser, session: SessionDep, settings: SettingsDep) -> Response:
    signed_in_at = datetime.fromtimestamp(session.issued_at, UTC) if session else None
    has_factor = second_factor.has_second_factor(user)
    context = {
        "signed_in_at": signed_in_at,
        "has_factor": has_factor,
        "codes_left": await second_factor.codes_left(settings.effective_database_url, user.id) if has_factor else 0,
        "required": settings.second_factor == "required",
        "problem": None,
        "message": ME_DONE.get(request.query_params.get("done", "")),
    }
    return page(request, "portal/me.html", context)
