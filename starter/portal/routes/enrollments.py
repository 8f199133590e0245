"""Member Account Enrollments: the table (filter, search, sort, pages) and one enrollment's tabs."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.access import ENROLLERS, REVIEWERS, enrollment_scope
from domain.models import EnrollmentStatus, EnrollmentView, MemberType
from domain.settings import Settings
from domain.status import EnrollmentAction, enrollment_allows
from starter.deps import SettingsDep
from starter.portal.common import PortalRoute, choice, done_message, page, reseller_name
from starter.portal.partners import PortalEnrollmentReader
from starter.services.enrollments import visible_enrollment
from store import accounts as account_store
from store import outbox
from store.portal import SORT_LABELS, EnrollmentRow, Sort, enrollment_page
from store.tables import User
from workflows.names import enrollment_workflow_id

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
PAGE_SIZE = 50
TABS = {"account": "Account", "form": "Enrollment Form", "emails": "Emails", "timeline": "Timeline"}


def actions_for(user: User, status: EnrollmentStatus) -> list[str]:
    """Which of Edit, Delete, Resend this user may do to an enrollment in `status` (the status machine says); a
    partner sees only its own customers' enrollments, so it may do them to every one it sees."""
    if user.role not in ENROLLERS:
        return []
    allowed = [
        ("edit", EnrollmentAction.edit),
        ("delete", EnrollmentAction.cancel),
        ("resend", EnrollmentAction.resend),
    ]
    return [name for name, action in allowed if enrollment_allows(status, action)]


@router.get("/enrollments", response_class=HTMLResponse)
async def enrollments(request: Request, user: PortalEnrollmentReader, settings: SettingsDep) -> Response:
    """Staff: every enrollment, and a filter by reseller; a partner: its own customers' alone."""
    params = request.query_params
    status = choice(EnrollmentStatus, params.get("status"))
    member_type = choice(MemberType, params.get("member_type"))
    sort = choice(Sort, params.get("sort")) or Sort.newest
    q = (params.get("q") or "").strip()[:200]
    cursor = (params.get("cursor") or "")[:500] or None
    url = settings.effective_database_url
    scope = enrollment_scope(user)
    resellers = await account_store.reseller_choices(url) if scope is None else []
    reseller = (params.get("reseller_account_id") or "").strip()[:64] or None if scope is None else None
    found = await enrollment_page(
        url,
        status=status,
        member_type=member_type,
        q=q,
        sort=sort,
        limit=PAGE_SIZE,
        cursor=cursor,
        reseller_account_id=scope if scope is not None else reseller,
    )

    def link(**changes: str | None) -> str:
        """This table's URL with `changes`, on its first page unless `cursor` is one of them."""
        merged = {
            "status": status,
            "member_type": member_type,
            "q": q,
            "reseller_account_id": reseller,
            "sort": sort,
            "cursor": None,
            **changes,
        }
        query = {k: str(v) for k, v in merged.items() if v and not (k == "sort" and v == Sort.newest)}
        return "/enrollments" + (f"?{urlencode(query)}" if query else "")

    rows: list[tuple[EnrollmentRow, list[str]]] = [(row, actions_for(user, row.status)) for row in found.rows]
    context = {
        "rows": rows,
        "page": found,
        "status": status,
        "member_type": member_type,
        "q": q,
        "sort": sort,
        "sorts": SORT_LABELS,
        "filtered": bool(status or member_type or q or reseller),
        "partner": scope is not None,
        "resellers": resellers,
        "reseller": reseller,
        "first_page": cursor is None,
        "link": link,
        "message": await done_message(request, settings),
    }
    return page(request, "portal/enrollments.html", context)


def temporal_url(settings: Settings, enrollment_id: str) -> str:
    return (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/"
        f"{enrollment_workflow_id(enrollment_id)}"
    )


async def detail_context(view: EnrollmentView, user: User, settings: Settings, tab: str) -> dict[str, object]:
    emails = await outbox.emails_of(settings.effective_database_url, enrollment_id=view.id) if tab == "emails" else []
    return {
        "e": view,
        "tab": tab,
        "tabs": TABS,
        "emails": emails,
        "actions": actions_for(user, view.status),
        "reviewable": user.role in REVIEWERS
        and view.status in (EnrollmentStatus.pending_review, EnrollmentStatus.in_review),
        "partner": enrollment_scope(user) is not None,
        "reseller_name": await reseller_name(settings, view.reseller_account_id),
        "temporal_url": temporal_url(settings, view.id),
    }


@router.get("/enrollments/{enrollment_id}", response_class=HTMLResponse)
async def enrollment(
    request: Request, enrollment_id: str, user: PortalEnrollmentReader, settings: SettingsDep
) -> Response:
    view = await visible_enrollment(settings.effective_database_url, user, enrollment_id)
    tab = request.query_params.get("tab", "account")
    tab = tab if tab in TABS else "account"
    context = await detail_context(view, user, settings, tab)
    context["message"] = await done_message(request, settings)
    return page(request, "portal/enrollment.html", context)
