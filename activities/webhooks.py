"""A webhook endpoint's I/O (WebhookEndpointWorkflow): collect the new events it receives as deliveries, attempt one
delivery, and record the endpoint's status (emailing its owner when it is disabled).

Every argument and result is an id, a count, a status code or a time: the URL, the event's data and the signing
secrets are read from the store by the attempt itself, so none of them reaches a payload; nor a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime

from temporalio import activity

from activities.email import deliver
from activities.heartbeat import heartbeating
from domain.models import EmailKind, EmailRequest, WebhookNotice
from domain.settings import Settings
from domain.webhooks import (
    ATTEMPT_TIMEOUT,
    AttemptDelivery,
    AttemptOutcome,
    DeliverNewEvents,
    DeliveryStatus,
    EndpointStatus,
    EndpointStatusChange,
    FailedDelivery,
    NewEventsDelivered,
    next_attempt_delay,
)
from store import webhooks as store
from store.sealed import unseal
from webhooks import http
from webhooks.signing import signed_headers

log = logging.getLogger(__name__)

IN_FLIGHT = 20
"""Attempts one endpoint's batch has on their way at once."""
POLL_SECONDS = 0.1
"""How often one worker looks for a new event while any endpoint of it waits for one (one query for them all)."""
HEARTBEAT_SECONDS = 5.0
QUIET_SECONDS = 2.0
"""After a delivery, how long `deliver_new_events` waits for more before it answers (and the run records its cursor)."""
BUSY_SECONDS = 30.0
"""How long `deliver_new_events` goes on delivering before it answers all the same."""


class EventWatch:
    """One poll of the newest event `seq` per worker process, shared by every endpoint waiting for news: a hundred
    idle endpoints cost one small query every `POLL_SECONDS`, not a hundred."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.newest = 0
        self._waiters = 0
        self._changed = asyncio.Condition()
        self._poller: asyncio.Task[None] | None = None

    async def wait_beyond(self, seq: int, timeout: float) -> bool:
        """Whether an event newer than `seq` was recorded within `timeout` seconds."""
        if self.newest > seq:
            return True
        self._waiters += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.newest > seq)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    async def _poll(self) -> None:
        while self._waiters > 0:
            try:
                newest = await store.newest_seq(self.url)
            except Exception:
                log.warning("webhooks: could not read the newest event; trying again", exc_info=True)
                newest = self.newest
            if newest > self.newest:
                self.newest = newest
                async with self._changed:
                    self._changed.notify_all()
            await asyncio.sleep(POLL_SECONDS)


class WebhookActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url
        self.watch = EventWatch(self.url)

    @activity.defn(name="deliver_new_events")
    async def deliver_new_events(self, request: DeliverNewEvents) -> NewEventsDelivered:
        """Wait (up to `wait_seconds`, heartbeating) for events after the cursor that the endpoint receives, make
        their deliveries and attempt each at once, `IN_FLIGHT` at a time over shared connections; go on with the
        next events while every attempt succeeds, and answer with those that failed.

        The first attempt happens here, in the batch that found the events, so a healthy endpoint costs the run one
        activity per stretch of traffic rather than one per delivery. It answers (the run then records the cursor)
        as soon as an attempt fails (the run schedules its retry), once the endpoint is quiet for `QUIET_SECONDS`
        after a delivery, after `BUSY_SECONDS` of deliveries, or, while the run shows the endpoint Failing, after
        the first delivery (it is Enabled again). A worker killed midway loses nothing: the retry collects from the
        run's cursor, and every delivery not yet Succeeded comes again, under its own id."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        quiet_since = began
        after = request.after
        delivered = 0
        failed: list[FailedDelivery] = []
        while True:
            found = await store.collect(self.url, request.endpoint_id, after=after, limit=request.limit)
            if found is None:
                return NewEventsDelivered(cursor=request.after, endpoint_gone=True)
            ids, cursor, news = found
            if ids:
                async with heartbeating(HEARTBEAT_SECONDS):
                    records = await self._attempt_all(request.endpoint_id, ids)
                if records is None:
                    return NewEventsDelivered(cursor=request.after, endpoint_gone=True)
                after, quiet_since = cursor, loop.time()
                for record in records:
                    if record.status == DeliveryStatus.succeeded:
                        delivered += 1
                    else:
                        failed.append(
                            FailedDelivery(
                                delivery_id=record.delivery_id,
                                attempts=record.number,
                                status_code=record.status_code,
                                gone=record.status_code == 410,
                                error=record.error,
                            )
                        )
                activity.heartbeat(after)
                if failed or (delivered and request.failing) or loop.time() - began >= BUSY_SECONDS:
                    break
                continue
            if news:  # events the endpoint does not take: move past them
                after = cursor
            limit = QUIET_SECONDS if delivered else request.wait_seconds
            idle = loop.time() - quiet_since
            if idle >= limit:
                break
            await self.watch.wait_beyond(after, min(HEARTBEAT_SECONDS, limit - idle))
            activity.heartbeat(after)
        return NewEventsDelivered(cursor=after, delivered=delivered, failed=tuple(failed))

    async def _attempt_all(self, endpoint_id: str, delivery_ids: list[str]) -> list[store.AttemptRecord] | None:
        """Attempt each pending delivery once, `IN_FLIGHT` at a time, and record the attempts in one transaction."""
        found = await store.deliveries_to_send(self.url, endpoint_id, delivery_ids)
        if found is None:
            return None
        endpoint, deliveries = found
        due = [d for d in deliveries if d.status == DeliveryStatus.pending]
        records = await self._post(endpoint, due, replay=False)
        await store.record_attempts(self.url, records)
        return records

    @activity.defn(name="attempt_delivery")
    async def attempt_delivery(self, request: AttemptDelivery) -> AttemptOutcome:
        """POST one delivery again (a retry on the schedule, or a replay), signed, and keep the attempt. The
        receiver's behaviour is the outcome, never an error: only the store being away makes this activity retry."""
        found = await store.deliveries_to_send(self.url, request.endpoint_id, [request.delivery_id])
        if found is None or not found[1]:
            return AttemptOutcome(delivered=False, skipped=True)
        endpoint, (delivery,) = found
        # A replay's number is the store's count + 1 (the run no longer holds a finished delivery's count).
        number = delivery.attempts + 1 if request.replay else request.number
        (record,) = await self._post(endpoint, [replace(delivery, attempts=number - 1)], replay=request.replay)
        if request.replay and delivery.status == DeliveryStatus.pending:
            # A replay that failed leaves a delivery that is still on its schedule to that schedule.
            current = await store.get_delivery(self.url, delivery.delivery_id)
            if record.status != DeliveryStatus.succeeded and current is not None:
                record = replace(record, status=DeliveryStatus.pending, next_attempt_at=current.next_attempt_at)
        await store.record_attempts(self.url, [record])
        delivered = record.status == DeliveryStatus.succeeded
        return AttemptOutcome(
            delivered=delivered, status_code=record.status_code, gone=record.status_code == 410, error=record.error
        )

    async def _post(
        self, endpoint: store.Endpoint, deliveries: list[store.DeliveryToSend], *, replay: bool
    ) -> list[store.AttemptRecord]:
        """One signed POST of each delivery (its attempt number: its count + 1), and the attempts as the store keeps
        them: delivered (2xx), or Pending with the next attempt on the schedule, or Failed once the schedule is spent
        (a 410 and a replay schedule nothing more)."""
        at = datetime.now(UTC)
        secrets = self._secrets(endpoint, at)
        bodies = [json.dumps(d.event, separators=(",", ":"), ensure_ascii=False).encode() for d in deliveries]
        results = await http.post_batch(
            endpoint.url,
            [
                (body, signed_headers(d.delivery_id, at, body, secrets))
                for d, body in zip(deliveries, bodies, strict=True)
            ],
            allow_private=self.settings.webhooks_allow_private,
            timeout=ATTEMPT_TIMEOUT.total_seconds(),
            concurrency=IN_FLIGHT,
        )
        info = activity.info()
        records = []
        for delivery, result in zip(deliveries, results, strict=True):
            number = delivery.attempts + 1
            delivered = result.status_code is not None and 200 <= result.status_code < 300
            delay = None if delivered or replay or result.status_code == 410 else next_attempt_delay(number)
            if delivered:
                status = DeliveryStatus.succeeded
            else:
                status = DeliveryStatus.pending if delay is not None else DeliveryStatus.failed
                log.info(
                    "webhook delivery %s to endpoint %s attempt %d: %s",
                    delivery.delivery_id,
                    endpoint.id,
                    number,
                    result.status_code if result.status_code is not None else result.error,
                )
            records.append(
                store.AttemptRecord(
                    key=f"{info.workflow_id}/{info.activity_id}/{info.attempt}/{delivery.delivery_id}",
                    delivery_id=delivery.delivery_id,
                    endpoint_id=endpoint.id,
                    at=at,
                    number=number,
                    trigger="replay" if replay else "scheduled",
                    status_code=result.status_code,
                    duration_ms=result.duration_ms,
                    response=result.response,
                    error=result.error,
                    status=status,
                    next_attempt_at=at + delay if delay is not None else None,
                )
            )
        return records

    def _secrets(self, endpoint: store.Endpoint, at: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous one for 24 h after a rotation."""
        secrets = [unseal(self.settings.signing_key, endpoint.secret, endpoint.id)]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and at < expires:
            with contextlib.suppress(ValueError):
                secrets.append(unseal(self.settings.signing_key, endpoint.previous_secret, endpoint.id))
        return secrets

    @activity.defn(name="record_endpoint_status")
    async def record_endpoint_status(self, change: EndpointStatusChange) -> None:
        """Write the endpoint's status as its run decided it."""
        await store.set_status(
            self.url,
            change.endpoint_id,
            status=change.status,
            reason=change.reason,
            failing_since=change.failing_since,
        )

    @activity.defn(name="notify_endpoint_disabled")
    async def notify_endpoint_disabled(self, change: EndpointStatusChange) -> None:
        """Email the endpoint's owner that its run disabled it (once: the outbox keys the email by this activity).
        The address is read here, so it never enters the run's history."""
        endpoint = await store.get_endpoint(self.url, change.endpoint_id)
        if endpoint is None or endpoint.status != EndpointStatus.disabled.value:
            return
        info = activity.info()
        notice = WebhookNotice(
            endpoint_id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            reason=change.reason or "it kept failing",
        )
        request = EmailRequest(kind=EmailKind.webhook_disabled, webhook=notice, to=[endpoint.owner_email])
        await deliver(self.settings, request, f"{info.workflow_id}/{info.activity_id}")

    @activity.defn(name="reschedule_deliveries")
    async def reschedule_deliveries(self, delivery_ids: list[str]) -> None:
        """Pending deliveries due now (the endpoint was enabled again): the portal shows them so."""
        await store.reschedule(self.url, delivery_ids, next_attempt_at=datetime.now(UTC))
