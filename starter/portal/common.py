"""What every portal page shares: the layout's context, the status messages, and refusals shown as pages.

Routes of the portal use `PortalRoute`, which turns a missing sign-in into a redirect and a refusal (wrong
role, stale form, unknown enrollment, a transition the status machine refuses, Temporal down) into a page in
the portal's layout instead of the API's JSON. It also sees to it that a status message (`?done=…&id=…`)
names only a record the viewer may see.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import QueryParams

from domain.access import CREATORS, REVIEWERS, STAFF, Permission, allows, may_see, may_see_enrollment
from domain.models import EnrollmentStatus, EnrollmentView, FieldError, MemberType, Role
from domain.rules import ACCOUNT_FIELDS
from domain.settings import Settings
from starter.portal.pages import templates
from starter.portal.session import CSRF_FIELD, NothingHereYet, SignInRequired, read_session, signed_in_user
from starter.services.errors import NotFound, ServiceError
from store import accounts as account_store
from store import enrollments as enrollment_store
from store import outbox
from store.tables import User

E = TypeVar("E", bound=StrEnum)

MEMBER_TYPES = {
    MemberType.customer: "Customer",
    MemberType.reseller: "Reseller",
    MemberType.manufacturer: "Credential manufacturer",
}
MEMBER_TYPE_HELP = {
    MemberType.customer: "Uses the service for its own people.",
    MemberType.reseller: "Resells the service to its own end customers.",
    MemberType.manufacturer: "Manufactures credentials and uploads their shared secrets.",
}
FIELD_LABELS = {
    "organization_name": "Organization name",
    "member_type": "Member type",
    "display_users_purchased": "Display Users Purchased",
    "users_purchased": "Users Purchased",
    "reseller_account_id": "Reseller account",
    "service_end_date": "Service end date",
    "corporate_contact_email": "Corporate contact email",
    "audit_note": "Audit note",
    "reason": "Reason",
}

# `?done=` names one of these fixed sentences; `{org}` becomes the enrollment's name, read from the store, when
# `?id=` names it and the viewer may see it (see `PortalRoute`), else "The enrollment".
DONE = {
    "created": "{org}: member account created. Its enrollment is New and the invitation is on its way to the "
    "corporate contact.",
    "edited": "{org}: your changes are saved.",
    "edited_sent": "{org}: your changes are saved and the invitation was sent to the new corporate contact.",
    "edited_not_sent": "{org}: your changes are saved. No invitation was sent; use Resend when you are ready.",
    "deleted": "{org}: the enrollment is deleted (status Cancelled).",
    "resent": "{org}: the invitation was sent again with a new link. The old link no longer works and the "
    "deadline starts again.",
    "review_started": "{org}: review started. Edits are locked while it is in review.",
    "approved": "{org}: approved. The member account is active; its corporate and technical contacts are "
    "emailed a welcome and an invitation to activate their administrator sign-in.",
    "rejected": "{org}: rejected. The corporate contact is emailed the reason.",
    "signed_out": "You have signed out.",
}

ERROR_TARGETS = {"member_type": "member_type-customer", "display_users_purchased": "display_users_purchased-yes"}
"""The input an error summary's link goes to, for the fields shown as radio buttons."""


def account_fields_of(form: Mapping[str, Any]) -> dict[str, str]:
    """The member account's fields from a posted form; a field left out stays out (a radio nobody chose),
    except those that the page hides (portal.js) where they do not apply: those are "no" or empty."""
    fields = {name: value for name in ACCOUNT_FIELDS if isinstance(value := form.get(name), str)}
    if fields.get("member_type") in (MemberType.reseller, MemberType.manufacturer):
        fields.setdefault("display_users_purchased", "no")
        fields.setdefault("reseller_account_id", "")
    if fields.get("display_users_purchased") != "yes":
        fields.setdefault("users_purchased", "")
    return fields


def errors_by_field(errors: list[FieldError]) -> dict[str, str]:
    """Field → message, in the order the fields appear on the page (the error summary reads top to bottom)."""
    order = list(FIELD_LABELS)
    ranked = sorted(errors, key=lambda e: order.index(e.field) if e.field in order else len(order))
    return {e.field: e.message for e in ranked}


def when(at: datetime | None) -> str:
    return at.strftime("%d %b %Y, %H:%M UTC") if at else "—"


def short(at: datetime | None) -> str:
    """For table cells, under a column heading that says UTC."""
    return at.strftime("%d %b %Y %H:%M") if at else "—"


def day(on: date | None) -> str:
    return on.strftime("%d %b %Y") if on else "—"


def links_for(user: User | None) -> list[tuple[str, str]]:
    """The Links pane: what this user may do, in the words CSMs know."""
    if user is None or user.role not in STAFF:
        return []
    links = []
    if user.role in CREATORS:
        links.append(("/accounts/new", "Create New Member Accounts"))
    links += [("/enrollments", "Find Member Account Enrollments"), ("/accounts", "Find Member Accounts")]
    if user.role in REVIEWERS:
        links.append(("/review", "Review queue"))
    if allows(user.role, Permission.users_manage):
        links.append(("/admin/users", "Users"))
    links.append(("/credentials/check", "Check a credential"))
    return links


def page(
    request: Request, template: str, context: Mapping[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A page in the portal's layout (top bar, Links pane) for whoever is signed in. Its security headers, and
    that no cache keeps it, come from `starter.security.SecurityMiddleware`."""
    user: User | None = getattr(request.state, "portal_user", None)
    base = {
        "user": user,
        "csrf_field": CSRF_FIELD,
        "csrf_token": getattr(request.state, "portal_csrf", ""),
        "links": links_for(user),
        "path": request.url.path,
        "can_create": user is not None and user.role in CREATORS,
        "can_review": user is not None and user.role in REVIEWERS,
        "member_types": MEMBER_TYPES,
        "field_labels": FIELD_LABELS,
        "statuses": list(EnrollmentStatus),
        "when": when,
        "day": day,
        "short": short,
        "values": {},
        "errors": {},
        "message": None,
        "mail_trouble": getattr(request.state, "mail_trouble", None) if user and user.role == Role.admin else None,
    }
    return templates.TemplateResponse(request, template, {**base, **(context or {})}, status_code=status_code)


def refusal(request: Request, status_code: int, heading: str, message: str) -> HTMLResponse:
    return page(request, "portal/refusal.html", {"heading": heading, "detail": message}, status_code=status_code)


async def done_message(request: Request, settings: Settings) -> str | None:
    """The status message that `?done=<name>&id=<enrollment>` asks for; never text taken from the URL. The
    `id` has reached this page only if the viewer may see that enrollment (`PortalRoute`)."""
    template = DONE.get(request.query_params.get("done", ""))
    if template is None:
        return None
    org = "The enrollment"
    enrollment_id = request.query_params.get("id", "")
    if "{org}" in template and 0 < len(enrollment_id) <= 64:
        view = await enrollment_store.get_enrollment(settings.effective_database_url, enrollment_id)
        if view is not None:
            org = view.organization_name
    return template.replace("{org}", org)


async def enrollment_or_404(settings: Settings, enrollment_id: str) -> EnrollmentView:
    """Read from the store (pages that only show an enrollment work while Temporal is down)."""
    view = await enrollment_store.get_enrollment(settings.effective_database_url, enrollment_id[:64])
    if view is None:
        raise NotFound("There is no enrollment at this address. It may have been mistyped.")
    return view


async def reseller_name(settings: Settings, reseller_account_id: str | None) -> str | None:
    """The organization name of an enrollment's reseller account, for "via <reseller>" and the summary."""
    if not reseller_account_id:
        return None
    account = await account_store.get_account(settings.effective_database_url, reseller_account_id)
    return account.organization_name if account is not None else None


async def account_home(settings: Settings, user: User) -> str | None:
    """A reseller or customer user's own page once their member account exists: its roll-up or its summary."""
    if user.role in STAFF or not user.account_id:
        return None
    account = await account_store.get_account(settings.effective_database_url, user.account_id[:64])
    if account is None:
        return None
    if user.role == Role.reseller and account.member_type == MemberType.reseller:
        return f"/accounts/{account.id}/customers"
    return f"/accounts/{account.id}"


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def choice(enum: type[E], raw: str | None) -> E | None:
    """The member of `enum` that `raw` spells, or None (a query parameter that is empty or unknown)."""
    try:
        return enum(raw) if raw else None
    except ValueError:
        return None


def form_text(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def may_see_record(settings: Settings, viewer: User, path: str, record_id: str) -> bool:
    """Whether `viewer` may see the record a status message on the page at `path` is about: a member account
    on the account pages (`may_see`, as in the API), else an enrollment (staff: any; a reseller user: its
    customers')."""
    if path == "/accounts" or path.startswith("/accounts/"):
        account = await account_store.get_account(settings.effective_database_url, record_id[:64])
        return account is not None and may_see(viewer, account)
    if allows(viewer.role, Permission.enrollments_read):
        return True
    view = await enrollment_store.get_enrollment(settings.effective_database_url, record_id[:64])
    return view is not None and may_see_enrollment(viewer, view.reseller_account_id)


async def drop_unseen_record(request: Request) -> None:
    """Take `id` out of a `?done=…&id=…` request unless the viewer may see that record, before the page reads
    its query: a status message then names no one (anonymous visitors, or a customer user who put another
    account's id in the address), and every page, present or future, gets this from its route class."""
    params = QueryParams(request.scope["query_string"])
    record_id = params.get("id")
    if "done" not in params or record_id is None:
        return
    settings: Settings = request.app.state.settings
    viewer = await signed_in_user(settings, read_session(request, settings))
    if viewer is not None and await may_see_record(settings, viewer, request.scope["path"], record_id):
        return
    request.scope["query_string"] = urlencode([(k, v) for k, v in params.multi_items() if k != "id"]).encode()


async def mail_trouble_of(settings: Settings) -> str | None:
    """For the admins' banner: since when and how the relay has been refusing mail; None while it accepts."""
    try:
        trouble = await outbox.mail_trouble(settings.effective_database_url)
    except (SQLAlchemyError, OSError):
        return None
    if trouble is None:
        return None
    since, reply = trouble
    return f"Mail failing since {when(since)}: {reply}"


async def first_page(request: Request) -> Response:
    """The page asked for again without its `cursor`: a cursor the portal did not hand out (mistyped, or of
    another order) shows the first page, as if none had been given. `starter.app` answers BadCursor with it."""
    route = request.scope["route"]
    query = [(name, value) for name, value in QueryParams(request.scope["query_string"]).multi_items()]
    scope = {**request.scope, "query_string": urlencode([(k, v) for k, v in query if k != "cursor"]).encode()}
    handle: Callable[[Request], Coroutine[Any, Any, Response]] = route.get_route_handler()
    return await handle(Request(scope, request.receive))


class PortalRoute(APIRoute):
    """Portal routes answer in HTML: sign-in redirects, and refusals as pages in the layout; and a status
    message's record is shown only to whoever may see it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            await drop_unseen_record(request)
            request.state.mail_trouble = await mail_trouble_of(request.app.state.settings)
            try:
                return await handle(request)
            except SignInRequired as exc:
                return redirect((exc.headers or {}).get("Location", "/signin"))
            except NothingHereYet as exc:
                # A staff page asked for by a reseller or customer user: their own page instead, if it exists.
                home = await account_home(request.app.state.settings, exc.user)
                if home is not None:
                    return redirect(home)
                request.state.portal_user = exc.user
                return page(request, "portal/nothing_yet.html", {"role": Role(exc.user.role), "no_account": True})
            except NotFound as exc:
                return refusal(request, 404, "Not found", exc.message)
            except ServiceError as exc:
                return refusal(request, exc.status, "That cannot be done now", exc.message)
            except HTTPException as exc:
                heading = "Not allowed" if exc.status_code == 403 else "Something is not available"
                return refusal(request, exc.status_code, heading, str(exc.detail))

        return route
