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
from datetime import UTC, datetime

from temporalio import activity

from activities.email import deliver
from domain.models import EmailKind, EmailRequest, WebhookNotice
from domain.settings import Settings
from domain.webhooks import (
    ATTEMPT_TIMEOUT,
    AttemptDelivery,
    AttemptOutcome,
    CollectedEvents,
    CollectEvents,
    DeliveryStatus,
    EndpointStatus,
    EndpointStatusChange,
    next_attempt_delay,
)
from store import webhooks as store
from store.sealed import unseal
from webhooks import http
from webhooks.signing import signed_headers

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""How often one worker looks for a new event while any endpoint of it waits for one (one query for them all)."""
HEARTBEAT_SECONDS = 5.0


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

    @activity.defn(name="collect_events")
    async def collect_events(self, request: CollectEvents) -> CollectedEvents:
        """The deliveries of the events after the cursor that the endpoint receives; when there are none yet, wait
        for one (up to `wait_seconds`, heartbeating) rather than have the run poll with timers."""
        waited = 0.0
        while True:
            found = await store.collect(self.url, request.endpoint_id, after=request.after, limit=request.limit)
            if found is None:
                return CollectedEvents(delivery_ids=(), cursor=request.after, endpoint_gone=True)
            ids, cursor, news = found
            if ids or waited >= request.wait_seconds:
                return CollectedEvents(delivery_ids=tuple(ids), cursor=cursor)
            if news:  # events the endpoint does not take: move past them, then wait for the next
                request = request.model_copy(update={"after": cursor})
            step = min(HEARTBEAT_SECONDS, request.wait_seconds - waited)
            started = asyncio.get_running_loop().time()
            await self.watch.wait_beyond(request.after, step)
            waited += asyncio.get_running_loop().time() - started
            activity.heartbeat(request.after)

    @activity.defn(name="attempt_delivery")
    async def attempt_delivery(self, request: AttemptDelivery) -> AttemptOutcome:
        """POST the event to the endpoint once, signed, and keep the attempt. The receiver's behaviour is the
        outcome, never an error: only the store being away makes this activity retry."""
        found = await store.delivery_to_send(self.url, request.delivery_id)
        if found is None:
            return AttemptOutcome(delivered=False, skipped=True)
        endpoint = found.endpoint
        number = request.number
        current = None
        if request.replay:
            current = await store.get_delivery(self.url, request.delivery_id)
            number = (current.attempts if current is not None else 0) + 1
        at = datetime.now(UTC)
        body = json.dumps(found.event, separators=(",", ":"), ensure_ascii=False).encode()
        headers = signed_headers(request.delivery_id, at, body, self._secrets(endpoint, at))
        result = await http.post(
            endpoint.url,
            body,
            headers,
            allow_private=self.settings.webhooks_allow_private,
            timeout=ATTEMPT_TIMEOUT.total_seconds(),
        )
        delivered = result.status_code is not None and 200 <= result.status_code < 300
        gone = result.status_code == 410
        if delivered:
            status, next_at = DeliveryStatus.succeeded, None
        else:
            delay = None if request.replay or gone else next_attempt_delay(number)
            status = DeliveryStatus.pending if delay is not None else DeliveryStatus.failed
            next_at = at + delay if delay is not None else None
            if current is not None and current.status == DeliveryStatus.pending.value:
                # A replay that failed leaves a delivery that is still on its schedule to that schedule.
                status, next_at = DeliveryStatus.pending, current.next_attempt_at
        info = activity.info()
        await store.record_attempt(
            self.url,
            store.AttemptRecord(
                key=f"{info.workflow_id}/{info.activity_id}/{info.attempt}",
                delivery_id=request.delivery_id,
                endpoint_id=request.endpoint_id,
                at=at,
                number=number,
                trigger="replay" if request.replay else "scheduled",
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                response=result.response,
                error=result.error,
            ),
            status=status,
            next_attempt_at=next_at,
        )
        if not delivered:
            log.info(
                "webhook delivery %s to endpoint %s attempt %d: %s",
                request.delivery_id,
                request.endpoint_id,
                number,
                result.status_code if result.status_code is not None else result.error,
            )
        return AttemptOutcome(delivered=delivered, status_code=result.status_code, gone=gone, error=result.error)

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
