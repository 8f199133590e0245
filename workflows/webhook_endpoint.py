"""WebhookEndpointWorkflow: one webhook endpoint's deliveries (`webhook-endpoint-<id>`), for as long as it exists.

The run keeps a cursor into the events and the deliveries it still has to retry. `deliver_new_events` waits (in
the worker, heartbeating) for events after the cursor, turns those the endpoint receives into deliveries and
attempts each at once, as one batch; the run retries those that failed with `attempt_delivery`, on the schedule
of `domain.webhooks` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). A `410` disables the endpoint at once; five
days without a single success disable it too; either way its owner is emailed. Disabled, it keeps its pending
deliveries and its cursor: enabled again, it carries on from there, so nothing recorded in the meantime is lost.

A worker killed mid-attempt loses nothing: the attempt times out and is made again, with the same `webhook-id`.
Only ids, counts, status codes and times are in the history; the URL, the event's data and the secrets stay in
the store. The run continues as new to stay bounded, carrying its cursor, its pending deliveries and the ids of
the updates it applied. Search attribute `WebhookEndpointStatus`: Enabled, Failing, Disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import WebhookActivities
    from domain.webhooks import (
        ATTEMPT_TIMEOUT,
        DISABLE_AFTER,
        AttemptDelivery,
        AttemptOutcome,
        DeliverNewEvents,
        EnableEndpoint,
        EndpointStatus,
        EndpointStatusChange,
        NewEventsDelivered,
        PendingDelivery,
        RemoveEndpoint,
        ReplayDelivery,
        WebhookEndpointInput,
        WebhookEndpointState,
        next_attempt_delay,
    )
    from workflows.common import (
        RECORD_TIMEOUT,
        RETRY,
        UPDATES_REMEMBERED,
        applied_once,
        checked_once,
        refuse,
        refuse_while_handing_over,
    )
    from workflows.names import STATUS_QUERY, WEBHOOK_ENDPOINT_STATUS, webhook_endpoint_workflow_id

IN_FLIGHT = 20
"""Retries and replays one endpoint has on their way at once (a batch of first attempts has its own bound)."""
PENDING_HELD = 1000
"""Deliveries a run holds; past this it stops collecting (the events wait in the store) until some are done, so an
endpoint that is down for a day never makes the run's state (and its handover) grow without bound."""
COLLECT_WAIT = 300.0
"""Seconds `deliver_new_events` waits for a new event before it answers with none (and is started again)."""
COLLECT_TIMEOUT = timedelta(seconds=COLLECT_WAIT) + timedelta(minutes=10)
"""The wait, and a batch's attempts after it (a hundred to a receiver that takes its whole 15 s, 20 at a time)."""
COLLECT_HEARTBEAT = timedelta(seconds=30)
"""A worker killed while waiting is noticed within this, and the wait moves to another."""
ATTEMPT_ACTIVITY_TIMEOUT = 2 * ATTEMPT_TIMEOUT + timedelta(seconds=15)
"""Resolving the host and the POST (15 s each at most), and reading and recording around them; a worker killed
mid-attempt is noticed after this."""


@workflow.defn
class WebhookEndpointWorkflow:
    @workflow.init
    def __init__(self, input: WebhookEndpointInput) -> None:
        self._id = input.endpoint_id
        self._cursor = input.cursor
        self._status = input.status
        self._failing_since = input.failing_since
        self._pending: dict[str, PendingDelivery] = {p.delivery_id: p for p in input.pending}
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._collector: asyncio.Task[None] | None = None
        self._removed = False
        self._draining = False
        self._woken = False
        self._updates: list[str] | None = list(input.updates)
        self._history_limit = input.history_limit
        self._activities = 0
        """Counts the run's other activities: their ids."""
        self._notices: list[asyncio.Future[None]] = []

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> WebhookEndpointState:
        waiting = [p.due_at for p in self._pending.values() if p.due_at is not None]
        return WebhookEndpointState(
            endpoint_id=self._id,
            status=self._status,
            cursor=self._cursor,
            pending=len(self._pending),
            in_flight=len(self._in_flight),
            failing_since=self._failing_since,
            next_attempt_at=min(waiting) if waiting else None,
        )

    @workflow.run
    async def run(self, input: WebhookEndpointInput) -> WebhookEndpointState:
        self._show()
        while not self._removed:
            if self._handover_due():
                await self._hand_over()
            if self._status != EndpointStatus.disabled:
                self._collect()
                self._attempt_due()
            self._woken = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._woken, timeout=self._until_next_due(), timeout_summary="next attempt"
                )
        if self._collector is not None:
            self._collector.cancel()
        await workflow.wait_condition(lambda: not self._in_flight and workflow.all_handlers_finished())
        return self.status()

    # --- updates ---------------------------------------------------------------------------------------------

    @workflow.update(name="set_enabled")
    @applied_once
    async def set_enabled(self, change: EnableEndpoint) -> WebhookEndpointState:
        """PATCH `{"enabled": …}`: stop attempting (pending deliveries wait), or carry on from where it stopped."""
        if change.enabled and self._status == EndpointStatus.disabled:
            self._failing_since = None
            due = list(self._pending)
            for delivery_id in due:
                self._pending[delivery_id] = self._pending[delivery_id].model_copy(update={"due_at": None})
            await self._record_status(EndpointStatus.enabled, None)
            if due:
                await workflow.execute_activity_method(
                    WebhookActivities.reschedule_deliveries,
                    due,
                    activity_id=f"reschedule-{self._next_activity()}",
                    start_to_close_timeout=RECORD_TIMEOUT,
                    retry_policy=RETRY,
                )
        elif not change.enabled and self._status != EndpointStatus.disabled:
            await self._record_status(EndpointStatus.disabled, "disabled by its owner")
        self._wake()
        return self.status()

    @set_enabled.validator
    @checked_once
    def _validate_set_enabled(self, change: EnableEndpoint) -> None:
        refuse_while_handing_over(self._draining, "webhook endpoint")

    @workflow.update(name="replay")
    @applied_once
    async def replay(self, request: ReplayDelivery) -> WebhookEndpointState:
        """Attempt the delivery once more, now, with its own `webhook-id` (a pending one just comes forward)."""
        current = self._pending.get(request.delivery_id)
        if current is None:
            self._pending[request.delivery_id] = PendingDelivery(delivery_id=request.delivery_id, replay=True)
        elif request.delivery_id not in self._in_flight:
            self._pending[request.delivery_id] = current.model_copy(update={"due_at": None})
        self._wake()
        return self.status()

    @replay.validator
    @checked_once
    def _validate_replay(self, request: ReplayDelivery) -> None:
        refuse_while_handing_over(self._draining, "webhook endpoint")
        if self._status == EndpointStatus.disabled:
            refuse("The endpoint is disabled: enable it first, then replay the delivery.")

    @workflow.update(name="remove")
    @applied_once
    async def remove(self, request: RemoveEndpoint) -> WebhookEndpointState:
        """DELETE: the endpoint is gone (the store marked it and cancelled its deliveries); the run ends."""
        self._removed = True
        self._pending.clear()
        self._wake()
        return self.status()

    # --- the loop's parts --------------------------------------------------------------------------------------

    def _wake(self) -> None:
        self._woken = True

    def _next_activity(self) -> int:
        self._activities += 1
        return self._activities

    def _collect(self) -> None:
        if self._collector is None and not self._draining and len(self._pending) < PENDING_HELD:
            self._collector = asyncio.create_task(self._collect_events())

    async def _collect_events(self) -> None:
        try:
            found: NewEventsDelivered = await workflow.execute_activity_method(
                WebhookActivities.deliver_new_events,
                DeliverNewEvents(
                    endpoint_id=self._id,
                    after=self._cursor,
                    wait_seconds=COLLECT_WAIT,
                    failing=self._status == EndpointStatus.failing,
                ),
                activity_id=f"deliver-new-{self._cursor}-{self._next_activity()}",
                start_to_close_timeout=COLLECT_TIMEOUT,
                heartbeat_timeout=COLLECT_HEARTBEAT,
                retry_policy=RETRY,
                cancellation_type=ActivityCancellationType.TRY_CANCEL,
                summary="new events",
            )
        except (asyncio.CancelledError, ActivityError) as err:
            if is_cancelled_exception(err):  # the run hands over or ends: the events wait for the next collect
                return
            raise
        finally:
            self._collector = None
            self._wake()
        if found.endpoint_gone:
            self._removed = True
            return
        self._cursor = max(self._cursor, found.cursor)
        now = workflow.now()
        for failed in found.failed:
            delay = None if failed.gone else next_attempt_delay(failed.attempts)
            if delay is not None:
                due = PendingDelivery(delivery_id=failed.delivery_id, attempts=failed.attempts, due_at=now + delay)
                self._pending.setdefault(failed.delivery_id, due)
        if found.delivered:
            await self._succeeded()
        gone = next((f for f in found.failed if f.gone), None)
        if gone is not None:
            await self._disable("it answered 410 Gone")
        elif found.failed:
            first = found.failed[0]
            await self._failed(self._reason(first.status_code, first.error))

    def _attempt_due(self) -> None:
        now = workflow.now()
        for delivery in list(self._pending.values()):
            if len(self._in_flight) >= IN_FLIGHT or self._draining:
                return
            if delivery.delivery_id in self._in_flight or (delivery.due_at is not None and delivery.due_at > now):
                continue
            self._in_flight[delivery.delivery_id] = asyncio.create_task(self._attempt(delivery))

    def _until_next_due(self) -> timedelta | None:
        waiting = [
            p.due_at for p in self._pending.values() if p.due_at is not None and p.delivery_id not in self._in_flight
        ]
        if not waiting or self._status == EndpointStatus.disabled:
            return None
        return max(min(waiting) - workflow.now(), timedelta(seconds=1))

    async def _attempt(self, delivery: PendingDelivery) -> None:
        number = delivery.attempts + 1
        # A replay's number is the store's count + 1 (the run no longer holds a finished delivery's count).
        kind = f"replay-{self._next_activity()}" if delivery.replay else "attempt"
        try:
            outcome: AttemptOutcome = await workflow.execute_activity_method(
                WebhookActivities.attempt_delivery,
                AttemptDelivery(
                    endpoint_id=self._id, delivery_id=delivery.delivery_id, number=number, replay=delivery.replay
                ),
                activity_id=f"{kind}-{delivery.delivery_id}-{number}",
                start_to_close_timeout=ATTEMPT_ACTIVITY_TIMEOUT,
                retry_policy=RETRY,
                summary=f"attempt {number}",
            )
            await self._settle(delivery, number, outcome)
        finally:
            self._in_flight.pop(delivery.delivery_id, None)
            self._wake()

    async def _settle(self, delivery: PendingDelivery, number: int, outcome: AttemptOutcome) -> None:
        """Take a retry's or replay's outcome: done, retried on the schedule, or the endpoint disabled."""
        current = self._pending.get(delivery.delivery_id)
        if current is None:
            return  # removed meanwhile
        if outcome.skipped or outcome.delivered:
            del self._pending[delivery.delivery_id]
            if outcome.delivered:
                await self._succeeded()
            return
        if outcome.gone:
            await self._disable("it answered 410 Gone")
            return
        delay = None if delivery.replay else next_attempt_delay(number)
        if delay is None:
            del self._pending[delivery.delivery_id]
        else:
            self._pending[delivery.delivery_id] = current.model_copy(
                update={"attempts": number, "due_at": workflow.now() + delay, "replay": False}
            )
        await self._failed(self._reason(outcome.status_code, outcome.error))

    async def _succeeded(self) -> None:
        """A delivery went through: the endpoint works, whatever came before."""
        self._failing_since = None
        if self._status == EndpointStatus.failing:
            await self._record_status(EndpointStatus.enabled, None)

    async def _failed(self, reason: str) -> None:
        """An attempt failed: the endpoint is Failing (since the first failure after its last success), and
        Disabled once that is five days ago."""
        now = workflow.now()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= DISABLE_AFTER:
            await self._disable(f"every attempt has failed since {self._failing_since:%Y-%m-%d %H:%M} UTC")
        elif self._status == EndpointStatus.enabled:
            await self._record_status(EndpointStatus.failing, reason)

    @staticmethod
    def _reason(status_code: int | None, error: str | None) -> str:
        if status_code is not None:
            return f"answered {status_code}"
        return error or "no answer"

    async def _disable(self, reason: str) -> None:
        if self._status == EndpointStatus.disabled:
            return
        await self._record_status(EndpointStatus.disabled, reason)
        change = EndpointStatusChange(endpoint_id=self._id, status=EndpointStatus.disabled, reason=reason)
        # The owner's email goes on its own: a relay that is down must not hold the run.
        notice = workflow.start_activity_method(
            WebhookActivities.notify_endpoint_disabled,
            change,
            activity_id=f"notify-{self._next_activity()}",
            start_to_close_timeout=timedelta(seconds=90),
            retry_policy=RETRY,
        )
        self._notices = [*(n for n in self._notices if not n.done()), notice]

    async def _record_status(self, status: EndpointStatus, reason: str | None) -> None:
        self._status = status
        self._show()
        await workflow.execute_activity_method(
            WebhookActivities.record_endpoint_status,
            EndpointStatusChange(endpoint_id=self._id, status=status, reason=reason, failing_since=self._failing_since),
            activity_id=f"status-{self._next_activity()}",
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
        )

    def _show(self) -> None:
        current = workflow.info().typed_search_attributes.get(WEBHOOK_ENDPOINT_STATUS)
        if current != self._status.value:
            workflow.upsert_search_attributes([WEBHOOK_ENDPOINT_STATUS.value_set(self._status.value)])
        detail = f"{self._status.value}: {len(self._pending)} pending, events after #{self._cursor}"
        if self._failing_since is not None:
            detail += f"; failing since {self._failing_since:%Y-%m-%d %H:%M} UTC"
        workflow.set_current_details(detail)

    # --- handover --------------------------------------------------------------------------------------------

    def _handover_due(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() > self._history_limit or info.is_continue_as_new_suggested()

    async def _hand_over(self) -> None:
        """Turn updates away, let what is on its way finish, and carry the rest into a fresh run."""
        self._draining = True
        if self._collector is not None:
            self._collector.cancel()
        await workflow.wait_condition(
            lambda: not self._in_flight and self._collector is None and workflow.all_handlers_finished()
        )
        for notice in self._notices:
            await notice  # an owner's email on its way goes before the handover (it is rare: a disabled run is idle)
        workflow.continue_as_new(
            WebhookEndpointInput(
                endpoint_id=self._id,
                cursor=self._cursor,
                status=self._status,
                failing_since=self._failing_since,
                pending=tuple(self._pending.values()),
                updates=tuple((self._updates or [])[-UPDATES_REMEMBERED:]),
                history_limit=self._history_limit,
            )
        )


async def start_endpoint(
    client: Client, endpoint_id: str, cursor: int, task_queue: str
) -> WorkflowHandle[WebhookEndpointWorkflow, WebhookEndpointState]:
    """Start the endpoint's run, once: one already open for it is left as it is."""
    return await client.start_workflow(
        WebhookEndpointWorkflow.run,
        WebhookEndpointInput(endpoint_id=endpoint_id, cursor=cursor),
        id=webhook_endpoint_workflow_id(endpoint_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(WEBHOOK_ENDPOINT_STATUS, EndpointStatus.enabled.value)]
        ),
        static_summary=f"Webhook endpoint {endpoint_id}",
    )


async def ensure_endpoint_runs(client: Client, url: str, task_queue: str) -> int:
    """Start the run of every live endpoint that has none running (the worker does this at start): an API killed
    between writing an endpoint and starting its run, or a run terminated by hand, must not leave an endpoint that
    looks Enabled and receives nothing. A fresh run starts from the endpoint's first event; deliveries that have
    ended are not made again. Answers how many were started."""
    from store import webhooks as store  # here: the workflow's sandbox never needs the store

    started = 0
    for endpoint in await store.list_endpoints(url, reseller_account_id=None):
        handle = client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint.id))
        try:
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                continue
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        await client.start_workflow(
            WebhookEndpointWorkflow.run,
            WebhookEndpointInput(
                endpoint_id=endpoint.id,
                cursor=endpoint.start_after,
                status=EndpointStatus(endpoint.status),
                failing_since=endpoint.failing_since,
            ),
            id=webhook_endpoint_workflow_id(endpoint.id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=TypedSearchAttributes([SearchAttributePair(WEBHOOK_ENDPOINT_STATUS, endpoint.status)]),
            static_summary=f"Webhook endpoint {endpoint.id}",
        )
        started += 1
    return started
