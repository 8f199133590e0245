"""MemberAccountWorkflow on the time-skipping test server: a year of service end dates in seconds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.models import (
    AccountChange,
    AccountInput,
    AccountStatus,
    AccountView,
    AddUsersPurchased,
    AdministratorsInvited,
    CreateAdministrators,
    EditAccount,
    EmailKind,
    EmailRequest,
    EmailResult,
    RecordAccount,
    UsageReport,
)
from tests.support import account_view
from tests.workflows.enrollment_test import CSM, FIELDS, FORM, REVIEWER
from workflows.account import MemberAccountWorkflow
from workflows.names import account_workflow_id

DAY = 86_400.0
WARNINGS = [30 * DAY, 7 * DAY, 1 * DAY]


@dataclass
class Sent:
    kind: EmailKind
    to: list[str]
    at: datetime


@dataclass
class Fakes:
    emails: list[Sent] = field(default_factory=list)
    records: list[RecordAccount] = field(default_factory=list)

    def activities(self) -> list[Any]:
        @activity.defn(name="record_account")
        async def record_account(record: RecordAccount) -> None:
            self.records.append(record)

        @activity.defn(name="send_email")
        async def send_email(request: EmailRequest) -> EmailResult:
            at = activity.info().current_attempt_scheduled_time
            self.emails.append(Sent(request.kind, request.to, at))
            return EmailResult(sent_at=at, message_id="<fake@test>")

        @activity.defn(name="create_administrators")
        async def create_administrators(request: CreateAdministrators) -> AdministratorsInvited:
            return AdministratorsInvited(activation_ttl=7 * DAY, reminder_after=3 * DAY)

        return [record_account, send_email, create_administrators]

    def events(self) -> list[str]:
        return [r.event.event for r in self.records if r.event]


@dataclass
class Run:
    env: WorkflowEnvironment
    fakes: Fakes
    task_queue: str

    async def start(
        self, end_in_days: float, *, events_per_run: int = 1000, **changes: Any
    ) -> WorkflowHandle[Any, Any]:
        today = (await self.now()).date()
        end = today + timedelta(days=end_in_days)
        fields = FIELDS.model_copy(update={"service_end_date": end, **changes})
        account_id = uuid.uuid4().hex[:16]
        handle = await self.env.client.start_workflow(
            MemberAccountWorkflow.run,
            AccountInput(
                account_id=account_id,
                enrollment_id=account_id,
                fields=fields,
                form=FORM,
                created_by=CSM,
                service_start_date=today,
                warning_offsets=WARNINGS,
                events_per_run=events_per_run,
            ),
            id=account_workflow_id(account_id),
            task_queue=self.task_queue,
        )
        return handle

    async def now(self) -> datetime:
        return await self.env.get_current_time()


@pytest_asyncio.fixture
async def run(time_skipping: WorkflowEnvironment) -> AsyncIterator[Run]:
    fakes = Fakes()
    task_queue = f"acct-{uuid.uuid4().hex[:8]}"
    async with Worker(
        time_skipping.client, task_queue=task_queue, workflows=[MemberAccountWorkflow], activities=fakes.activities()
    ):
        yield Run(time_skipping, fakes, task_queue)


async def update(handle: WorkflowHandle[Any, Any], name: str, arg: object) -> AccountView:
    view: AccountView = await handle.execute_update(name, arg, result_type=AccountView)
    return view


async def status(handle: WorkflowHandle[Any, Any]) -> AccountView:
    view: AccountView = await handle.query("status", result_type=AccountView)
    return view


async def test_a_year_of_service_warns_three_times_then_expires(run: Run) -> None:
    handle = await run.start(end_in_days=365)
    assert (await status(handle)).status == AccountStatus.active
    await run.env.sleep(timedelta(days=366))
    view = await status(handle)
    assert view.status == AccountStatus.expired
    kinds = [e.kind for e in run.fakes.emails]
    assert kinds == [EmailKind.service_end_warning] * 3 + [EmailKind.account_expired]
    end = datetime.combine(view.service_end_date, datetime.min.time(), tzinfo=UTC)
    for sent, offset in zip(run.fakes.emails, WARNINGS, strict=False):
        assert abs((end - sent.at).total_seconds() - offset) < 3600
    assert set(run.fakes.emails[0].to) == {"pat@acme.example", "sam@acme.example", "csm@provider.example"}
    assert run.fakes.events() == [
        "activated",
        "service end warning",
        "service end warning",
        "service end warning",
        "expired",
    ]


async def test_an_account_ending_tomorrow_warns_once_at_once(run: Run) -> None:
    # The service ends at tomorrow's midnight (UTC): from 01:00 the hour below stays inside today, whatever time
    # of day the test runs (run between 23:00 and midnight, it would have seen the account expire).
    now = await run.now()
    await run.env.sleep(datetime.combine(now.date() + timedelta(days=1), time(1), tzinfo=UTC) - now)
    handle = await run.start(end_in_days=1)
    await run.env.sleep(timedelta(hours=1))
    assert [e.kind for e in run.fakes.emails] == [EmailKind.service_end_warning]
    assert (await status(handle)).status == AccountStatus.active


async def test_extending_the_end_date_revives_an_expired_account_and_rearms_warnings(run: Run) -> None:
    handle = await run.start(end_in_days=2)
    await run.env.sleep(timedelta(days=3))
    assert (await status(handle)).status == AccountStatus.expired
    today = (await run.now()).date()
    view = await update(
        handle, "edit", EditAccount(actor=CSM, audit_note="renewed", service_end_date=today + timedelta(days=60))
    )
    assert view.status == AccountStatus.active
    run.fakes.emails.clear()
    await run.env.sleep(timedelta(days=61))
    assert [e.kind for e in run.fakes.emails] == [EmailKind.service_end_warning] * 3 + [EmailKind.account_expired]


async def test_suspend_reactivate_and_delete_only_from_suspended(run: Run) -> None:
    handle = await run.start(end_in_days=365)
    change = AccountChange(actor=REVIEWER, audit_note="non-payment")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "delete", change)
    assert "suspend it first" in str(refused.value.cause)
    assert (await update(handle, "suspend", change)).status == AccountStatus.suspended
    assert (await update(handle, "reactivate", change)).status == AccountStatus.active
    await update(handle, "suspend", change)
    assert (await update(handle, "delete", change)).status == AccountStatus.deleted
    result: AccountView = await handle.result(rpc_timeout=timedelta(seconds=30))
    assert result.status == AccountStatus.deleted
    assert run.fakes.records[-1].release_claim
    assert run.fakes.events()[-4:] == ["suspended", "reactivated", "suspended", "deleted"]


async def test_a_suspended_account_stays_suspended_past_its_end_date(run: Run) -> None:
    """Suspension is kept apart from expiry: neither the end date nor a later date change lifts it."""
    handle = await run.start(end_in_days=10)
    change = AccountChange(actor=REVIEWER, audit_note="non-payment")
    await update(handle, "suspend", change)
    await run.env.sleep(timedelta(days=11))
    assert (await status(handle)).status == AccountStatus.suspended
    assert "service ended" in run.fakes.events()
    today = (await run.now()).date()
    view = await update(
        handle, "edit", EditAccount(actor=CSM, audit_note="renewed", service_end_date=today + timedelta(days=90))
    )
    assert view.status == AccountStatus.suspended, "a csm's date change does not reactivate it"
    assert (await update(handle, "reactivate", change)).status == AccountStatus.active


async def test_a_suspended_account_reactivated_after_its_end_date_is_expired(run: Run) -> None:
    handle = await run.start(end_in_days=5)
    change = AccountChange(actor=REVIEWER, audit_note="non-payment")
    await update(handle, "suspend", change)
    await run.env.sleep(timedelta(days=6))
    assert (await update(handle, "reactivate", change)).status == AccountStatus.expired


async def test_users_purchased_is_cumulative_and_never_below_zero(run: Run) -> None:
    handle = await run.start(end_in_days=365, users_purchased=1000)
    view = await update(handle, "add_users_purchased", AddUsersPurchased(actor=CSM, audit_note="March order", add=100))
    assert view.users_purchased == 1100
    view = await update(handle, "add_users_purchased", AddUsersPurchased(actor=CSM, audit_note="top-up", add=100))
    assert view.users_purchased == 1200
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "add_users_purchased", AddUsersPurchased(actor=CSM, audit_note="oops", add=-5000))
    assert "below zero" in str(refused.value.cause)
    assert run.fakes.records[-1].event is not None
    assert run.fakes.records[-1].event.note == "1,100 + 100 = 1,200; top-up"


async def test_usage_reports_keep_the_newest(run: Run) -> None:
    handle = await run.start(end_in_days=365)
    now = await run.now()
    await update(handle, "report_usage", UsageReport(users_existing=40, reported_at=now))
    view = await update(handle, "report_usage", UsageReport(users_existing=10, reported_at=now - timedelta(hours=1)))
    assert view.users_existing == 40 and view.users_reported_at == now


async def test_display_users_purchased_is_for_customers_only(run: Run) -> None:
    handle = await run.start(
        end_in_days=365, member_type="reseller", display_users_purchased=False, users_purchased=None
    )
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await update(handle, "edit", EditAccount(actor=CSM, audit_note="x", display_users_purchased=True))
    assert "customer accounts only" in str(refused.value.cause)


def test_ends_at_is_midnight_utc() -> None:
    from workflows.account import ends_at

    view = account_view(service_end_date=date(2027, 1, 1))
    assert ends_at(view) == datetime(2027, 1, 1, tzinfo=UTC)


async def test_a_long_lived_account_continues_as_new_with_its_state(run: Run) -> None:
    today = (await run.now()).date()
    handle = await run.env.client.start_workflow(
        MemberAccountWorkflow.run,
        AccountInput(
            account_id="longlived",
            enrollment_id="longlived",
            fields=FIELDS.model_copy(update={"service_end_date": today + timedelta(days=400)}),
            form=FORM,
            created_by=CSM,
            service_start_date=today,
            warning_offsets=WARNINGS,
            events_per_run=3,
        ),
        id="account-longlived",
        task_queue=run.task_queue,
    )
    first_run = (await handle.describe()).run_id
    now = await run.now()
    for count in range(1, 6):
        await update(
            handle, "report_usage", UsageReport(users_existing=count, reported_at=now + timedelta(minutes=count))
        )
    await update(handle, "add_users_purchased", AddUsersPurchased(actor=CSM, audit_note="order", add=100))
    latest = run.env.client.get_workflow_handle("account-longlived")
    description = await latest.describe()
    assert description.run_id != first_run  # the history started afresh
    view = await status(latest)
    assert view.users_existing == 5 and view.users_purchased == 1100
    assert view.status == AccountStatus.active
    await run.env.sleep(timedelta(days=401))
    assert (await status(latest)).status == AccountStatus.expired  # the timers came along
