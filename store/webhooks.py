"""Webhook endpoints, their deliveries and every attempt: what the API and the portal show, and what the endpoint's
WebhookEndpointWorkflow reads and writes through its activities.

An endpoint's secrets are kept sealed (store.sealed, the endpoint id as associated data). A delivery is one event to
one endpoint; its id is the `webhook-id` header, the same over every attempt and replay, and it is derived from the
endpoint and the event, so collecting the same events again never makes a second one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from domain.webhooks import ALL_EVENTS, DeliveryStatus, EndpointStatus
from store.db import transaction
from store.paging import now
from store.tables import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

RESPONSE_KEPT = 1024
"""How much of a receiver's answer each attempt keeps (characters of its first KiB)."""


def delivery_id_for(endpoint_id: str, event_id: str) -> str:
    """The delivery's id (the `webhook-id` header): stable for this event at this endpoint."""
    digest = hashlib.sha256(f"{endpoint_id}:{event_id}".encode()).digest()
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()[:26]


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    description: str
    events: list[str]
    owner_user_id: str
    owner_email: str
    reseller_account_id: str | None
    status: str
    status_reason: str | None
    failing_since: datetime | None
    start_after: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    secret: str
    """Sealed."""
    previous_secret: str | None
    """Sealed."""
    previous_secret_expires_at: datetime | None


def _endpoint(row: WebhookEndpoint) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        events=list(row.events),
        owner_user_id=row.owner_user_id,
        owner_email=row.owner_email,
        reseller_account_id=row.reseller_account_id,
        status=row.status,
        status_reason=row.status_reason,
        failing_since=row.failing_since,
        start_after=row.start_after,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


async def newest_seq(url: str) -> int:
    """The `seq` of the newest event (0 when there is none)."""
    async with transaction(url) as session:
        return int(await session.scalar(select(func.coalesce(func.max(Event.seq), 0))) or 0)


async def create_endpoint(
    url: str,
    *,
    endpoint_id: str,
    target: str,
    description: str,
    events: Sequence[str],
    owner_user_id: str,
    owner_email: str,
    reseller_account_id: str | None,
    sealed_secret: str,
) -> Endpoint:
    """A new endpoint, Enabled, receiving the events recorded from now on."""
    at = now()
    async with transaction(url) as session:
        start_after = int(await session.scalar(select(func.coalesce(func.max(Event.seq), 0))) or 0)
        row = WebhookEndpoint(
            id=endpoint_id,
            url=target,
            description=description,
            events=list(events),
            owner_user_id=owner_user_id,
            owner_email=owner_email,
            reseller_account_id=reseller_account_id,
            secret=sealed_secret,
            status=EndpointStatus.enabled.value,
            start_after=start_after,
            created_at=at,
            updated_at=at,
        )
        session.add(row)
        await session.flush()
        return _endpoint(row)


async def get_endpoint(url: str, endpoint_id: str, *, deleted: bool = False) -> Endpoint | None:
    async with transaction(url) as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
        if row is None or (row.deleted_at is not None and not deleted):
            return None
        return _endpoint(row)


async def list_endpoints(url: str, *, reseller_account_id: str | None) -> list[Endpoint]:
    """The endpoints one sees, oldest first: an admin (None) every one, the provider's and the resellers'; a
    reseller its own ("" matches none)."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
    if reseller_account_id is not None:
        query = query.where(WebhookEndpoint.reseller_account_id == reseller_account_id)
    async with transaction(url) as session:
        rows = await session.scalars(query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
        return [_endpoint(row) for row in rows]


async def count_endpoints(url: str, *, reseller_account_id: str | None) -> int:
    """The live endpoints of one owner: the provider's (None) or one reseller's."""
    async with transaction(url) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(
                    WebhookEndpoint.deleted_at.is_(None),
                    WebhookEndpoint.reseller_account_id.is_(None)
                    if reseller_account_id is None
                    else WebhookEndpoint.reseller_account_id == reseller_account_id,
                )
            )
            or 0
        )


async def change_endpoint(url: str, endpoint_id: str, /, **changes: Any) -> Endpoint | None:
    """Set `changes` (url, description, events, secrets, status…) on a live endpoint; None when there is none."""
    async with transaction(url) as session:
        row = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if row is None or row.deleted_at is not None:
            return None
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = now()
        await session.flush()
        return _endpoint(row)


async def forget_endpoint(url: str, endpoint_id: str) -> None:
    """Take back the row of an endpoint whose run could not be started (it never received anything)."""
    async with transaction(url) as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
        if row is not None:
            await session.delete(row)


async def delete_endpoint(url: str, endpoint_id: str) -> Endpoint | None:
    """Mark the endpoint deleted (its deliveries and attempts stay until retention prunes them) and cancel what is
    still pending; None when there is no live one."""
    at = now()
    async with transaction(url) as session:
        row = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if row is None or row.deleted_at is not None:
            return None
        row.deleted_at = at
        row.updated_at = at
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.pending.value)
            .values(status=DeliveryStatus.cancelled.value, next_attempt_at=None, updated_at=at)
        )
        return _endpoint(row)


async def collect(url: str, endpoint_id: str, *, after: int, limit: int) -> tuple[list[str], int, bool] | None:
    """Make the deliveries of the events after `after` that the endpoint receives, in order (at most `limit`), and
    answer (the ids of those pending — made now, or made before by an attempt whose answer was lost —, the cursor
    past them, whether any event is newer than `after` at all). None when the endpoint is gone (deleted).

    The cursor moves past events the endpoint does not take as well, so a quiet filter does not make it look at
    the same events again. `seq` order is commit order (`store.events.add_event`), so nothing is skipped."""
    async with transaction(url) as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.deleted_at is not None:
            return None
        newest = int(await session.scalar(select(func.coalesce(func.max(Event.seq), 0))) or 0)
        after = max(after, endpoint.start_after)
        if newest <= after:
            return [], after, False
        query = select(Event.seq, Event.id, Event.type).where(Event.seq > after, Event.seq <= newest)
        if ALL_EVENTS not in endpoint.events:
            query = query.where(Event.type.in_(endpoint.events))
        if endpoint.reseller_account_id is not None:
            query = query.where(Event.reseller_account_id == endpoint.reseller_account_id)
        rows = (await session.execute(query.order_by(Event.seq).limit(limit))).all()
        cursor = rows[-1].seq if len(rows) == limit else newest
        ids = [delivery_id_for(endpoint_id, row.id) for row in rows]
        existing: dict[str, str] = {}
        if ids:
            found = await session.execute(
                select(WebhookDelivery.id, WebhookDelivery.status).where(WebhookDelivery.id.in_(ids))
            )
            existing = {delivery_id: status for delivery_id, status in found.all()}
        at = now()
        for row, delivery_id in zip(rows, ids, strict=True):
            if delivery_id not in existing:
                session.add(
                    WebhookDelivery(
                        id=delivery_id,
                        endpoint_id=endpoint_id,
                        event_id=row.id,
                        event_type=row.type,
                        event_seq=row.seq,
                        status=DeliveryStatus.pending.value,
                        attempts=0,
                        next_attempt_at=at,
                        created_at=at,
                        updated_at=at,
                    )
                )
        # One made before and still pending comes again (an earlier collect whose answer was lost); one that has
        # ended (a run started afresh over old events) does not.
        pending = [d for d in ids if existing.get(d, DeliveryStatus.pending.value) == DeliveryStatus.pending.value]
        return pending, cursor, True


@dataclass(frozen=True)
class DeliveryToSend:
    """What one attempt needs: the delivery, how many attempts it has had, and the event as it is posted."""

    delivery_id: str
    attempts: int
    status: str
    event: dict[str, Any]


def _posted(event: Event) -> dict[str, Any]:
    """The event as it is posted: as `GET /api/events` shows it."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }


async def deliveries_to_send(
    url: str, endpoint_id: str, delivery_ids: Sequence[str]
) -> tuple[Endpoint, list[DeliveryToSend]] | None:
    """The live endpoint and, in the order asked, those of the deliveries that are its own and whose event is
    still kept, in one transaction; None when the endpoint is gone (deleted)."""
    async with transaction(url) as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.deleted_at is not None:
            return None
        rows = {
            row.id: row
            for row in await session.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.id.in_(list(delivery_ids)), WebhookDelivery.endpoint_id == endpoint_id
                )
            )
        }
        events = {
            event.id: event
            for event in await session.scalars(select(Event).where(Event.id.in_([r.event_id for r in rows.values()])))
        }
        found = [
            DeliveryToSend(
                delivery_id=row.id, attempts=row.attempts, status=row.status, event=_posted(events[row.event_id])
            )
            for row in (rows.get(delivery_id) for delivery_id in delivery_ids)
            if row is not None and row.event_id in events
        ]
        return _endpoint(endpoint), found


@dataclass(frozen=True)
class AttemptRecord:
    key: str
    delivery_id: str
    endpoint_id: str
    at: datetime
    number: int
    trigger: str
    status_code: int | None
    duration_ms: int
    response: str | None
    error: str | None
    status: DeliveryStatus
    """The delivery's status after this attempt."""
    next_attempt_at: datetime | None


async def record_attempts(url: str, attempts: Sequence[AttemptRecord]) -> None:
    """Keep the attempts (each once, by its key) and bring each delivery's status, count and next attempt up to its
    attempt: a batch in one transaction."""
    if not attempts:
        return
    try:
        async with transaction(url) as session:
            keys = [a.key for a in attempts]
            seen = set(await session.scalars(select(WebhookAttempt.key).where(WebhookAttempt.key.in_(keys))))
            fresh = [a for a in attempts if a.key not in seen]
            if not fresh:
                return
            ids = list({a.delivery_id for a in fresh})
            deliveries = {
                row.id: row
                for row in await session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).with_for_update()
                )
            }
            at = now()
            for attempt in fresh:
                session.add(
                    WebhookAttempt(
                        key=attempt.key,
                        delivery_id=attempt.delivery_id,
                        endpoint_id=attempt.endpoint_id,
                        at=attempt.at,
                        number=attempt.number,
                        trigger=attempt.trigger,
                        status_code=attempt.status_code,
                        duration_ms=attempt.duration_ms,
                        response=attempt.response[:RESPONSE_KEPT] if attempt.response is not None else None,
                        error=attempt.error,
                    )
                )
                delivery = deliveries.get(attempt.delivery_id)
                if delivery is None:
                    continue
                delivery.attempts = max(delivery.attempts, attempt.number)
                delivery.last_status_code = attempt.status_code
                delivery.updated_at = at
                if delivery.status != DeliveryStatus.cancelled.value:
                    delivery.status = attempt.status.value
                    delivery.next_attempt_at = attempt.next_attempt_at
    except IntegrityError:
        return  # the same attempts recorded by a twin at the same moment: each is kept once


async def set_status(
    url: str, endpoint_id: str, *, status: EndpointStatus, reason: str | None, failing_since: datetime | None
) -> Endpoint | None:
    """The endpoint's status as its run decided it (Enabled, Failing, Disabled); None when it is gone."""
    return await change_endpoint(
        url, endpoint_id, status=status.value, status_reason=reason, failing_since=failing_since
    )


async def reschedule(url: str, delivery_ids: Sequence[str], *, next_attempt_at: datetime | None) -> None:
    """Pending deliveries due again at `next_attempt_at` (the endpoint was enabled again, or one was replayed)."""
    if not delivery_ids:
        return
    async with transaction(url) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(list(delivery_ids)), WebhookDelivery.status == DeliveryStatus.pending.value)
            .values(next_attempt_at=next_attempt_at, updated_at=now())
        )


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    trigger: str
    status_code: int | None
    duration_ms: int
    response: str | None
    error: str | None


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime
    attempt_log: list[Attempt]


def _attempt(row: WebhookAttempt) -> Attempt:
    return Attempt(
        number=row.number,
        at=row.at,
        trigger=row.trigger,
        status_code=row.status_code,
        duration_ms=row.duration_ms,
        response=row.response,
        error=row.error,
    )


async def _deliveries(url: str, rows: Sequence[WebhookDelivery]) -> list[Delivery]:
    ids = [row.id for row in rows]
    attempts: dict[str, list[Attempt]] = {delivery_id: [] for delivery_id in ids}
    if ids:
        async with transaction(url) as session:
            found = await session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(ids))
                .order_by(WebhookAttempt.at, WebhookAttempt.key)
            )
            for attempt in found:
                attempts[attempt.delivery_id].append(_attempt(attempt))
    return [
        Delivery(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            event_type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status_code=row.last_status_code,
            created_at=row.created_at,
            updated_at=row.updated_at,
            attempt_log=attempts[row.id],
        )
        for row in rows
    ]


async def list_deliveries(
    url: str, endpoint_id: str, *, status: str | None = None, before: int | None = None, limit: int = 50
) -> tuple[list[Delivery], int | None]:
    """The endpoint's deliveries, newest event first, with their attempts; paged by event `seq` (`before`): the
    next page's `before`, or None at the end."""
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before is not None:
        query = query.where(WebhookDelivery.event_seq < before)
    async with transaction(url) as session:
        rows = list(await session.scalars(query.order_by(WebhookDelivery.event_seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return await _deliveries(url, rows), (rows[-1].event_seq if more and rows else None)


async def get_delivery(url: str, delivery_id: str) -> Delivery | None:
    async with transaction(url) as session:
        row = await session.get(WebhookDelivery, delivery_id)
    if row is None:
        return None
    return (await _deliveries(url, [row]))[0]


async def pending_count(url: str, endpoint_id: str) -> int:
    async with transaction(url) as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == endpoint_id,
                    WebhookDelivery.status == DeliveryStatus.pending.value,
                )
            )
            or 0
        )
