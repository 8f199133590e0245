"""Portal sign-in: a signed session cookie, its CSRF token, and who may open which page.

The cookie carries the user id, a CSRF token and the issue time, signed with `settings.signing_key`
(itsdangerous); it is HttpOnly, SameSite=Lax, and Secure when the public URL is https. A visitor who has
not signed in gets a cookie without a user, so the sign-in form is CSRF-protected too; signing in replaces
it with a new one (new token), signing out deletes it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from domain.access import PERMISSIONS, STAFF, Permission, allows
from domain.settings import Settings
from starter.deps import SettingsDep
from store import users
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


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.signing_key, salt=_SALT)


def new_session(user_id: str | None) -> Session:
    return Session(user_id=user_id, csrf=secrets.token_urlsafe(32), issued_at=int(time.time()))


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
    if not isinstance(csrf, str) or not isinstance(issued_at, int) or not (user_id is None or isinstance(user_id, str)):
        return None
    return Session(user_id=user_id, csrf=csrf, issued_at=issued_at)


def write_session(response: Response, settings: Settings, session: Session) -> None:
    value = _serializer(settings).dumps({"uid": session.user_id, "csrf": session.csrf, "iat": session.issued_at})
    response.set_cookie(
        COOKIE,
        value,
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


class SignInRequired(HTTPException):
    """Send the visitor to the sign-in page, and back here afterwards."""

    def __init__(self, request: Request) -> None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = "/signin" if here == "/" else f"/signin?next={quote(local_path(here), safe='/')}"
        super().__init__(status.HTTP_303_SEE_OTHER, "Sign in first.", headers={"Location": location})


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


async def signed_in_user(settings: Settings, session: Session | None) -> User | None:
    """The user `session` is signed in as, if they still exist and are enabled: a session of a user since
    disabled or removed is a signed-out one (it is replaced at /signin, not honoured)."""
    if session is None or session.user_id is None:
        return None
    user = await users.user_by_id(settings.effective_database_url, session.user_id)
    return None if user is None or user.disabled else user


async def portal_user(request: Request, settings: SettingsDep, session: SessionDep) -> User:
    """The signed-in user (any role), or a redirect to /signin?next=<this page>."""
    user = await signed_in_user(settings, session)
    if session is None or user is None:
        raise SignInRequired(request)
    request.state.portal_user = user
    request.state.portal_csrf = session.csrf
    if request.method == "POST":
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise CsrfRefused
    return user


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
