"""/api/webhook-endpoints and /api/webhook-deliveries: other systems kept in step with signed webhooks.

An endpoint is registered with `{url, events, description}` and answered with its secret (`whsec_…`) this once;
every event it takes is then POSTed to it per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), retried on a schedule over about 28 hours, and every attempt is kept. Admins' endpoints
receive every event, a reseller's its customers'. The rules: `starter.services.webhooks`; the delivery:
`workflows.webhook_endpoint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from domain.webhooks import DeliveryStatus, EventType
from starter.api.body import JsonBodyRoute
from starter.api.partners import PARTNER
from starter.api.responses import BODY_RESPONSES, CHANGE_RESPONSES
from starter.api.schemas import Detail
from starter.deps import WebhookManager, WebhookServiceDep
from store import webhooks as store

router = APIRouter(prefix="/api", tags=["webhooks"], route_class=JsonBodyRoute)
PARTNERS = "Partners (reseller tokens) may call this."
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Detail}}
EVENT_LIST = ", ".join(f"`{t.value}`" for t in EventType)


class EndpointCreate(BaseModel):
    """The body of POST /api/webhook-endpoints. No other field."""

    model_config = ConfigDict(extra="forbid")

    url: Any = None
    """The https URL that receives the events."""
    events: Any = None
    """The event types it receives, or `["*"]` (the default) for all, those added later included."""
    description: Any = None


class EndpointPatch(BaseModel):
    """The body of PATCH /api/webhook-endpoints/{id}: any of these. No other field."""

    model_config = ConfigDict(extra="forbid")

    url: Any = None
    events: Any = None
    description: Any = None
    enabled: bool | None = None
    """false: stop attempting (pending deliveries wait); true: carry on from where it stopped."""


class EndpointOut(BaseModel):
    """A webhook endpoint: never its secret. `status`: `Enabled`, `Failing` (attempts are failing; `failing_since`
    says since when) or `Disabled` (`status_reason` says why)."""

    id: str
    url: str
    description: str
    events: list[str]
    status: str
    status_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    """After a rotation, until when the previous secret signs too."""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: store.Endpoint) -> EndpointOut:
        return cls.model_validate(endpoint, from_attributes=True)


class EndpointWithSecret(EndpointOut):
    """The endpoint, with the secret that signs its deliveries: shown this once."""

    secret: str


class EndpointList(BaseModel):
    items: list[EndpointOut]


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    at: datetime
    trigger: str
    """`scheduled` or `replay`."""
    status_code: int | None
    duration_ms: int
    response: str | None
    """The first 1 KiB of the answer."""
    error: str | None
    """Why no answer came (refused address, timeout, connection refused)."""


class DeliveryOut(BaseModel):
    """One event to one endpoint; `id` is the `webhook-id` header, the same over every attempt and replay.
    `status`: `Pending` (`next_attempt_at` says when), `Succeeded`, `Failed` (every retry failed) or `Cancelled`
    (the endpoint was deleted)."""

    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, delivery: store.Delivery) -> DeliveryOut:
        return cls.model_validate(delivery, from_attributes=True)


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None
    """Pass as `before` for the next (older) page; null at the end."""


def _items(endpoints: Sequence[store.Endpoint]) -> EndpointList:
    return EndpointList(items=[EndpointOut.of(e) for e in endpoints])


@router.get(
    "/webhook-endpoints",
    response_model=EndpointList,
    openapi_extra=PARTNER,
    description=f"{PARTNERS} Your webhook endpoints (an admin's: the provider's; a reseller's: its own), oldest first.",
)
async def list_endpoints(user: WebhookManager, service: WebhookServiceDep) -> EndpointList:
    return _items(await service.endpoints(user))


@router.post(
    "/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES},
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} Register an endpoint: `url` (https; never one that resolves to a loopback, private,
link-local or metadata address), `events` (a list of {EVENT_LIST}; or `["*"]`, the default, for all) and
`description`. It receives the events recorded from now on (an admin's every one, a reseller's its customers').
The answer's `secret` (`whsec_…`) signs every delivery and is shown this once.""",
)
async def create_endpoint(body: EndpointCreate, user: WebhookManager, service: WebhookServiceDep) -> EndpointWithSecret:
    registered = await service.register(user, url=body.url, events=body.events, description=body.description)
    return EndpointWithSecret(**EndpointOut.of(registered.endpoint).model_dump(), secret=registered.secret)


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=NOT_FOUND,
    openapi_extra=PARTNER,
    description=f"{PARTNERS} One of your endpoints.",
)
async def get_endpoint(endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> EndpointOut:
    return EndpointOut.of(await service.get(user, endpoint_id))


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses={**NOT_FOUND, **BODY_RESPONSES, **CHANGE_RESPONSES},
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} Change `url`, `events` or `description`, or set `enabled`: `false` stops the
attempts (pending deliveries wait), `true` carries on from where they stopped, events recorded meanwhile
included.""",
)
async def change_endpoint(
    endpoint_id: str, body: EndpointPatch, user: WebhookManager, service: WebhookServiceDep
) -> EndpointOut:
    changed = await service.change(
        user, endpoint_id, url=body.url, events=body.events, description=body.description, enabled=body.enabled
    )
    return EndpointOut.of(changed)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=NOT_FOUND,
    openapi_extra=PARTNER,
    description=f"{PARTNERS} Delete the endpoint: it receives nothing more; pending deliveries are Cancelled.",
)
async def delete_endpoint(endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> EndpointOut:
    return EndpointOut.of(await service.delete(user, endpoint_id))


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    responses=NOT_FOUND,
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} A new secret, shown this once. For 24 hours both the new and the previous secret
sign every delivery (two signatures in `webhook-signature`), so a receiver can switch without missing one.""",
)
async def rotate_secret(endpoint_id: str, user: WebhookManager, service: WebhookServiceDep) -> EndpointWithSecret:
    registered = await service.rotate_secret(user, endpoint_id)
    return EndpointWithSecret(**EndpointOut.of(registered.endpoint).model_dump(), secret=registered.secret)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses=NOT_FOUND,
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} The endpoint's deliveries, newest event first, each with every attempt (status
code, time taken, the first 1 KiB of the answer). `status` filters (Pending, Succeeded, Failed, Cancelled).""",
)
async def list_deliveries(
    endpoint_id: str,
    user: WebhookManager,
    service: WebhookServiceDep,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Field(ge=1, le=200), Query()] = 50,
) -> DeliveryPage:
    status_value = delivery_status.value if delivery_status else None
    _, found, more = await service.deliveries(user, endpoint_id, status=status_value, before=before, limit=limit)
    return DeliveryPage(items=[DeliveryOut.of(d) for d in found], next_before=more)


@router.get(
    "/webhook-deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses=NOT_FOUND,
    openapi_extra=PARTNER,
    description=f"{PARTNERS} One delivery, with every attempt.",
)
async def get_delivery(delivery_id: str, user: WebhookManager, service: WebhookServiceDep) -> DeliveryOut:
    return DeliveryOut.of(await service.delivery(user, delivery_id))


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
    responses={**NOT_FOUND, **CHANGE_RESPONSES},
    openapi_extra=PARTNER,
    description=f"""{PARTNERS} Attempt the delivery once more, now, with the same `webhook-id` (receivers that
deduplicate by it can tell). 409 while the endpoint is disabled: enable it first.""",
)
async def replay_delivery(delivery_id: str, user: WebhookManager, service: WebhookServiceDep) -> DeliveryOut:
    return DeliveryOut.of(await service.replay(user, delivery_id))
