"""EnrollmentWorkflow when mail goes wrong: bounces, a relay that keeps deferring, and the races around them.

No email failure ends or blocks the run; a bounce of the contact's address marks the enrollment Bounced and
tells the CSM; a dead link is never mailed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError, WorkflowUpdateStage

from domain.models import (
    CsmAction,
    EditEnrollment,
    EmailKind,
    EnrollmentStatus,
    EnrollmentView,
    MailProblem,
    ReviewAction,
    Schedule,
    SubmitForm,
)
from starter.services.temporal import run_update
from tests.workflows.enrollment_test import (
    CSM,
    DAY,
    FIELDS,
    FORM,
    REVIEWER,
    Run,
    run,
    status_of,
    update,
    wait_until_invited,
)
from workflows.enrollment import EnrollmentWorkflow

USER_UNKNOWN = "550 5.1.1 User unknown"
__all__ = ["run"]  # the fixture, shared with enrollment_test.py


async def until(check, tries: int = 400) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition not met in time")


async def test_a_bounced_invitation_marks_the_enrollment_and_tells_the_csm(run: Run) -> None:
    run.fakes.refuse[EmailKind.invitation] = USER_UNKNOWN
    handle = await run.start()
    await update(handle, "created")

    async def bounced() -> bool:
        return (await status_of(handle)).bounced

    await until(bounced)
    view = await status_of(handle)
    assert view.status == EnrollmentStatus.new
    assert view.bounce_reason == USER_UNKNOWN
    assert [(e.event, e.note) for e in view.timeline][-1] == ("invitation_bounced", USER_UNKNOWN)
    sent = await run.fakes.sent(1)
    assert [(e.kind, e.to) for e in sent] == [(EmailKind.bounced_csm, [CSM.email])]
    await run.env.sleep(timedelta(days=5))
    assert run.fakes.kinds() == [EmailKind.bounced_csm], "no reminders go to an address that bounced"

    # The CSM fixes the address: a new link, the marker gone, the new contact invited.
    del run.fakes.refuse[EmailKind.invitation]
    fixed = FIELDS.model_copy(update={"corporate_contact_email": "robin@acme.example"})
    view = await update(handle, "edit", EditEnrollment(actor=CSM, fields=fixed, audit_note="typo"))
    assert not view.bounced and view.link_version == 2
    sent = await run.fakes.sent(2)
    assert (sent[-1].kind, sent[-1].to, sent[-1].link_version) == (EmailKind.invitation, ["robin@acme.example"], 2)
    assert EmailKind.contact_changed not in run.fakes.kinds(), "nobody is told at an address that bounced"
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_a_late_bounce_reported_by_the_provider_has_the_same_effect(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    problem = MailProblem(kind=EmailKind.invitation, recipient="PAT@acme.example", reason="550 mailbox gone")
    view = await update(handle, "mail_event", problem)
    assert view.bounced and view.bounce_reason == "550 mailbox gone"
    assert (await run.fakes.sent(2))[-1].kind == EmailKind.bounced_csm
    again = await update(handle, "mail_event", problem)
    assert [e.event for e in again.timeline].count("invitation_bounced") == 1, "one marker per address"


async def test_an_email_that_fails_for_good_is_recorded_and_the_process_goes_on(run: Run) -> None:
    run.fakes.refuse[EmailKind.submitted_csm] = "550 5.1.1 no such CSM"
    handle = await run.start()
    await wait_until_invited(handle)
    await update(handle, "submit_form", SubmitForm(link_version=1, form=FORM))

    async def failed() -> bool:
        return "email_failed" in [e.event for e in (await status_of(handle)).timeline]

    await until(failed)
    await update(handle, "start_review", ReviewAction(actor=REVIEWER, audit_note="ok"))
    view = await update(handle, "approve", ReviewAction(actor=REVIEWER, audit_note="ok"))
    assert view.status == EnrollmentStatus.approved
    assert (await handle.result()).status == EnrollmentStatus.approved


async def test_a_cancel_while_the_relay_defers_answers_at_once_and_drops_the_invitation(run: Run) -> None:
    run.fakes.defer.add(EmailKind.invitation)
    handle = await run.start()
    await update(handle, "created")
    view = await asyncio.wait_for(update(handle, "cancel", CsmAction(actor=CSM, audit_note="dup")), timeout=10)
    assert view.status == EnrollmentStatus.cancelled
    run.fakes.defer.clear()
    result = await handle.result()
    assert result.status == EnrollmentStatus.cancelled
    assert EmailKind.invitation not in run.fakes.kinds()


async def test_the_courtesy_email_bouncing_leaves_no_old_link_alive(run: Run) -> None:
    """The edit rotates the link before the old address is told; its bounce changes nothing of that."""
    handle = await run.start()
    await wait_until_invited(handle)
    run.fakes.refuse[EmailKind.contact_changed] = USER_UNKNOWN
    changed = FIELDS.model_copy(update={"corporate_contact_email": "robin@acme.example"})
    await update(handle, "edit", EditEnrollment(actor=CSM, fields=changed, audit_note="Pat left"))
    assert 2 in run.fakes.closed_links
    sent = await run.fakes.sent(2)
    assert (sent[-1].kind, sent[-1].to) == (EmailKind.invitation, ["robin@acme.example"])

    async def recorded() -> bool:
        return "email_failed" in run.fakes.events()

    await until(recorded)
    assert not (await status_of(handle)).bounced, "the old address bouncing is not the new contact's bounce"


async def test_a_failed_invitation_on_resend_leaves_the_store_new_like_the_workflow(run: Run) -> None:
    handle = await run.start(Schedule(reminder_offsets=[], ttl=DAY))
    await wait_until_invited(handle)
    await run.env.sleep(timedelta(days=2))
    assert (await status_of(handle)).status == EnrollmentStatus.expired
    run.fakes.refuse[EmailKind.invitation] = USER_UNKNOWN
    view = await update(handle, "resend", CsmAction(actor=CSM, audit_note="again"))
    assert view.status == EnrollmentStatus.new
    assert run.fakes.records[-1].view.status == EnrollmentStatus.new

    async def bounced() -> bool:
        return run.fakes.records[-1].view.bounced

    await until(bounced)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_a_resend_racing_the_close_of_the_revival_window_is_refused(run: Run) -> None:
    handle = await run.start(Schedule(reminder_offsets=[], ttl=DAY))
    await wait_until_invited(handle)
    await run.env.sleep(timedelta(days=2))
    run.fakes.hold = "closed"
    # To a few seconds past the close (expiry at +1 day, the window 30 days on): time skipped further while the
    # close's store write is held would time that attempt out (its start-to-close is 30 s), and the test server
    # once hung on the retry that followed.
    sleeper = asyncio.create_task(run.env.sleep(timedelta(days=29, seconds=5)))
    await asyncio.wait_for(run.fakes.holding.wait(), timeout=30)
    # The close holds the lock (its store write is held); a resend is accepted by the validator meanwhile.
    resend = await handle.start_update(
        "resend",
        CsmAction(actor=CSM, audit_note="just in time"),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
    )
    run.fakes.release.set()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await resend.result()
    assert "closed" in str(refused.value.cause)
    result = await handle.result()
    await sleeper
    assert result.status == EnrollmentStatus.expired
    assert run.fakes.records[-1].view.status == EnrollmentStatus.expired


async def test_a_stream_of_updates_cannot_keep_a_run_from_continuing_as_new(run: Run) -> None:
    """Edits that never pause (each re-links and queues two emails): the run turns new ones away while it hands
    over, the ways in retry them on the fresh run, every edit lands, and no run grows far past its limit."""
    limit = 100
    handle = await run.start(history_limit=limit)
    await wait_until_invited(handle)

    async def edit(n: int) -> EnrollmentView:
        changed = FIELDS.model_copy(update={"corporate_contact_email": f"contact{n}@acme.example"})
        action = EditEnrollment(actor=CSM, fields=changed, audit_note=f"edit {n}")
        return await run_update(run.env.client, handle.id, EnrollmentWorkflow.edit, action)

    for wave in range(6):
        await asyncio.gather(*(edit(wave * 10 + n) for n in range(10)))
    view = await handle.query(EnrollmentWorkflow.status)
    assert view.corporate_contact_email.startswith("contact5")
    assert len([e for e in view.timeline if e.event == "edited"]) >= 1
    lengths, run_id = [], handle.first_execution_run_id or handle.run_id
    while run_id:
        history = await run.env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        last = history.events[-1]
        continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else None
    assert len(lengths) > 1, "it continued as new"
    assert max(lengths) < limit * 2, lengths


async def test_a_long_wait_continues_as_new_and_carries_the_enrollment_on(run: Run) -> None:
    """Many edits while New: the history stays under its limit, and the enrollment goes on unchanged."""
    handle = await run.start(history_limit=100)
    await wait_until_invited(handle)
    edits = 30
    for n in range(edits):
        changed = FIELDS.model_copy(update={"users_purchased": 1000 + n})
        await update(handle, "edit", EditEnrollment(actor=CSM, fields=changed, audit_note=f"edit {n}"))
    first_run = handle.first_execution_run_id or (await handle.describe()).run_id
    view = await update(handle, "submit_form", SubmitForm(link_version=1, form=FORM))
    assert view.status == EnrollmentStatus.pending_review and view.users_purchased == 1000 + edits - 1
    keys = [r.event_key for r in run.fakes.records]
    assert len(keys) == len(set(keys)), "event keys stay unique across runs"
    history = await run.env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(history.events) < 200
