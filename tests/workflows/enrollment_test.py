"""EnrollmentWorkflow on the time-skipping test server, with its activities replaced by recording fakes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.models import (
    AccountFields,
    Actor,
    ContactForm,
    CsmAction,
    EditEnrollment,
    EmailKind,
    EmailRequest,
    EmailResult,
    EnrollmentInput,
    EnrollmentStatus,
    EnrollmentView,
    LinkRequest,
    MemberType,
    RecordEnrollment,
    ReviewAction,
    Schedule,
    SubmitForm,
    ValidateEnrollment,
)
from worker import WORKFLOW_FAILURE_TYPES
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import enrollment_workflow_id

DAY = 86_400.0
CSM = Actor(user_id="u1", email="csm@provider.example", kind="csm")
REVIEWER = Actor(user_id="u2", email="reviewer@provider.example", kind="reviewer")
FIELDS = AccountFields(
    service_end_date=date(2030, 1, 1),
    member_type=MemberType.customer,
    display_users_purchased=True,
    users_purchased=1000,
    organization_name="Acme Widgets Ltd",
    corporate_contact_email="pat@acme.example",
)
FORM = ContactForm(
    corporate_contact_name="Pat Jones",
    corporate_contact_phone="+44 20 7946 0000",
    technical_contact_name="Sam Lee",
    technical_contact_email="sam@acme.example",
    technical_contact_phone="+44 20 7946 0001",
    billing_contact_name="Alex Kim",
    billing_contact_email="billing@acme.example",
    address_line1="1 High Street",
    city="London",
    postal_code="EC1A 1AA",
    country="United Kingdom",
    accept_terms=True,
)


@dataclass
class Sent:
    kind: EmailKind
    to: list[str]
    link_version: int | None
    at: datetime


@dataclass
class Fakes:
    """Stand-ins for the activities that record what the workflow asked for."""

    emails: list[Sent] = field(default_factory=list)
    records: list[RecordEnrollment] = field(default_factory=list)
    closed_links: list[int] = field(default_factory=list)
    invalid: str | None = None
    refuse: dict[EmailKind, str] = field(default_factory=dict)
    """Kinds of email the fake relay refuses for good at RCPT, with its reply."""
    defer: set[EmailKind] = field(default_factory=set)
    """Kinds of email the fake relay keeps deferring (4xx): the activity retries."""
    hold: str | None = None
    """A timeline event whose store write waits until `release` is set."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> list[Any]:
        @activity.defn(name="validate")
        async def validate(request: ValidateEnrollment) -> None:
            if self.invalid:
                raise ApplicationError(self.invalid, [], type="InvalidEnrollment", non_retryable=True)

        @activity.defn(name="persist")
        async def persist(record: RecordEnrollment) -> None:
            if self.invalid:  # the real one checks the fields before it writes (CHECKED_WITH_FIRST_WRITE)
                raise ApplicationError(self.invalid, [], type="InvalidEnrollment", non_retryable=True)
            self.records.append(record)

        @activity.defn(name="record")
        async def record(record: RecordEnrollment) -> None:
            if record.event.event == self.hold:
                self.holding.set()
                await self.release.wait()
            self.records.append(record)

        async def send(request: EmailRequest) -> EmailResult:
            now = activity.info().current_attempt_scheduled_time  # the test server's skipped clock
            if request.kind in self.refuse:
                reply = self.refuse[request.kind]
                raise ApplicationError(
                    f"refused: {reply}", int(reply[:3]), reply, type="SmtpRecipientRefused", non_retryable=True
                )
            if request.kind in self.defer:
                raise ApplicationError("451 4.3.0 Try again later", type="SmtpDeferred")
            self.emails.append(Sent(request.kind, request.to, request.link_version, now))
            return EmailResult(sent_at=now, message_id="<fake@test>")

        @activity.defn(name="send_invitation")
        async def send_invitation(request: EmailRequest) -> EmailResult:
            return await send(request)

        @activity.defn(name="send_email")
        async def send_email(request: EmailRequest) -> EmailResult:
            return await send(request)

        @activity.defn(name="close_form_links")
        async def close_form_links(request: LinkRequest) -> None:
            self.closed_links.append(request.link_version)

        return [validate, persist, record, send_invitation, send_email, close_form_links]

    def kinds(self) -> list[EmailKind]:
        return [e.kind for e in self.emails]

    async def sent(self, count: int) -> list[Sent]:
        """The emails once `count` have gone (the mailer sends them after the update that queued them)."""
        for _ in range(400):
            if len(self.emails) >= count:
                return self.emails
            await asyncio.sleep(0.025)
        raise AssertionError(f"{count} emails were expected, {len(self.emails)} went: {self.kinds()}")

    def events(self) -> list[str]:
        return [r.event.event for r in self.records]


@dataclass
class Run:
    env: WorkflowEnvironment
    fakes: Fakes
    task_queue: str

    async def start(
        self, schedule: Schedule | None = None, history_limit: int = 2000
    ) -> WorkflowHandle[EnrollmentWorkflow, EnrollmentView]:
        schedule = schedule or Schedule(reminder_offsets=[3 * DAY, 7 * DAY], ttl=14 * DAY)
        enrollment_id = uuid.uuid4().hex[:16]
        handle = await self.env.client.start_workflow(
            EnrollmentWorkflow.run,
            EnrollmentInput(
                enrollment_id=enrollment_id,
                fields=FIELDS,
                created_by=CSM,
                schedule=schedule,
                history_limit=history_limit,
            ),
            id=enrollment_workflow_id(enrollment_id),
            task_queue=self.task_queue,
        )
        return handle


@pytest_asyncio.fixture
async def run(time_skipping: WorkflowEnvironment) -> AsyncIterator[Run]:
    fakes = Fakes()
    task_queue = f"wf-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping.client,
        task_queue=task_queue,
        workflows=[EnrollmentWorkflow],
        activities=fakes.activities(),
    ):
        yield Run(time_skipping, fakes, task_queue)


async def update(handle: WorkflowHandle[Any, Any], name: str, arg: object = None) -> EnrollmentView:
    args = [] if arg is None else [arg]
    view: EnrollmentView = await handle.execute_update(name, args=args, result_type=EnrollmentView)
    return view


async def status_of(handle: WorkflowHandle[EnrollmentWorkflow, EnrollmentView]) -> EnrollmentView:
    return await handle.query(EnrollmentWorkflow.status)


async def wait_until_invited(handle: WorkflowHandle[EnrollmentWorkflow, EnrollmentView]) -> None:
    await update(handle, "created")
    for _ in range(100):
        if (await status_of(handle)).invitation_sent_at is not None:
            return
        await handle.query(EnrollmentWorkflow.status)
    raise AssertionError("the invitation was never sent")


async def test_unanswered_enrollment_is_reminded_twice_then_expires(run: Run) -> None:
    handle = await run.start()
    result = await handle.result()  # 14 days and the 30-day revival window pass in seconds
    assert result.status == EnrollmentStatus.expired
    assert run.fakes.kinds() == [EmailKind.invitation, EmailKind.reminder, EmailKind.reminder, EmailKind.expired]
    assert run.fakes.events() == ["created", "invited", "reminded", "reminded", "expired", "closed"]
    assert [e.to for e in run.fakes.emails][-1] == [CSM.email]
    invited, first, second = (e.at for e in run.fakes.emails[:3])
    assert timedelta(days=2.9) < first - invited < timedelta(days=3.1)
    assert timedelta(days=6.9) < second - invited < timedelta(days=7.1)
    assert result.reminders_sent == 2


async def test_submitted_form_goes_to_pending_review_and_nothing_more_is_sent(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    view = await update(handle, "submit_form", SubmitForm(link_version=1, form=FORM))
    assert view.status == EnrollmentStatus.pending_review
    assert view.form == FORM
    await run.env.sleep(timedelta(days=20))
    assert (await status_of(handle)).status == EnrollmentStatus.pending_review
    assert run.fakes.kinds() == [EmailKind.invitation, EmailKind.submitted, EmailKind.submitted_csm]
    assert 1 in run.fakes.closed_links
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "submit_form", SubmitForm(link_version=1, form=FORM))
    assert "already been completed" in str(refused.value.cause)


async def test_a_replaced_link_cannot_submit(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    await update(handle, "resend", CsmAction(actor=CSM, audit_note="contact lost it"))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "submit_form", SubmitForm(link_version=1, form=FORM))
    assert "replaced" in str(refused.value.cause)
    view = await update(handle, "submit_form", SubmitForm(link_version=2, form=FORM))
    assert view.status == EnrollmentStatus.pending_review


async def test_resend_restarts_the_deadline_and_revives_an_expired_enrollment(run: Run) -> None:
    handle = await run.start(Schedule(reminder_offsets=[DAY], ttl=2 * DAY))
    await wait_until_invited(handle)
    await run.env.sleep(timedelta(days=3))
    assert (await status_of(handle)).status == EnrollmentStatus.expired
    view = await update(handle, "resend", CsmAction(actor=CSM, audit_note="new deadline"))
    assert view.status == EnrollmentStatus.new
    assert view.link_version == 2
    assert view.reminders_sent == 0
    assert view.expires_at is not None and view.expires_at > datetime.now(UTC) + timedelta(days=1)
    await run.env.sleep(timedelta(days=3))
    assert run.fakes.kinds() == [
        EmailKind.invitation,
        EmailKind.reminder,
        EmailKind.expired,
        EmailKind.invitation,
        EmailKind.reminder,
        EmailKind.expired,
    ]
    assert [e.link_version for e in run.fakes.emails if e.kind == EmailKind.invitation] == [1, 2]


async def test_resend_is_limited_to_five_a_day(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    for _ in range(5):
        await update(handle, "resend", CsmAction(actor=CSM, audit_note="again"))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "resend", CsmAction(actor=CSM, audit_note="again"))
    assert "5 times" in str(refused.value.cause)


async def test_changing_the_contact_rotates_the_link_and_tells_both(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    changed = FIELDS.model_copy(update={"corporate_contact_email": "robin@acme.example"})
    view = await update(handle, "edit", EditEnrollment(actor=CSM, fields=changed, audit_note="Pat left"))
    assert view.link_version == 2
    assert view.corporate_contact_email == "robin@acme.example"
    assert run.fakes.closed_links == [2], "the old link dies with the edit, before anything is mailed"
    assert [(e.kind, e.to) for e in (await run.fakes.sent(3))[1:]] == [
        (EmailKind.contact_changed, ["pat@acme.example"]),
        (EmailKind.invitation, ["robin@acme.example"]),
    ]
    assert view.timeline[-1].note == "Pat left"


async def test_cancel_ends_the_enrollment_and_kills_the_link(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    await update(handle, "cancel", CsmAction(actor=CSM, audit_note="duplicate"))
    result = await handle.result()
    assert result.status == EnrollmentStatus.cancelled
    assert run.fakes.closed_links
    assert result.timeline[-1].event == "cancelled" and result.timeline[-1].note == "duplicate"


async def test_review_locks_edits_and_rejection_tells_the_contact(run: Run) -> None:
    handle = await run.start()
    await wait_until_invited(handle)
    await update(handle, "submit_form", SubmitForm(link_version=1, form=FORM))
    await update(handle, "start_review", ReviewAction(actor=REVIEWER, audit_note="looking"))
    for name, arg in [
        ("edit", EditEnrollment(actor=CSM, fields=FIELDS, audit_note="x")),
        ("cancel", CsmAction(actor=CSM, audit_note="x")),
        ("resend", CsmAction(actor=CSM, audit_note="x")),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await update(handle, name, arg)
        assert "review has begun" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as no_reason:
        await update(handle, "reject", ReviewAction(actor=REVIEWER, audit_note="no"))
    assert "needs a reason" in str(no_reason.value.cause)
    await update(handle, "reject", ReviewAction(actor=REVIEWER, audit_note="checked", reason="Not a legal entity"))
    result = await handle.result()
    assert result.status == EnrollmentStatus.rejected
    assert run.fakes.kinds()[-1] == EmailKind.rejected
    assert [e.event for e in result.timeline][-2:] == ["review started", "rejected"]


async def test_invalid_input_fails_the_run_with_its_type_and_writes_nothing(run: Run) -> None:
    run.fakes.invalid = "service_end_date must be after today"
    handle = await run.start()
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "InvalidEnrollment"
    assert run.fakes.records == [] and run.fakes.emails == []


async def test_a_result_that_does_not_fit_its_model_fails_the_run_instead_of_retrying(
    time_skipping: WorkflowEnvironment,
) -> None:
    fakes = Fakes()

    @activity.defn(name="send_invitation")
    async def broken_invitation(request: EmailRequest) -> dict[str, str]:
        return {"sent_at": "not a time", "message_id": "<x@test>"}

    activities = [a for a in fakes.activities() if a.__temporal_activity_definition.name != "send_invitation"]
    async with Worker(
        time_skipping.client,
        task_queue="broken",
        workflows=[EnrollmentWorkflow],
        activities=[*activities, broken_invitation],
        workflow_failure_exception_types=WORKFLOW_FAILURE_TYPES,
    ):
        handle = await Run(time_skipping, fakes, "broken").start()
        with pytest.raises(WorkflowFailureError):
            await handle.result(rpc_timeout=timedelta(seconds=20))
