"""Links from emails to a user: an administrator's activation (`/activate/<token>`), and a forgotten password
(`/signin/forgot` → `/reset/<token>`). Scanner-safe: a GET only shows, the POST from that page consumes.

A link that cannot be used (unknown, used, expired, replaced by a newer one, its user disabled) answers a page
that says so and what to do, and changes nothing. The forgot-password form answers the same page, after the
same work, whether or not the address has a user: the link is made and sent in a background task.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response

from activities import email
from domain.models import AdministratorMail, EmailKind, EmailRequest, MemberType
from domain.passwords import password_problem
from domain.settings import Settings
from starter.deps import SettingsDep, get_client
from starter.portal.common import PortalRoute, account_home, form_text, page, redirect
from starter.portal.session import SessionDep, check_csrf_token, new_session, session_for, write_session
from starter.security import request_source
from store import accounts, administrators, second_factor, users
from store.administrators import ACTIVATION, RESET, LinkRefused, LinkState
from store.tables import User

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
log = logging.getLogger(__name__)
MAX_TOKEN = 200
MAX_PASSWORD = 1000
CODE_REFUSED = (
    "The code is not right or was already used, or sign-in is paused for 15 minutes after repeated failures. "
    "Wait for a new code in your app and try again."
)
FORGOT_SENT = (
    "If an account uses that address, we have emailed it a link to choose a new password. The link works once, "
    "for 30 minutes. Nothing arrived? Check your spam folder, or ask again in a few minutes."
)
MISMATCH = "The two passwords are not the same. Type the same password twice."
PORTAL_NAME = "Member Account Enrollment"
SUPPORT = "an administrator of your account or your provider's support"


async def _organization(settings: Settings, user: User) -> tuple[str, MemberType | None]:
    if not user.account_id:
        return "", None
    account = await accounts.get_account(settings.effective_database_url, user.account_id[:64])
    return (account.organization_name, account.member_type) if account else ("", None)


def _form_page(
    request: Request, template: str, context: dict[str, object], session: SessionDep, settings: Settings, status: int
) -> HTMLResponse:
    """A form shown before sign-in: the visitor's session (made here if they have none) carries its CSRF token."""
    visitor = session if session is not None else new_session(None)
    request.state.portal_csrf = visitor.csrf
    response = page(request, template, context, status_code=status)
    if session is None:
        write_session(response, settings, visitor)
    return response


def _link_page(
    request: Request, heading: str, lines: list[str], status: int, links: list[tuple[str, str]]
) -> HTMLResponse:
    return page(
        request, "portal/link_message.html", {"heading": heading, "lines": lines, "actions": links}, status_code=status
    )


def _activation_refused(request: Request, state: LinkState, user: User | None) -> HTMLResponse:
    who = (user.invited_by if user is not None else None) or SUPPORT
    sign_in = [("/signin", "Sign in"), ("/signin/forgot", "Forgot your password?")]
    if state == LinkState.used:
        return _link_page(
            request,
            "This link was already used",
            [
                "This activation link has been used: the account is activated. Sign in with your email address and "
                "the password you chose."
            ],
            410,
            sign_in,
        )
    if state == LinkState.expired or (state == LinkState.dead and user is not None and user.invitation == "expired"):
        return _link_page(
            request,
            "This link has expired",
            [f"Activation links work for a limited time, and this one is over. Ask {who} to send you a new one."],
            410,
            [],
        )
    if state == LinkState.dead and user is not None and user.disabled:
        return _link_page(
            request,
            "This link no longer works",
            [f"The administrator access this link was for has been disabled. Ask {who} if you need it."],
            410,
            [],
        )
    if state == LinkState.dead:
        return _link_page(
            request,
            "This link was replaced by a newer one",
            [
                "A new activation link was sent to you since this one: only the newest works. Open the latest "
                f"invitation email, or ask {who} to send it again."
            ],
            410,
            [],
        )
    return _link_page(
        request,
        "No such activation link",
        [
            f"There is no activation link at this address. Check that you opened the whole link from the email, or ask "
            f"{SUPPORT} to send it again."
        ],
        404,
        [],
    )


def _reset_refused(request: Request, state: LinkState) -> HTMLResponse:
    again = [("/signin/forgot", "Ask for a new link"), ("/signin", "Sign in")]
    messages = {
        LinkState.used: ("This link was already used", "A password reset link works once, and this one has been used."),
        LinkState.expired: (
            "This link has expired",
            "A password reset link works for 30 minutes, and this one is over.",
        ),
        LinkState.dead: (
            "This link was replaced by a newer one",
            "You asked for another link since this one: only the newest works (or the user is disabled).",
        ),
    }
    if state in messages:
        heading, line = messages[state]
        return _link_page(request, heading, [line, "Ask for a new link if you still need one."], 410, again)
    return _link_page(
        request,
        "No such password reset link",
        ["There is no password reset link at this address. Check that you opened the whole link from the email."],
        404,
        again,
    )


def _token(token: str) -> str:
    return token if len(token) <= MAX_TOKEN else ""


def _password_errors(form: Mapping[str, Any], inputs: list[str]) -> tuple[str, dict[str, str]]:
    password = form_text(form, "password") or ""
    confirm = form_text(form, "password_confirm") or ""
    errors: dict[str, str] = {}
    problem = password_problem(password[: MAX_PASSWORD + 1], user_inputs=[i for i in inputs if i])
    if problem:
        errors["password"] = problem
    elif password != confirm:
        errors["password_confirm"] = MISMATCH
    return password, errors


# --- Activation -----------------------------------------------------------------------------------------------


@router.get("/activate/{token}", response_class=HTMLResponse)
async def activation_form(request: Request, token: str, settings: SettingsDep, session: SessionDep) -> Response:
    url = settings.effective_database_url
    state, user = await administrators.link_state(url, _token(token), ACTIVATION)
    if state != LinkState.live or user is None:
        return _activation_refused(request, state, user)
    organization, _ = await _organization(settings, user)
    context = {"person": user, "organization": organization, "errors": {}, "token": token}
    return _form_page(request, "portal/activate.html", context, session, settings, 200)


@router.post("/activate/{token}", response_class=HTMLResponse)
async def activate(request: Request, token: str, settings: SettingsDep, session: SessionDep) -> Response:
    form = await request.form()
    check_csrf_token(session, form.get("csrf_token"))
    url = settings.effective_database_url
    state, user = await administrators.link_state(url, _token(token), ACTIVATION)
    if state != LinkState.live or user is None:
        return _activation_refused(request, state, user)
    organization, _ = await _organization(settings, user)
    password, errors = _password_errors(form, [user.email, organization])
    if errors:
        context = {"person": user, "organization": organization, "errors": errors, "token": token}
        return _form_page(request, "portal/activate.html", context, session, settings, 422)
    try:
        activated = await administrators.activate(url, _token(token), await users.hash_password(password))
    except LinkRefused as exc:
        return _activation_refused(request, exc.state, user)
    await _notify_activated(request, settings, activated.id)
    # Its own page: a reseller's roll-up (Your customers), another member's Account Summary.
    target = await account_home(settings, activated) or "/"
    response = redirect(f"/me/second-factor?next={target}")
    # The password step is done (the link proved the address): the second factor is set up next.
    write_session(response, settings, session_for(activated, second_factor=False))
    return response


async def _notify_activated(request: Request, settings: Settings, user_id: str) -> None:
    """Tell the administrator's workflow; never fails the activation (the workflow also learns it from the
    store at its deadline)."""
    try:
        from starter.services.administrators import (  # type: ignore[import-not-found,unused-ignore]
            AdministratorService,
        )

        client = await get_client(request)
        await AdministratorService(settings, client).notify_activated(user_id)
    except Exception:  # the activation is done whatever the workflow says
        log.warning("could not tell the workflow of administrator %s that they activated", user_id, exc_info=True)


# --- Forgotten password ---------------------------------------------------------------------------------------


@router.get("/signin/forgot", response_class=HTMLResponse)
async def forgot_form(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    context = {"email": "", "sent": False, "errors": {}}
    return _form_page(request, "portal/forgot.html", context, session, settings, 200)


@router.post("/signin/forgot", response_class=HTMLResponse)
async def forgot(request: Request, settings: SettingsDep, session: SessionDep, tasks: BackgroundTasks) -> Response:
    form = await request.form()
    check_csrf_token(session, form.get("csrf_token"))
    address = (form_text(form, "email") or "").strip().lower()[:254]
    if not address or "@" not in address:
        context = {"email": address, "sent": False, "errors": {"email": "Enter the email address you sign in with."}}
        return _form_page(request, "portal/forgot.html", context, session, settings, 422)
    tasks.add_task(send_reset_link, settings, address, request_source())
    context = {"email": "", "sent": True, "message": FORGOT_SENT, "errors": {}}
    return _form_page(request, "portal/forgot.html", context, session, settings, 200)


def _forgot_key(address: str) -> str:
    """The throttle's key for asking for links: its own, so asking five times does not lock the user's sign-in."""
    return f"password-reset:{address}"


async def send_reset_link(settings: Settings, address: str, source: str | None) -> None:
    """Make and email a reset link, if the address has a user (after the page is answered: the same answer and
    timing either way). Throttled per address and per source; never logs the token or the address."""
    url = settings.effective_database_url
    try:
        if not await users.count_attempt(url, _forgot_key(address), source):
            return
        made = await administrators.create_reset_link(url, address)
        if made is None:
            return
        token, user = made
        organization, member_type = await _organization(settings, user)
        # Staff have no member account: the email names the portal instead.
        mail = AdministratorMail(
            user_id=user.id,
            email=user.email,
            name=user.name,
            account_id=user.account_id,
            organization_name=organization or PORTAL_NAME,
            member_type=member_type,
            reset_token=token,
        )
        request = EmailRequest(kind=EmailKind.password_reset, administrator=mail, to=[user.email])
        await email.deliver(settings, request, key=f"password-reset/{user.id}/{secrets.token_hex(8)}")
    except Exception as exc:  # noqa: BLE001 - a background task: the page was answered already
        # The class only: the message of an error while sending could carry the link.
        log.warning("a password reset email could not be sent (%s)", type(exc).__name__)


# --- Reset --------------------------------------------------------------------------------------------------


async def _reset_context(
    user: User, token: str, errors: dict[str, str], problem: str | None = None
) -> dict[str, object]:
    return {
        "person": user,
        "token": token,
        "errors": errors,
        "ask_code": second_factor.has_second_factor(user),
        "problem": problem,
    }


@router.get("/reset/{token}", response_class=HTMLResponse)
async def reset_form(request: Request, token: str, settings: SettingsDep, session: SessionDep) -> Response:
    state, user = await administrators.link_state(settings.effective_database_url, _token(token), RESET)
    if state != LinkState.live or user is None:
        return _reset_refused(request, state)
    context = await _reset_context(user, token, {})
    return _form_page(request, "portal/reset.html", context, session, settings, 200)


@router.post("/reset/{token}", response_class=HTMLResponse)
async def reset(request: Request, token: str, settings: SettingsDep, session: SessionDep) -> Response:
    form = await request.form()
    check_csrf_token(session, form.get("csrf_token"))
    url = settings.effective_database_url
    state, user = await administrators.link_state(url, _token(token), RESET)
    if state != LinkState.live or user is None:
        return _reset_refused(request, state)
    organization, _ = await _organization(settings, user)
    password, errors = _password_errors(form, [user.email, organization])
    if errors:
        context = await _reset_context(user, token, errors)
        return _form_page(request, "portal/reset.html", context, session, settings, 422)
    if second_factor.has_second_factor(user):
        source = request_source()
        code = (form_text(form, "code") or "")[:64]
        accepted = await users.count_attempt(url, user.email, source) and (
            await second_factor.check_code(url, settings.signing_key, user.id, code) is not None
        )
        if not accepted:
            context = await _reset_context(user, token, {}, CODE_REFUSED)
            return _form_page(request, "portal/reset.html", context, session, settings, 401)
        await users.forgive(url, user.email, source)
    try:
        await administrators.reset_password(url, _token(token), await users.hash_password(password))
    except LinkRefused as exc:
        return _reset_refused(request, exc.state)
    response = redirect("/signin?done=password_reset")
    write_session(response, settings, new_session(None))
    return response
