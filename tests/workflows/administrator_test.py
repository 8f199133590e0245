"""AdministratorWorkflow and the daily inactivity sweep on the time-skipping test server, activities faked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.models import (
    AdministratorInput,
    AdministratorStatus,
    AdministratorView,
    EmailKind,
    EmailResult,
    InactiveSweep,
    InactiveSwept,
    InactiveWarning,
    InvitationAction,
    InvitationEvent,
    InvitationMail,
    InvitationOutcome,
    InvitationRound,
    MailProblem,
)
from tests.workflows.enrollment_test import CSM, REVIEWER
from workflows.administrator import AdministratorWorkflow
from workflows.inactive import InactiveAdministratorsWorkflow
from workflows.names import administrator_workflow_id

DAY = 86_400.0
ST = AdministratorStatus


@dataclass
class Sent:
    kind: EmailKind
    link_version: int
    at: datetime


@dataclass
class Fakes:
    """The store and the relay as the activities would see them, for one administrator."""

    emails: list[Sent] = field(default_factory=list)
    events: list[InvitationEvent] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    bounce_notices: list[int] = field(default_factory=list)
    warned: list[tuple[str, str]] = field(default_factory=list)
    state: str = "invited"
    version: int = 0
    refuse: str | None = None

    def activities(self) -> list[Any]:
        @activity.defn(name="record_invitation")
        async def record_invitation(event: InvitationEvent) -> None:
            if event.link_version is not None:
                self.state, self.version = "invited", event.link_version
            self.events.append(event)

        @activity.defn(name="send_administrator_invitation")
        async def send_administrator_invitation(mail: InvitationMail) -> EmailResult:
            if self.outcome(mail.round) != "invited":
                return EmailResult(dropped=True)
            if self.refuse:
                raise ApplicationError(
                    f"refused: {self.refuse}", 550, self.refuse, type="SmtpRecipientRefused", non_retryable=True
                )
            at = activity.info().current_attempt_scheduled_time
            self.emails.append(Sent(mail.kind, mail.round.link_version, at))
            return EmailResult(sent_at=at, message_id="<fake@test>")

        @activity.defn(name="notify_bounced")
        async def notify_bounced(round: InvitationRound) -> EmailResult:
            self.bounce_notices.append(round.link_version)
            return EmailResult(sent_at=activity.info().current_attempt_scheduled_time)

        @activity.defn(name="invitation_outcome")
        async def invitation_outcome(round: InvitationRound) -> InvitationOutcome:
            return InvitationOutcome(state=self.outcome(round))

        @activity.defn(name="expire_invitation")
        async def expire_invitation(round: InvitationRound) -> InvitationOutcome:
            if self.outcome(round) == "invited":
                self.state = "expired"
                self.expired.append(round.link_version)
            return InvitationOutcome(state=self.outcome(round))

        @activity.defn(name="sweep_inactive")
        async def sweep_inactive(sweep: InactiveSweep) -> InactiveSwept:
            return InactiveSwept(warn=["u7", "u8"], disabled=3)

        @activity.defn(name="send_inactive_warning")
        async def send_inactive_warning(warning: InactiveWarning) -> EmailResult:
            self.warned.append((warning.user_id, activity.info().activity_id))
            return EmailResult(sent_at=activity.info().current_attempt_scheduled_time)

        return [
            record_invitation,
            send_administrator_invitation,
            notify_bounced,
            invitation_outcome,
            expire_invitation,
            sweep_inactive,
            send_inactive_warning,
        ]

    def outcome(self, round: InvitationRound) -> str:
        if self.state == "invited" and round.link_version != self.version:
            return "replaced"
        return self.state

    def recorded(self) -> list[str]:
        return [e.event for e in self.events]

    async def sent(self, count: int) -> list[Sent]:
        for _ in range(400):
            if len(self.emails) >= count:
                return self.emails
            await asyncio.sleep(0.025)
        raise AssertionError(f"{count} emails were expected, {len(self.emails)} went")


@dataclass
class Run:
    env: WorkflowEnvironment
    fakes: Fakes
    task_queue: str

    async def start(self) -> WorkflowHandle[AdministratorWorkflow, AdministratorView]:
        user_id = uuid.uuid4().hex[:16]
        return await self.env.client.start_workflow(
            AdministratorWorkflow.run,
            AdministratorInput(
                user_id=user_id,
                account_id="acct-1",
                invited_by=REVIEWER,
                activation_ttl=7 * DAY,
                reminder_after=3 * DAY,
            ),
            id=administrator_workflow_id(user_id),
            task_queue=self.task_queue,
        )


@pytest_asyncio.fixture
async def run(time_skipping: WorkflowEnvironment) -> AsyncIterator[Run]:
    fakes = Fakes()
    task_queue = f"admin-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping.client,
        task_queue=task_queue,
        workflows=[AdministratorWorkflow, InactiveAdministratorsWorkflow],
        activities=fakes.activities(),
    ):
        yield Run(time_skipping, fakes, task_queue)


async def update(handle: WorkflowHandle[Any, Any], name: str, arg: object) -> AdministratorView:
    view: AdministratorView = await handle.execute_update(name, arg, result_type=AdministratorView)
    return view


async def status(handle: WorkflowHandle[AdministratorWorkflow, AdministratorView]) -> AdministratorView:
    return await handle.query(AdministratorWorkflow.status)


async def test_invited_reminded_at_three_days_and_expired_at_seven(run: Run) -> None:
    handle = await run.start()
    started = await run.env.get_current_time()
    await run.fakes.sent(1)
    await run.env.sleep(timedelta(days=8))
    view = await status(handle)
    assert view.status == ST.expired and view.reminders_sent == 1
    invitation, reminder = run.fakes.emails
    assert (invitation.kind, reminder.kind) == (EmailKind.administrator_invitation, EmailKind.administrator_reminder)
    assert abs((reminder.at - started).total_seconds() - 3 * DAY) < 3600
    assert run.fakes.expired == [1]
    assert run.fakes.recorded() == ["administrator invited", "administrator invitation sent", "administrator reminded"]
    first = run.fakes.events[0]
    assert first.link_version == 1 and first.expires_at == view.expires_at
    assert abs((view.expires_at - started).total_seconds() - 7 * DAY) < 60
    # Nobody resends within 30 days: the run ends, still Expired.
    await run.env.sleep(timedelta(days=31))
    assert (await handle.result()).status == ST.expired


async def test_a_resend_kills_the_old_link_version_and_restarts_the_deadline(run: Run) -> None:
    handle = await run.start()
    await run.fakes.sent(1)
    await run.env.sleep(timedelta(days=2))
    resent_at = await run.env.get_current_time()
    view = await update(handle, "resend", InvitationAction(actor=CSM, note="lost it"))
    assert view.link_version == 2 and view.status == ST.invited and view.reminders_sent == 0
    assert abs((view.expires_at - resent_at).total_seconds() - 7 * DAY) < 60
    await run.fakes.sent(2)
    await run.env.sleep(timedelta(days=8))
    assert [(e.kind, e.link_version) for e in run.fakes.emails] == [
        (EmailKind.administrator_invitation, 1),
        (EmailKind.administrator_invitation, 2),
        (EmailKind.administrator_reminder, 2),
    ]
    reminder = run.fakes.emails[2]
    assert abs((reminder.at - resent_at).total_seconds() - 3 * DAY) < 3600
    assert run.fakes.expired == [2]
    resend = run.fakes.events[2]
    assert (resend.event, resend.link_version, resend.actor) == ("administrator invitation resent", 2, CSM)
    # An Expired invitation can be resent; an activated one cannot.
    again = await update(handle, "resend", InvitationAction(actor=CSM))
    assert (again.status, again.link_version) == (ST.invited, 3)
    run.fakes.state = "activated"
    await handle.signal(AdministratorWorkflow.activated)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "resend", InvitationAction(actor=CSM))
    assert "already activated" in str(refused.value.cause)


async def test_activation_ends_the_run_without_a_reminder(run: Run) -> None:
    handle = await run.start()
    await run.fakes.sent(1)
    await run.env.sleep(timedelta(days=1))
    run.fakes.state = "activated"
    await handle.signal(AdministratorWorkflow.activated)
    assert (await handle.result()).status == ST.active
    assert [e.kind for e in run.fakes.emails] == [EmailKind.administrator_invitation]
    assert run.fakes.expired == []


async def test_a_lost_signal_changes_nothing_the_store_decides(run: Run) -> None:
    handle = await run.start()
    await run.fakes.sent(1)
    run.fakes.state = "activated"  # activated, but the signal never arrived
    await run.env.sleep(timedelta(days=4))
    assert (await handle.result()).status == ST.active
    assert [e.kind for e in run.fakes.emails] == [EmailKind.administrator_invitation]


async def test_a_bounce_is_marked_and_the_inviter_told_and_nobody_reminded(run: Run) -> None:
    run.fakes.refuse = "550 5.1.1 User unknown"
    handle = await run.start()
    for _ in range(400):
        if run.fakes.bounce_notices:
            break
        await asyncio.sleep(0.025)
    view = await status(handle)
    assert view.bounced and view.status == ST.invited
    bounced = [e for e in run.fakes.events if e.event == "administrator invitation bounced"]
    assert [e.bounce for e in bounced] == ["550 5.1.1 User unknown"]
    assert run.fakes.bounce_notices == [1]
    await run.env.sleep(timedelta(days=8))
    assert run.fakes.emails == [] and run.fakes.expired == [1]
    # A provider's late bounce of the same round changes nothing more.
    late = MailProblem(kind=EmailKind.administrator_invitation, recipient="", reason="550 late")
    await update(handle, "mail_event", late)
    assert run.fakes.bounce_notices == [1]


async def test_the_daily_sweep_warns_each_user_and_reports_the_disabled(run: Run) -> None:
    swept = await run.env.client.execute_workflow(
        InactiveAdministratorsWorkflow.run,
        InactiveSweep(days=180),
        id=f"inactive-administrators-{uuid.uuid4().hex[:8]}",
        task_queue=run.task_queue,
    )
    assert swept.disabled == 3
    assert sorted(run.fakes.warned) == [("u7", "warn-u7"), ("u8", "warn-u8")]
