"""EnrollmentWorkflow's handover to a fresh run (continue-as-new) and the mail around it, on the time-skipping
test server (the account's: account_handover_test.py).

- A run due to hand over while the relay is down hands its unsent emails over instead of waiting for them:
  updates, reminders and expiry go on through the outage, and each email still goes once.
- An update id applied in one run is not applied again when it reaches the fresh run (temporalio/temporal#6375
  redelivers an update completed in the task that continued as new).
- A bounce of an invitation whose link has since been replaced is recorded, and the current one stays unmarked.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any, cast

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from domain.models import (
    CsmAction,
    EditEnrollment,
    EmailKind,
    EmailRequest,
    EmailResult,
    EnrollmentStatus,
    EnrollmentView,
    Schedule,
)
from starter.services.temporal import run_update
from tests.workflows.enrollment_mail_test import until
from tests.workflows.enrollment_test import CSM, DAY, FIELDS, Run, run, status_of, update
from workflows.enrollment import EnrollmentWorkflow

__all__ = ["run"]  # the fixture, shared with enrollment_test.py
ALL_MAIL = set(EmailKind)


async def runs_of(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The run ids of a workflow, first to latest, following its continue-as-new chain."""
    client = handle._client
    run_id: str | None = handle.first_execution_run_id or (await handle.describe()).run_id
    runs = []
    while run_id:
        runs.append(run_id)
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        last = history.events[-1]
        continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else None
    return runs


async def edit_until_handed_over(run: Run, handle: WorkflowHandle[Any, Any], limit: int) -> None:
    """Edit (no contact change) through the ways in until the run has continued as new."""
    for n in range(limit):
        changed = FIELDS.model_copy(update={"users_purchased": 2000 + n})
        action = EditEnrollment(actor=CSM, fields=changed, audit_note=f"edit {n}")
        await asyncio.wait_for(run_update(run.env.client, handle.id, EnrollmentWorkflow.edit, action), timeout=30)
        if len(await runs_of(handle)) > 1:
            return
    raise AssertionError("the run never handed over")


async def test_a_handover_with_the_relay_down_carries_the_mail_and_the_enrollment_goes_on(run: Run) -> None:
    """Before: the run waited for its mail with no limit, so every update was turned away and neither the
    reminders nor the expiry came for the whole outage."""
    run.fakes.defer |= ALL_MAIL
    handle = await run.start(Schedule(reminder_offsets=[2 * DAY], ttl=5 * DAY), history_limit=60)
    await update(handle, "created")
    await edit_until_handed_over(run, handle, limit=40)
    view = await status_of(handle)
    assert view.status == EnrollmentStatus.new and view.invitation_sent_at is None, "the invitation is still owed"

    # Updates land on the fresh run during the outage (a cancel would too; an edit keeps the enrollment open).
    changed = FIELDS.model_copy(update={"users_purchased": 1})
    edited = await asyncio.wait_for(
        run_update(
            run.env.client,
            handle.id,
            EnrollmentWorkflow.edit,
            EditEnrollment(actor=CSM, fields=changed, audit_note="x"),
        ),
        timeout=30,
    )
    assert edited.users_purchased == 1

    # The relay comes back: the invitation handed over goes, once, from the fresh run.
    run.fakes.defer.clear()
    sent = await run.fakes.sent(1)
    assert [(e.kind, e.link_version) for e in sent] == [(EmailKind.invitation, 1)]

    async def invited() -> bool:
        return (await status_of(handle)).invitation_sent_at is not None

    await until(invited)
    assert [r.event.event for r in run.fakes.records].count("invited") == 1


async def test_the_deadline_comes_through_an_outage_that_spans_the_handover(run: Run) -> None:
    run.fakes.defer |= ALL_MAIL
    handle = await run.start(Schedule(reminder_offsets=[], ttl=2 * DAY), history_limit=60)
    await update(handle, "created")
    await edit_until_handed_over(run, handle, limit=40)
    await run.env.sleep(timedelta(days=3))
    view = await status_of(handle)
    assert view.status == EnrollmentStatus.expired, "the expiry is not held up by mail the relay cannot take"
    assert run.fakes.kinds() == [], "the relay took nothing: the expired invitation is never sent"
    run.fakes.defer.clear()
    # Past the next retry of the deferred notice (retries are at most a minute apart): waiting in real time alone,
    # `sent` once gave up before it came.
    await run.env.sleep(timedelta(minutes=2))
    await run.fakes.sent(1)
    assert run.fakes.kinds() == [EmailKind.expired], "the CSM's expiry notice, and no dead link"


async def test_an_update_delivered_again_to_the_fresh_run_is_not_applied_twice(run: Run) -> None:
    handle = await run.start(history_limit=60)
    await update(handle, "created")
    await until(lambda: _invited(handle))
    resend = CsmAction(actor=CSM, audit_note="lost it")
    first = cast(EnrollmentView, await handle.execute_update(EnrollmentWorkflow.resend, resend, id="resend-once"))
    assert first.link_version == 2
    await edit_until_handed_over(run, handle, limit=40)
    # The same update id reaching the fresh run (as the server redelivers it) answers without resending.
    again = cast(EnrollmentView, await handle.execute_update(EnrollmentWorkflow.resend, resend, id="resend-once"))
    assert again.link_version == 2
    assert [e.event for e in again.timeline].count("resent") == 1
    # A new id is a new resend.
    third = cast(EnrollmentView, await handle.execute_update(EnrollmentWorkflow.resend, resend, id="resend-twice"))
    assert third.link_version == 3


async def _invited(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await status_of(handle)).invitation_sent_at is not None


async def test_a_bounce_of_a_replaced_invitation_is_recorded_and_leaves_the_current_one(run: Run) -> None:
    """The relay refuses the first invitation at the moment a resend starts the second: before, the refusal
    marked the second one Bounced and told the CSM."""
    gate, failing = asyncio.Event(), asyncio.Event()
    fakes = run.fakes.activities()
    send_invitation = next(f for f in fakes if f.__name__ == "send_invitation")

    @activity.defn(name="send_invitation")
    async def first_refused(request: EmailRequest) -> EmailResult:
        if request.link_version == 1:
            failing.set()
            await gate.wait()
            reply = "550 5.1.1 gone"
            raise ApplicationError(f"refused: {reply}", 550, reply, type="SmtpRecipientRefused", non_retryable=True)
        result: EmailResult = await send_invitation(request)
        return result

    gated = [first_refused if f is send_invitation else f for f in fakes]
    task_queue = f"wf-{uuid.uuid4().hex[:8]}"
    async with Worker(run.env.client, task_queue=task_queue, workflows=[EnrollmentWorkflow], activities=gated):
        run.task_queue = task_queue
        handle = await run.start()
        await update(handle, "created")
        await asyncio.wait_for(failing.wait(), timeout=10)
        run.fakes.hold = "resent"  # the resend holds the lock while its record is written
        resend = asyncio.create_task(update(handle, "resend", CsmAction(actor=CSM, audit_note="again")))
        await asyncio.wait_for(run.fakes.holding.wait(), timeout=10)
        gate.set()  # the first invitation is refused now, while the resend is under way
        await asyncio.sleep(0.3)
        run.fakes.release.set()
        view = await asyncio.wait_for(resend, timeout=10)
        assert view.link_version == 2

        async def recorded() -> bool:
            return "old link bounced" in [e.event for e in (await status_of(handle)).timeline]

        await until(recorded)
        view = await status_of(handle)
        assert not view.bounced and view.bounce_reason is None
        note = next(e.note for e in view.timeline if e.event == "old link bounced")
        assert note is not None and "link version 1" in note and "550 5.1.1 gone" in note
        sent = await run.fakes.sent(1)
        assert [(e.kind, e.link_version) for e in sent] == [(EmailKind.invitation, 2)]
        await asyncio.sleep(0.2)
        assert EmailKind.bounced_csm not in run.fakes.kinds(), "the CSM is not told of a bounce that changes nothing"
