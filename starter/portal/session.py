"""Portal sign-in: a signed session cookie, its CSRF token, and who may open which page.

The cookie carries the user id, a CSRF token, the issue time, the user's `session_epoch` when it was issued
and whether the second factor was passed, signed with `settings.signing_key` (itsdangerous); it is HttpOnly,
SameSite=Lax, and Secure when the public URL is https. A visitor who has not signed in gets a cookie without
a user, so the sign-in form is CSRF-protected too; every sign-in step and every change of the second factor
replaces it with a new one (new token), signing out deletes it.

A session is a full sign-in (`Stage.full`) only while its user exists, is enabled and not locked, its epoch
is the user's (a reset password or second factor, a disabled user: the epoch moves on and old cookies stop
working), and the second factor was passed when the user has one. A password-only session is at
`Stage.needs_code` (the user has a factor: `/signin/second-factor`) or `Stage.needs_setup` (no factor while
it is required: `/me/second-factor`).

Building a signed-in cookie (tests, tools): `session_for(user, second_factor=True)` then `cookie_value` /
`cookie_header`, or `write_session` on a response.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from domain.access import PERMISSIONS, STAFF, Permission, allows
from domain.settings import Settings
from starter.deps import SettingsDep
from store import users
from store.second_factor import has_second_factor
from store.tables import User

COOKIE = "enroll_session"
MAX_AGE = 12 * 60 * 60
"""A working day: after 12 hours the CSM signs in again."""
CSRF_FIELD = "csrf_token"
_SALT = "portal-session"


@dataclass(frozen=True)
class Session:
    user_id: str | None
    csrf: str
    issued_at: int
    epoch: int = 0
    """The user's `session_epoch` when this session was issued."""
    second_factor: bool = False
    """Whether the second factor was passed (a code at sign-in, or turning it on)."""


class Stage(StrEnum):
    signed_out = "signed_out"
    needs_code = "needs_code"
    """The password was right; the user has a second factor and has not given a code yet."""
    needs_setup = "needs_setup"
    """The password was right; the user has no second factor and one is required."""
    full = "full"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.signing_key, salt=_SALT)


def new_session(user_id: str | None = None, *, epoch: int = 0, second_factor: bool = False) -> Session:
    """A new session (a new CSRF token); with no user, a visitor's."""
    return Session(
        user_id=user_id,
        csrf=secrets.token_urlsafe(32),
        issued_at=int(time.time()),
        epoch=epoch,
        second_factor=second_factor,
    )


def session_for(user: User, *, second_factor: bool) -> Session:
    """A new session of `user` in their current epoch: `second_factor` says whether they passed it now. Read
    the user after the store change that moved their epoch (turn_on, regenerate, reset, activate…)."""
    return new_session(user.id, epoch=user.session_epoch, second_factor=second_factor)


def read_session(request: Request, settings: Settings) -> Session | None:
    """The session the request's cookie carries, if it is ours, intact and younger than MAX_AGE."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    user_id, csrf, issued_at = data.get("uid"), data.get("csrf"), data.get("iat")
    epoch, passed = data.get("ep", 0), data.get("sf", False)
    if not isinstance(csrf, str) or not isinstance(issued_at, int) or not (user_id is None or isinstance(user_id, str)):
        return None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not isinstance(passed, bool):
        return None
    return Session(user_id=user_id, csrf=csrf, issued_at=issued_at, epoch=epoch, second_factor=passed)


def cookie_value(settings: Settings, session: Session) -> str:
    """The signed value of the session cookie that carries `session`."""
    data = {
        "uid": session.user_id,
        "csrf": session.csrf,
        "iat": session.issued_at,
        "ep": session.epoch,
        "sf": session.second_factor,
    }
    return _serializer(settings).dumps(data)


def cookie_header(settings: Settings, session: Session) -> str:
    """`enroll_session=<value>`: what a browser sends back in its `Cookie` header."""
    return f"{COOKIE}={cookie_value(settings, session)}"


def write_session(response: Response, settings: Settings, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        cookie_value(settings, session),
        max_age=MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
    )


def clear_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=settings.public_url.startswith("https://")
    )


def local_path(target: object, default: str = "/") -> str:
    """`target` if it is a path on this site (so `?next=` cannot send anyone elsewhere), else `default`."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in target) or len(target) > 2000:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _here(request: Request) -> str:
    return local_path(request.url.path + (f"?{request.url.query}" if request.url.query else ""))


def with_next(path: str, target: str) -> str:
    """`path?next=<target>` (just `path` when the target is the home page)."""
    return path if target == "/" else f"{path}?next={quote(local_path(target), safe='/')}"


class SignInRequired(HTTPException):
    """Send the visitor to the sign-in page, and back here afterwards."""

    def __init__(self, request: Request) -> None:
        location = with_next("/signin", _here(request))
        super().__init__(status.HTTP_303_SEE_OTHER, "Sign in first.", headers={"Location": location})


class SecondFactorRequired(SignInRequired):
    """The password step is done: send the user to the second factor's step (`location`), then back here."""

    def __init__(self, request: Request, stage: Stage) -> None:
        step = "/signin/second-factor" if stage == Stage.needs_code else "/me/second-factor"
        HTTPException.__init__(
            self,
            status.HTTP_303_SEE_OTHER,
            "Second factor first.",
            headers={"Location": with_next(step, _here(request))},
        )


class NotForYourRole(HTTPException):
    """The signed-in user's role may not do this; `detail` says what, in a sentence."""

    def __init__(self, user: User, what: str) -> None:
        super().__init__(status.HTTP_403_FORBIDDEN, f"Your role ({user.role}) may not {what}.")
        self.user = user


class NothingHereYet(HTTPException):
    """A reseller or customer user: their own account pages come later."""

    def __init__(self, user: User) -> None:
        super().__init__(status.HTTP_200_OK, "Your account pages are not ready yet.")
        self.user = user


class CsrfRefused(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            status.HTTP_403_FORBIDDEN,
            "This form has expired (you may have signed in again in another tab). Go back, reload the page "
            "and submit it again.",
        )


async def portal_session(request: Request, settings: SettingsDep) -> Session | None:
    return read_session(request, settings)


SessionDep = Annotated[Session | None, Depends(portal_session)]


def second_factor_required(settings: Settings) -> bool:
    return settings.second_factor == "required"


async def session_stage(
    settings: Settings, session: Session | None, *, check_lock: bool = True
) -> tuple[User | None, Stage]:
    """Who `session` is signed in as, and how far. Signed out (no user) when there is no user, or they are
    gone, disabled, locked (unless `check_lock` is False: the second factor's own step answers a locked user
    with its one sentence), or their sessions were ended since (the epoch moved on)."""
    if session is None or session.user_id is None:
        return None, Stage.signed_out
    url = settings.effective_database_url
    user = await users.user_by_id(url, session.user_id)
    if user is None or user.disabled or user.session_epoch != session.epoch:
        return None, Stage.signed_out
    if check_lock and await users.locked_emails(url, [user.email]):
        return None, Stage.signed_out
    if has_second_factor(user):
        return user, Stage.full if session.second_factor else Stage.needs_code
    if second_factor_required(settings):
        return user, Stage.needs_setup
    return user, Stage.full


async def signed_in_user(settings: Settings, session: Session | None) -> User | None:
    """The user `session` is fully signed in as (see `session_stage`), else None: a session of a user since
    disabled, locked or removed, or from before their sessions were ended, is a signed-out one (it is replaced
    at /signin, not honoured); a password-only one is not signed in yet."""
    user, stage = await session_stage(settings, session)
    return user if stage == Stage.full else None


async def _check_csrf(request: Request, session: Session) -> None:
    if request.method == "POST":
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise CsrfRefused


async def portal_user(request: Request, settings: SettingsDep, session: SessionDep) -> User:
    """The fully signed-in user (any role); else a redirect to /signin?next=<this page>, or to the second
    factor's step when only the password was given."""
    user, stage = await session_stage(settings, session)
    if session is None or user is None:
        raise SignInRequired(request)
    if stage != Stage.full:
        raise SecondFactorRequired(request, stage)
    request.state.portal_user = user
    request.state.portal_csrf = session.csrf
    await _check_csrf(request, session)
    return user


@dataclass(frozen=True)
class Partial:
    """A signed-in session at any stage past the password (the second factor's own pages)."""

    user: User
    session: Session
    stage: Stage


async def partial_user(request: Request, settings: SettingsDep, session: SessionDep) -> Partial:
    """The user who gave their password (whether or not the second factor is done), for the second factor's
        pages; a CSRF-checked POST. A locked user still reaches the code's step, which answers them with its one
    sentence (whether the code was wrong or sign-in is locked)."""
    user, stage = await session_stage(settings, session, check_lock=False)
    if session is None or user is None:
        raise SignInRequired(request)
    if stage != Stage.needs_code and await users.locked_emails(settings.effective_database_url, [user.email]):
        raise SignInRequired(request)
    request.state.portal_csrf = session.csrf
    if stage == Stage.full:
        request.state.portal_user = user
    await _check_csrf(request, session)
    return Partial(user, session, stage)


PartialUser = Annotated[Partial, Depends(partial_user)]


PortalUser = Annotated[User, Depends(portal_user)]


def check_csrf_token(session: Session | None, sent: object) -> None:
    """For forms posted before sign-in (the sign-in form): the token must match the visitor's cookie."""
    if session is None or not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise CsrfRefused


def require_portal(permission: Permission) -> object:
    """The signed-in portal user, if the access table gives their role `permission`; else a refusal page
    (for a reseller or customer user, the page that says theirs are elsewhere)."""

    async def check(user: PortalUser) -> User:
        if not allows(user.role, permission):
            if user.role not in STAFF:
                raise NothingHereYet(user)
            raise NotForYourRole(user, PERMISSIONS[permission].what)
        return user

    return Depends(check)


PortalStaff = Annotated[User, require_portal(Permission.enrollments_read)]
PortalCreator = Annotated[User, require_portal(Permission.enrollments_create)]
PortalReviewer = Annotated[User, require_portal(Permission.enrollments_review)]
PortalAccountEditor = Annotated[User, require_portal(Permission.accounts_change)]
PortalAccountManager = Annotated[User, require_portal(Permission.accounts_suspend)]
PortalAdmin = Annotated[User, require_portal(Permission.users_manage)]
PortalAuditExporter = Annotated[User, require_portal(Permission.audit_export)]


def step_after_password(settings: Settings, user: User, target: str) -> tuple[str, bool]:
    """Where a right password leads (`target`, or the second factor's step on the way to it), and whether that
    completes the sign-in (no factor, and none required)."""
    if has_second_factor(user):
        return with_next("/signin/second-factor", target), False
    if second_factor_required(settings):
        return with_next("/me/second-factor", target), False
    return target, True


async def complete_sign_in(response: Response, settings: Settings, user: User, *, second_factor: bool) -> None:
    """The sign-in is complete: a new full session, and `store.users.mark_signed_in`."""
    await users.mark_signed_in(settings.effective_database_url, user.id)
    write_session(response, settings, session_for(user, second_factor=second_factor))
