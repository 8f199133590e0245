"""Webhook endpoints: registered, listed, changed, deleted, their secret rotated, their deliveries listed and
replayed — the work behind `/api/webhook-endpoints`, `/api/webhook-deliveries` and the portal's Webhooks page.

- **Whose.** An admin's endpoint receives every event; a reseller's, its customers' alone (`domain.access.
  event_scope`). One sees and changes only the endpoints of one's own scope: any other id is answered as unknown.
- **The secret** (`whsec_…`) is shown once, when the endpoint is registered or its secret rotated; the store keeps
  it sealed. After a rotation the previous secret signs too, for 24 hours.
- **Safe URLs.** `https` only, and never one that resolves to a loopback, private, link-local or metadata address
  (checked here, and again by every attempt as it connects); `ENROLL_WEBHOOKS_ALLOW_PRIVATE=true` lifts both for
  development.
- **One row, one run.** The row is written, then its WebhookEndpointWorkflow started; a start that fails takes the
  row back, so there is never one without the other.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.client import Client

from domain.access import event_scope
from domain.models import FieldError
from domain.settings import Settings
from domain.webhooks import ALL_EVENTS, SECRET_OVERLAP, EnableEndpoint, EventType, RemoveEndpoint, ReplayDelivery
from starter.services.errors import Conflict, InvalidInput, NotFound, Unavailable
from starter.services.temporal import run_update, unavailable_when_down
from store import webhooks as store
from store.sealed import seal
from store.tables import User
from webhooks.http import resolve_problem, url_problem
from webhooks.signing import new_secret
from workflows.names import webhook_endpoint_workflow_id
from workflows.webhook_endpoint import WebhookEndpointWorkflow, start_endpoint

MAX_ENDPOINTS = 20
"""Live endpoints one owner scope (the provider's admins together, or one reseller) may have."""
MAX_DESCRIPTION = 500
UNKNOWN_ENDPOINT = "No webhook endpoint has the id {endpoint_id}."
UNKNOWN_DELIVERY = "No webhook delivery has the id {delivery_id}."
EVENT_TYPES = frozenset(t.value for t in EventType)


def check_events(value: object) -> list[str]:
    """The event types an endpoint receives: a non-empty list of known types, or ["*"] for all of them."""
    if value is None:
        return [ALL_EVENTS]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput([FieldError(field="events", message='must be a list of event types, or ["*"] for all')])
    wanted = list(dict.fromkeys(v.strip() for v in value))
    if ALL_EVENTS in wanted:
        if len(wanted) > 1:
            raise InvalidInput([FieldError(field="events", message='takes "*" alone, or a list of event types')])
        return wanted
    unknown = [v for v in wanted if v not in EVENT_TYPES]
    if unknown:
        known = ", ".join(sorted(EVENT_TYPES))
        message = f'has unknown event types: {", ".join(unknown)} (known: {known}; or "*" for all)'
        raise InvalidInput([FieldError(field="events", message=message)])
    return wanted


def check_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or any(ord(c) < 32 for c in value):
        raise InvalidInput(
            [FieldError(field="description", message=f"must be one line of at most {MAX_DESCRIPTION} characters")]
        )
    return value.strip()


@dataclass(frozen=True)
class Registered:
    endpoint: store.Endpoint
    secret: str
    """Shown once."""


class WebhookService:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.effective_database_url

    async def check_url(self, value: object) -> str:
        """The endpoint's URL, or the field's error: https (unless private receivers are allowed), and resolving
        only to public addresses (checked again when each attempt connects)."""
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput([FieldError(field="url", message="is required: the https URL that receives events")])
        target = value.strip()
        allow = self.settings.webhooks_allow_private
        problem = url_problem(target, allow_private=allow) or await resolve_problem(target, allow_private=allow)
        if problem is not None:
            raise InvalidInput([FieldError(field="url", message=problem)])
        return target

    async def register(self, viewer: User, *, url: object, events: object, description: object) -> Registered:
        """A new endpoint (Enabled, for the events from now on) and its run; the secret, to be shown once."""
        scope = event_scope(viewer)
        if scope == "":
            raise Conflict("Your user is not bound to a reseller account, so it has no events to receive.")
        target, wanted, about = await self.check_url(url), check_events(events), check_description(description)
        if await store.count_endpoints(self.url, reseller_account_id=scope) >= MAX_ENDPOINTS:
            raise Conflict(f"There are {MAX_ENDPOINTS} webhook endpoints already, the most allowed: delete one first.")
        endpoint_id = "we_" + secrets.token_hex(12)
        secret = new_secret()
        endpoint = await store.create_endpoint(
            self.url,
            endpoint_id=endpoint_id,
            target=target,
            description=about,
            events=wanted,
            owner_user_id=viewer.id,
            owner_email=viewer.email,
            reseller_account_id=scope,
            sealed_secret=seal(self.settings.signing_key, secret, endpoint_id),
        )
        try:
            with unavailable_when_down():
                await start_endpoint(self.client, endpoint_id, endpoint.start_after, self.settings.task_queue)
        except Exception:
            await store.forget_endpoint(self.url, endpoint_id)  # no row without its run
            raise
        return Registered(endpoint=endpoint, secret=secret)

    async def endpoints(self, viewer: User) -> list[store.Endpoint]:
        return await store.list_endpoints(self.url, reseller_account_id=event_scope(viewer))

    async def get(self, viewer: User, endpoint_id: str) -> store.Endpoint:
        endpoint = await store.get_endpoint(self.url, endpoint_id)
        scope = event_scope(viewer)
        if endpoint is None or (scope is not None and endpoint.reseller_account_id != scope):
            raise NotFound(UNKNOWN_ENDPOINT.format(endpoint_id=endpoint_id))
        return endpoint

    async def change(
        self,
        viewer: User,
        endpoint_id: str,
        *,
        url: object = None,
        events: object = None,
        description: object = None,
        enabled: bool | None = None,
    ) -> store.Endpoint:
        """Change what was given. `enabled`: false stops attempts (pending deliveries wait); true carries on from
        where it stopped, events recorded in between included."""
        await self.get(viewer, endpoint_id)
        changes: dict[str, object] = {}
        if url is not None:
            changes["url"] = await self.check_url(url)
        if events is not None:
            changes["events"] = check_events(events)
        if description is not None:
            changes["description"] = check_description(description)
        if changes:
            await store.change_endpoint(self.url, endpoint_id, **changes)
        if enabled is not None:
            await run_update(
                self.client,
                webhook_endpoint_workflow_id(endpoint_id),
                WebhookEndpointWorkflow.set_enabled,
                EnableEndpoint(enabled=enabled),
            )
        return await self.get(viewer, endpoint_id)

    async def delete(self, viewer: User, endpoint_id: str) -> store.Endpoint:
        """The endpoint stops receiving at once (its pending deliveries are Cancelled) and its run ends."""
        await self.get(viewer, endpoint_id)
        endpoint = await store.delete_endpoint(self.url, endpoint_id)
        if endpoint is None:
            raise NotFound(UNKNOWN_ENDPOINT.format(endpoint_id=endpoint_id))
        # Its run may have ended, or Temporal be away: then the run finds the endpoint gone on its next collect.
        with contextlib.suppress(Conflict, Unavailable):
            await run_update(
                self.client, webhook_endpoint_workflow_id(endpoint_id), WebhookEndpointWorkflow.remove, RemoveEndpoint()
            )
        return endpoint

    async def rotate_secret(self, viewer: User, endpoint_id: str) -> Registered:
        """A new secret, shown once; the current one keeps signing beside it for 24 hours."""
        current = await self.get(viewer, endpoint_id)
        secret = new_secret()
        endpoint = await store.change_endpoint(
            self.url,
            endpoint_id,
            secret=seal(self.settings.signing_key, secret, endpoint_id),
            previous_secret=current.secret,
            previous_secret_expires_at=datetime.now(UTC) + SECRET_OVERLAP,
        )
        if endpoint is None:
            raise NotFound(UNKNOWN_ENDPOINT.format(endpoint_id=endpoint_id))
        return Registered(endpoint=endpoint, secret=secret)

    async def deliveries(
        self, viewer: User, endpoint_id: str, *, status: str | None, before: int | None, limit: int
    ) -> tuple[store.Endpoint, Sequence[store.Delivery], int | None]:
        endpoint = await self.get(viewer, endpoint_id)
        found, more = await store.list_deliveries(self.url, endpoint_id, status=status, before=before, limit=limit)
        return endpoint, found, more

    async def delivery(self, viewer: User, delivery_id: str) -> store.Delivery:
        found = await store.get_delivery(self.url, delivery_id)
        if found is None:
            raise NotFound(UNKNOWN_DELIVERY.format(delivery_id=delivery_id))
        try:
            await self.get(viewer, found.endpoint_id)
        except NotFound:
            raise NotFound(UNKNOWN_DELIVERY.format(delivery_id=delivery_id)) from None
        return found

    async def replay(self, viewer: User, delivery_id: str) -> store.Delivery:
        """Attempt the delivery once more, now, with the same `webhook-id`: the receiver can tell it is the same."""
        found = await self.delivery(viewer, delivery_id)
        await run_update(
            self.client,
            webhook_endpoint_workflow_id(found.endpoint_id),
            WebhookEndpointWorkflow.replay,
            ReplayDelivery(delivery_id=delivery_id),
        )
        return found
