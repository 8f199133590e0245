"""/webhooks: your webhook endpoints, each with its deliveries (issue 20: "a portal page lists them").

- `/webhooks`: the endpoints, and the form that registers one (URL, description, all events or the ticked ones).
  Its secret is shown once, on the page the registration answers with.
- `/webhooks/{id}`: the endpoint and its deliveries, newest first, each with every attempt and a Replay button;
  filtered by status and paged with "Older" (`before`). Its buttons disable or enable it, rotate its secret (the
  new one shown once; the previous one signs too for 24 hours), and delete it after a page that asks first; its
  form changes the URL, description and events.

Who: `webhooks.manage` (an admin: endpoints that receive every event; a reseller's administrator: its own, for
its customers' events). Anyone else with the permission's endpoint id is answered as for an unknown one. The rules
are `starter.services.webhooks.WebhookService`'s; these pages show its answers. Every change is a POST that
redirects back (303) with a fixed status message, or shows the page again with the fields' errors or Temporal's
refusal at the top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from domain.access import Permission, allows, event_scope
from domain.webhooks import ALL_EVENTS, MAX_ATTEMPTS, SECRET_OVERLAP, DeliveryStatus, EventType
from starter.deps import WebhookServiceDep
from starter.portal.common import PortalRoute, choice, form_text, page, redirect
from starter.portal.pages import templates
from starter.portal.session import require_portal
from starter.services.errors import Conflict, InvalidInput, NotFound, Unavailable
from starter.services.webhooks import (
    MAX_DESCRIPTION,
    MAX_ENDPOINTS,
    UNKNOWN_DELIVERY,
    WebhookService,
    check_description,
)
from store import webhooks as store
from store.tables import User
from webhooks.http import MAX_URL_LENGTH

router = APIRouter(prefix="/webhooks", include_in_schema=False, route_class=PortalRoute)
WebhookManager = Annotated[User, require_portal(Permission.webhooks_manage)]
PAGE_SIZE = 20

LABELS = {"url": "URL", "description": "Description", "events": "Events"}
GROUPS = {
    "enrollment": "Enrollments",
    "account": "Member accounts",
    "administrator": "Administrators",
    "credential_batch": "Credential batches",
}
EVENT_GROUPS = [(name, [t for t in EventType if t.value.split(".")[0] == prefix]) for prefix, name in GROUPS.items()]
ENDPOINT_CLASS = {"Enabled": "active", "Failing": "suspended", "Disabled": "deleted"}
DELIVERY_CLASS = {"Pending": "new", "Succeeded": "approved", "Failed": "rejected", "Cancelled": "cancelled"}
OVERLAP_HOURS = int(SECRET_OVERLAP.total_seconds() // 3600)

# `?done=` names one of these fixed sentences, never text taken from the URL.
DONE = {
    "changed": "Your changes are saved.",
    "disabled": "The endpoint is disabled: nothing is sent to it until you enable it. Its pending deliveries wait.",
    "enabled": "The endpoint is enabled: it carries on from where it stopped, events recorded meanwhile included.",
    "replayed": "The delivery is being attempted once more, now, with the same webhook-id. Its attempt shows in a "
    "moment: refresh the page.",
    "deleted": "The endpoint is deleted: it receives nothing more, and its pending deliveries are Cancelled.",
}
NO_EVENTS = "needs at least one event type ticked, or All events chosen."
BOTH = 'needs one choice: "All events", or "Only the ticked events" with the event types ticked.'


def may_manage_webhooks(user: User | None) -> bool:
    """Whether the layout's Links pane offers `/webhooks` to `user`."""
    return user is not None and allows(user.role, Permission.webhooks_manage)


templates.env.globals["may_manage_webhooks"] = may_manage_webhooks


def form_values(form: Mapping[str, Any], ticked: Sequence[object]) -> dict[str, Any]:
    """What was posted, to check and to show again in the form (unknown event types left out; a text cut one
    past its longest, so that its check still says it is too long)."""
    known = {t.value for t in EventType}
    return {
        "url": (form_text(form, "url") or "")[: MAX_URL_LENGTH + 1],
        "description": (form_text(form, "description") or "")[: MAX_DESCRIPTION + 1],
        "events_mode": form_text(form, "events_mode") or "",
        "events": [v for v in ticked if isinstance(v, str) and v in known],
    }


def endpoint_values(endpoint: store.Endpoint) -> dict[str, Any]:
    everything = endpoint.events == [ALL_EVENTS]
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "events_mode": "all" if everything else "chosen",
        "events": [] if everything else endpoint.events,
    }


def chosen_events(values: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The event types the form asks for (["*"] for all), or why it asks for none."""
    ticked: list[str] = values["events"]
    if values["events_mode"] == "all":
        return ([ALL_EVENTS], None) if not ticked else ([], BOTH)
    if values["events_mode"] == "chosen":
        return (ticked, None) if ticked else ([], NO_EVENTS)
    return [], BOTH


async def field_errors(service: WebhookService, values: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The events asked for, and every field's error at once (the service stops at the first it finds)."""
    errors: dict[str, str] = {}
    try:
        await service.check_url(values["url"])
    except InvalidInput as exc:
        errors |= {e.field: e.message for e in exc.errors}
    try:
        check_description(values["description"])
    except InvalidInput as exc:
        errors |= {e.field: e.message for e in exc.errors}
    events, problem = chosen_events(values)
    if problem is not None:
        errors["events"] = problem
    return events, errors


def base_context(user: User) -> dict[str, Any]:
    return {
        "event_groups": EVENT_GROUPS,
        "field_labels": LABELS,
        "endpoint_class": ENDPOINT_CLASS,
        "everything": event_scope(user) is None,
        "max_description": MAX_DESCRIPTION,
    }


async def _list_page(
    request: Request,
    user: User,
    service: WebhookService,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context = {
        **base_context(user),
        "endpoints": await service.endpoints(user),
        "most": MAX_ENDPOINTS,
        "values": values or {"events_mode": "all", "events": []},
        "errors": errors or {},
        "problem": problem,
        "message": None if errors or problem else DONE.get(request.query_params.get("done", "")),
    }
    return page(request, "portal/webhooks.html", context, status_code=status)


def _filters(status: str | None, before: int | None) -> dict[str, str]:
    return {k: str(v) for k, v in (("status", status), ("before", before)) if v}


def _before(raw: object) -> int | None:
    return int(raw) if isinstance(raw, str) and raw.isdigit() and 0 < len(raw) <= 18 else None


async def _endpoint_page(
    request: Request,
    user: User,
    service: WebhookService,
    endpoint_id: str,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    params = request.query_params
    wanted = choice(DeliveryStatus, params.get("status"))
    before = _before(params.get("before"))
    endpoint, deliveries, older = await service.deliveries(
        user, endpoint_id, status=wanted.value if wanted else None, before=before, limit=PAGE_SIZE
    )
    base = f"/webhooks/{endpoint.id}"

    def link(before: int | None = None) -> str:
        query = _filters(wanted.value if wanted else None, before)
        return base + (f"?{urlencode(query)}#deliveries" if query else "#deliveries")

    context = {
        **base_context(user),
        "e": endpoint,
        "deliveries": deliveries,
        "delivery_class": DELIVERY_CLASS,
        "statuses": list(DeliveryStatus),
        "wanted": wanted,
        "before": before,
        "older": older,
        "link": link,
        "max_attempts": MAX_ATTEMPTS,
        "values": values or endpoint_values(endpoint),
        "errors": errors or {},
        "problem": problem,
        "message": None if errors or problem else DONE.get(params.get("done", "")),
    }
    return page(request, "portal/webhooks_endpoint.html", context, status_code=status)


@router.get("", response_class=HTMLResponse)
async def endpoints(request: Request, user: WebhookManager, service: WebhookServiceDep) -> Response:
    return await _list_page(request, user, service)


@router.post("", response_class=HTMLResponse)
async def register(request: Request, user: WebhookManager, service: WebhookServiceDep) -> Response:
    """A new endpoint: the page that shows its secret, once."""
    form = await request.form()
    values = form_values(form, form.getlist("events"))
    events, errors = await field_errors(service, values)
    if errors:
        return await _list_page(request, user, service, values=values, errors=errors, status=422)
    try:
        registered = await service.register(user, url=values["url"], events=events, description=values["description"])
    except InvalidInput as exc:
        errors = {e.field: e.message for e in exc.errors}
        return await _list_page(request, user, service, values=values, errors=errors, status=422)
    except (Conflict, Unavailable) as exc:
        return await _list_page(request, user, service, values=values, problem=exc.message, status=exc.status)
    context = {"e": registered.endpoint, "secret": registered.secret, "rotated": False, "overlap": OVERLAP_HOURS}
    return page(request, "portal/webhooks_secret.html", context)


@router.get("/{endpoint_id:record}", response_class=HTMLResponse)
async def endpoint(request: Request, endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> Response:
    return await _endpoint_page(request, user, service, endpoint_id)


@router.post("/{endpoint_id:record}", response_class=HTMLResponse)
async def change(request: Request, endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> Response:
    """The edit form: URL, description and events, all at once."""
    await service.get(user, endpoint_id)
    form = await request.form()
    values = form_values(form, form.getlist("events"))
    events, errors = await field_errors(service, values)
    if errors:
        return await _endpoint_page(request, user, service, endpoint_id, values=values, errors=errors, status=422)
    try:
        await service.change(user, endpoint_id, url=values["url"], events=events, description=values["description"])
    except InvalidInput as exc:
        errors = {e.field: e.message for e in exc.errors}
        return await _endpoint_page(request, user, service, endpoint_id, values=values, errors=errors, status=422)
    return redirect(f"/webhooks/{endpoint_id}?done=changed")


async def _set_enabled(
    request: Request, user: User, service: WebhookService, endpoint_id: str, *, enabled: bool
) -> Response:
    try:
        await service.change(user, endpoint_id, enabled=enabled)
    except (Conflict, Unavailable) as exc:
        return await _endpoint_page(request, user, service, endpoint_id, problem=exc.message, status=exc.status)
    return redirect(f"/webhooks/{endpoint_id}?done={'enabled' if enabled else 'disabled'}")


@router.post("/{endpoint_id:record}/disable", response_class=HTMLResponse)
async def disable(request: Request, endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> Response:
    return await _set_enabled(request, user, service, endpoint_id, enabled=False)


@router.post("/{endpoint_id:record}/enable", response_class=HTMLResponse)
async def enable(request: Request, endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> Response:
    return await _set_enabled(request, user, service, endpoint_id, enabled=True)


@router.post("/{endpoint_id:record}/rotate-secret", response_class=HTMLResponse)
async def rotate_secret(
    request: Request, endpoint_id: str, user: WebhookManager, service: WebhookServiceDep
) -> Response:
    """A new secret, shown once; the previous one keeps signing beside it for 24 hours."""
    rotated = await service.rotate_secret(user, endpoint_id)
    context = {"e": rotated.endpoint, "secret": rotated.secret, "rotated": True, "overlap": OVERLAP_HOURS}
    return page(request, "portal/webhooks_secret.html", context)


@router.get("/{endpoint_id:record}/delete", response_class=HTMLResponse)
async def delete_form(request: Request, endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> Response:
    endpoint = await service.get(user, endpoint_id)
    pending = await store.pending_count(service.url, endpoint.id)
    return page(request, "portal/webhooks_delete.html", {"e": endpoint, "pending": pending})


@router.post("/{endpoint_id:record}/delete", response_class=HTMLResponse)
async def delete(endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> Response:
    await service.delete(user, endpoint_id)
    return redirect("/webhooks?done=deleted")


@router.post("/{endpoint_id:record}/deliveries/{delivery_id:record}/replay", response_class=HTMLResponse)
async def replay(
    request: Request, endpoint_id: str, delivery_id: str, user: WebhookManager, service: WebhookServiceDep
) -> Response:
    """Attempt the delivery once more, now; back to the page (its filter and page kept) it was asked from."""
    form = await request.form()
    wanted = choice(DeliveryStatus, form_text(form, "status"))
    query = _filters(wanted.value if wanted else None, _before(form.get("before")))
    found = await service.delivery(user, delivery_id)
    if found.endpoint_id != endpoint_id:
        raise NotFound(UNKNOWN_DELIVERY.format(delivery_id=delivery_id))
    try:
        await service.replay(user, delivery_id)
    except (Conflict, Unavailable) as exc:
        return await _endpoint_page(request, user, service, endpoint_id, problem=exc.message, status=exc.status)
    return redirect(f"/webhooks/{endpoint_id}?{urlencode({**query, 'done': 'replayed'})}#delivery-{delivery_id}")
