"""The second factor: setting it up (`/me/second-factor`), asking for it at sign-in (`/signin/second-factor`),
recovery codes, and resetting it.

Every code given here (except while setting one up, with a key that is the user's own and not on yet) is
counted first against the user's email like a password (`store.users.count_attempt`) and given back when
right, so five wrong codes lock sign-in for 15 minutes, and the refusal says one sentence either way. Every
change of the second factor moves the user's session epoch (their other sessions end) and gives this browser
a new session (new cookie, new CSRF token).
"""

from __future__ import annotations

from datetime import UTC, datetime

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from domain.settings import Settings
from starter.deps import SettingsDep, actor_of
from starter.portal.common import PortalRoute, form_text, page, redirect
from starter.portal.session import (
    PartialUser,
    PortalUser,
    SessionDep,
    Stage,
    complete_sign_in,
    local_path,
    session_for,
    with_next,
    write_session,
)
from starter.security import request_source
from store import second_factor, users
from store.tables import User

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
HOME = "/enrollments"
CODE_REFUSED = (
    "The code is not right or was already used, or sign-in is paused for 15 minutes after repeated failures. "
    "Wait for a new code in your app and try again."
)
SETUP_REFUSED = (
    "That code does not match the key. Check that the app's clock is right and enter the 6-digit code it shows now."
)


async def code_accepted(settings: Settings, user: User, code: str) -> bool:
    """A current TOTP code or an unused recovery code of `user`, accepted once; counted like a password."""
    url = settings.effective_database_url
    source = request_source()
    if not await users.count_attempt(url, user.email, source):
        return False
    if await second_factor.check_code(url, settings.signing_key, user.id, code[:64]) is None:
        return False
    await users.forgive(url, user.email, source)
    return True


def _qr_svg(uri: str) -> Markup:
    """The QR code as inline SVG (drawn on the server: the page needs no JavaScript)."""
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff", title="QR code of the key")
    return Markup(svg)  # noqa: S704 - segno's own markup of a URI we built


def _grouped(key: str) -> str:
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


async def _setup_page(
    request: Request, settings: Settings, user: User, target: str, *, problem: str | None = None, status: int = 200
) -> HTMLResponse:
    key = await second_factor.setup_key(settings.effective_database_url, settings.signing_key, user.id)
    uri = second_factor.provisioning_uri(key, user.email)
    context = {
        "qr": _qr_svg(uri),
        "key": _grouped(key),
        "next": target,
        "problem": problem,
        "optional": settings.second_factor == "optional",
        "account": user,
    }
    return page(request, "portal/second_factor_setup.html", context, status_code=status)


def _codes_page(request: Request, codes: list[str], target: str, heading: str) -> HTMLResponse:
    return page(request, "portal/second_factor_codes.html", {"codes": codes, "next": target, "heading": heading})


@router.get("/me/second-factor", response_class=HTMLResponse)
async def setup_form(request: Request, partial: PartialUser, settings: SettingsDep) -> Response:
    target = local_path(request.query_params.get("next"), "/me")
    if partial.stage == Stage.needs_code:
        return redirect(with_next("/signin/second-factor", target))
    if second_factor.has_second_factor(partial.user):
        return redirect("/me")
    return await _setup_page(request, settings, partial.user, target)


@router.post("/me/second-factor", response_class=HTMLResponse)
async def turn_on(request: Request, partial: PartialUser, settings: SettingsDep) -> Response:
    form = await request.form()
    target = local_path(form.get("next"), "/me")
    user = partial.user
    if partial.stage == Stage.needs_code:
        return redirect(with_next("/signin/second-factor", target))
    if second_factor.has_second_factor(user):
        return redirect("/me")
    url = settings.effective_database_url
    code = (form_text(form, "code") or "")[:64]
    codes = await second_factor.turn_on(url, settings.signing_key, user.id, code, by=actor_of(user))
    if codes is None:
        return await _setup_page(request, settings, user, target, problem=SETUP_REFUSED, status=422)
    fresh = await users.user_by_id(url, user.id)
    assert fresh is not None
    request.state.portal_user = fresh
    session = session_for(fresh, second_factor=True)
    request.state.portal_csrf = session.csrf
    response = _codes_page(request, codes, target, "Your second factor is on")
    if partial.stage == Stage.needs_setup:  # this completes a sign-in
        await users.mark_signed_in(url, fresh.id)
    write_session(response, settings, session)
    return response


@router.get("/signin/second-factor", response_class=HTMLResponse)
async def code_form(request: Request, partial: PartialUser) -> Response:
    target = local_path(request.query_params.get("next"), HOME)
    if partial.stage == Stage.full:
        return redirect(target)
    if partial.stage == Stage.needs_setup:
        return redirect(with_next("/me/second-factor", target))
    return page(request, "portal/signin_second_factor.html", {"next": target, "problem": None})


@router.post("/signin/second-factor", response_class=HTMLResponse)
async def check_code(request: Request, partial: PartialUser, settings: SettingsDep) -> Response:
    form = await request.form()
    target = local_path(form.get("next"), HOME)
    if partial.stage == Stage.full:
        return redirect(target)
    if partial.stage == Stage.needs_setup:
        return redirect(with_next("/me/second-factor", target))
    if not await code_accepted(settings, partial.user, form_text(form, "code") or ""):
        context = {"next": target, "problem": CODE_REFUSED}
        return page(request, "portal/signin_second_factor.html", context, status_code=401)
    response = redirect(target)
    await complete_sign_in(response, settings, partial.user, second_factor=True)
    return response


async def _me_refused(request: Request, settings: Settings, user: User, session_issued_at: int | None) -> HTMLResponse:
    context = {
        "signed_in_at": datetime.fromtimestamp(session_issued_at, UTC) if session_issued_at else None,
        "has_factor": True,
        "codes_left": await second_factor.codes_left(settings.effective_database_url, user.id),
        "required": settings.second_factor == "required",
        "problem": CODE_REFUSED,
    }
    return page(request, "portal/me.html", context, status_code=401)


@router.post("/me/second-factor/recovery-codes", response_class=HTMLResponse)
async def regenerate(request: Request, user: PortalUser, session: SessionDep, settings: SettingsDep) -> Response:
    """Ten new recovery codes (the old ones stop working), for a current code."""
    form = await request.form()
    if not second_factor.has_second_factor(user):
        return redirect("/me/second-factor?next=/me")
    if not await code_accepted(settings, user, form_text(form, "code") or ""):
        return await _me_refused(request, settings, user, session.issued_at if session else None)
    url = settings.effective_database_url
    codes = await second_factor.regenerate_codes(url, settings.signing_key, user.id, by=actor_of(user))
    fresh = await users.user_by_id(url, user.id)
    assert fresh is not None
    new = session_for(fresh, second_factor=True)
    request.state.portal_csrf = new.csrf
    response = _codes_page(request, codes, "/me", "Your new recovery codes")
    write_session(response, settings, new)
    return response


@router.post("/me/second-factor/reset", response_class=HTMLResponse)
async def reset_own(request: Request, user: PortalUser, session: SessionDep, settings: SettingsDep) -> Response:
    """Take one's own second factor off, for a current code; a new one is set up next (when required)."""
    form = await request.form()
    if not second_factor.has_second_factor(user):
        return redirect("/me/second-factor?next=/me")
    if not await code_accepted(settings, user, form_text(form, "code") or ""):
        return await _me_refused(request, settings, user, session.issued_at if session else None)
    fresh = await second_factor.reset(settings.effective_database_url, user.id, by=actor_of(user))
    required = settings.second_factor == "required"
    response = redirect("/me/second-factor?next=/me" if required else "/me?done=second_factor_reset")
    write_session(response, settings, session_for(fresh, second_factor=False))
    return response
