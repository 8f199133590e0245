"""Record the histories that tests/replay/replay_test.py replays: `python -m tests.replay.record_histories NAME…`
(no name: list them). Record only new scenarios; the recorded ones stand for runs already out there.

Each scenario runs the real workflow code on the time-skipping test server (activities faked, as in the
workflow tests) and saves the full event history. Re-record only when a change is meant to be incompatible
AND no execution of the old shape can still be running; otherwise guard the change with `workflow.patched`.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.models import (
    AccountChange,
    AccountInput,
    AddUsersPurchased,
    AdministratorInput,
    AdministratorsInvited,
    CreateAdministrators,
    CredentialBatchPrepared,
    CredentialBatchStatus,
    CredentialChunk,
    CredentialChunkImported,
    CredentialImportProgress,
    CsmAction,
    EditAccount,
    EditEnrollment,
    EmailKind,
    EnrollmentInput,
    InvitationAction,
    LinkRequest,
    MailProblem,
    ReviewAction,
    Schedule,
    SkippedNotice,
    SubmitForm,
    UsageReport,
)
from domain.webhooks import (
    AttemptDelivery,
    AttemptOutcome,
    DeliverNewEvents,
    EnableEndpoint,
    EndpointStatusChange,
    FailedDelivery,
    NewEventsDelivered,
    RemoveEndpoint,
    ReplayDelivery,
)
from starter.services.temporal import run_update
from tests.conftest import SEARCH_ATTRIBUTES
from tests.replay.replay_test import WORKFLOWS
from tests.workflows import account_test, administrator_test, enrollment_test
from tests.workflows.enrollment_test import CSM, FIELDS, FORM, REVIEWER
from workflows.account import MemberAccountWorkflow
from workflows.administrator import AdministratorWorkflow
from workflows.credential_import import start_import
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import account_workflow_id, administrator_workflow_id, enrollment_workflow_id
from workflows.webhook_endpoint import start_endpoint

HERE = Path(__file__).parent / "histories"
DAY = 86_400.0
SCHEDULE = Schedule(reminder_offsets=[3 * DAY, 7 * DAY], ttl=14 * DAY, warning_offsets=[30 * DAY, 7 * DAY, DAY])
Scenario = Callable[[WorkflowEnvironment, WorkflowHandle[Any, Any]], Awaitable[None]]


async def expired_then_revived(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    await env.sleep(timedelta(days=15))
    await handle.execute_update("resend", CsmAction(actor=CSM, audit_note="new deadline"))
    await handle.signal("opened", LinkRequest(enrollment_id="x", link_version=2))
    await env.sleep(timedelta(days=46))
    await handle.result()


async def edited_resent_cancelled(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    await env.sleep(timedelta(days=1))
    changed = FIELDS.model_copy(update={"corporate_contact_email": "robin@acme.example"})
    await handle.execute_update("edit", EditEnrollment(actor=CSM, fields=changed, audit_note="Pat left"))
    await handle.execute_update("resend", CsmAction(actor=CSM, audit_note="lost it"))
    await handle.execute_update("cancel", CsmAction(actor=CSM, audit_note="duplicate"))
    await handle.result()


async def submitted_and_approved(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    await env.sleep(timedelta(days=4))
    await handle.execute_update("submit_form", SubmitForm(link_version=1, form=FORM))
    await handle.execute_update("start_review", ReviewAction(actor=REVIEWER, audit_note="checking"))
    await handle.execute_update("approve", ReviewAction(actor=REVIEWER, audit_note="fine"))
    await handle.result()


async def submitted_and_rejected(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    await env.sleep(timedelta(hours=1))
    await handle.execute_update("submit_form", SubmitForm(link_version=1, form=FORM))
    await handle.execute_update("start_review", ReviewAction(actor=REVIEWER, audit_note="checking"))
    await handle.execute_update("reject", ReviewAction(actor=REVIEWER, audit_note="no", reason="Not a company"))
    await handle.result()


async def account_lifecycle(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    now = await env.get_current_time()
    await handle.execute_update("add_users_purchased", AddUsersPurchased(actor=CSM, audit_note="order", add=100))
    await handle.execute_update("report_usage", UsageReport(users_existing=42, reported_at=now))
    await env.sleep(timedelta(days=61))
    await handle.execute_update(
        "edit", EditAccount(actor=CSM, audit_note="renewed", service_end_date=(now + timedelta(days=400)).date())
    )
    await handle.execute_update("suspend", AccountChange(actor=REVIEWER, audit_note="unpaid"))
    await handle.execute_update("reactivate", AccountChange(actor=REVIEWER, audit_note="paid"))
    await handle.execute_update("suspend", AccountChange(actor=REVIEWER, audit_note="closing"))
    await handle.execute_update("delete", AccountChange(actor=REVIEWER, audit_note="closed"))
    await handle.result()


async def bounced_fixed_approved(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """Best-effort mail: a reminder, a late bounce of the contact's address, the CSM's fix, then approval."""
    await env.sleep(timedelta(days=4))
    bounce = MailProblem(kind=EmailKind.invitation, recipient="pat@acme.example", reason="550 5.1.1 User unknown")
    await handle.execute_update("mail_event", bounce)
    fixed = FIELDS.model_copy(update={"corporate_contact_email": "robin@acme.example"})
    await handle.execute_update("edit", EditEnrollment(actor=CSM, fields=fixed, audit_note="typo"))
    await env.sleep(timedelta(hours=1))
    await handle.execute_update("submit_form", SubmitForm(link_version=2, form=FORM))
    await handle.execute_update("start_review", ReviewAction(actor=REVIEWER, audit_note="checking"))
    await handle.execute_update("approve", ReviewAction(actor=REVIEWER, audit_note="fine"))
    await handle.result()


async def continued_as_new(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """Enough edits to pass the history limit: the first run ends by continuing as new (its history is kept)."""
    await env.sleep(timedelta(hours=1))
    for n in range(12):
        changed = FIELDS.model_copy(update={"users_purchased": 1000 + n})
        await handle.execute_update("edit", EditEnrollment(actor=CSM, fields=changed, audit_note=f"order {n}"))
    await handle.execute_update("cancel", CsmAction(actor=CSM, audit_note="duplicate"))
    await env.client.get_workflow_handle(handle.id).result()  # the last run's


async def account_suspended_past_end(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    now = await env.get_current_time()
    await handle.execute_update("suspend", AccountChange(actor=REVIEWER, audit_note="unpaid"))
    await env.sleep(timedelta(days=61))
    await handle.execute_update(
        "edit", EditAccount(actor=CSM, audit_note="renewed", service_end_date=(now + timedelta(days=400)).date())
    )
    await handle.execute_update("reactivate", AccountChange(actor=REVIEWER, audit_note="paid"))
    await handle.execute_update("suspend", AccountChange(actor=REVIEWER, audit_note="closing"))
    await handle.execute_update("delete", AccountChange(actor=REVIEWER, audit_note="closed"))
    await handle.result()


async def account_with_administrators(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """After MEMBER_ADMINISTRATORS: two contacts invited (each by a run of its own), one not attached and the
    reviewer told; then the account is closed."""
    await env.sleep(timedelta(days=1))
    await handle.execute_update("suspend", AccountChange(actor=REVIEWER, audit_note="closing"))
    await handle.execute_update("delete", AccountChange(actor=REVIEWER, audit_note="closed"))
    await handle.result()


async def administrator_expired_resent(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """An administrator's invitation: the reminder at 3 days, Expired at 7, resent, Expired again, and the run
    ends once the resend window has passed."""
    await env.sleep(timedelta(days=8))
    await handle.execute_update("resend", InvitationAction(actor=CSM, note="asked again"))
    await handle.result()


async def resent_old_bounce_continued(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """After CARRIED_HANDOVER and STALE_BOUNCES_IGNORED: a resend, then a late bounce of the first invitation
    (recorded, not applied), edits past the history limit (the update ids and the empty mail queue go to the
    fresh run), the same resend delivered again to the fresh run (not applied), then a cancel."""
    await env.sleep(timedelta(hours=1))
    resend = CsmAction(actor=CSM, audit_note="lost it")
    await handle.execute_update("resend", resend, id="resend-1")
    bounce = MailProblem(
        kind=EmailKind.invitation, recipient="pat@acme.example", reason="550 5.1.1 User unknown", link_version=1
    )
    await handle.execute_update("mail_event", bounce)
    for n in range(12):
        changed = FIELDS.model_copy(update={"users_purchased": 1000 + n})
        await handle.execute_update("edit", EditEnrollment(actor=CSM, fields=changed, audit_note=f"order {n}"))
    latest = env.client.get_workflow_handle(handle.id)
    await latest.execute_update("resend", resend, id="resend-1")
    await latest.execute_update("cancel", CsmAction(actor=CSM, audit_note="duplicate"))
    await latest.result()


async def account_continued_as_new(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """After CARRIED_HANDOVER: an order, usage reports past the run's event budget (the counter, the update ids
    and the mail queue go to the fresh run), the same order delivered again (not applied), then closed."""
    now = await env.get_current_time()
    order = AddUsersPurchased(actor=CSM, audit_note="order", add=100)
    await handle.execute_update("add_users_purchased", order, id="order-1")
    for n in range(1, 5):  # the ways in retry an update turned away while the run hands over
        report = UsageReport(users_existing=n, reported_at=now + timedelta(minutes=n))
        await run_update(env.client, handle.id, MemberAccountWorkflow.report_usage, report)
    latest = env.client.get_workflow_handle(handle.id)
    await latest.execute_update("add_users_purchased", order, id="order-1")
    await latest.execute_update("suspend", AccountChange(actor=REVIEWER, audit_note="closing"))
    await latest.execute_update("delete", AccountChange(actor=REVIEWER, audit_note="closed"))
    await latest.result()


async def credential_batch_imported(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """A 2,500-key batch: prepared, imported in three chunks, finished."""
    await handle.result()


def credential_activities() -> list[Any]:
    """The import's steps, faked: ids and counts in, counts out (as the real ones)."""

    @activity.defn(name="prepare_batch")
    async def prepare_batch(batch_id: str) -> CredentialBatchPrepared:
        return CredentialBatchPrepared(status=CredentialBatchStatus.importing, total=2500)

    @activity.defn(name="import_chunk")
    async def import_chunk(chunk: CredentialChunk) -> CredentialChunkImported:
        end = chunk.start + chunk.count
        return CredentialChunkImported(processed=end, accepted=end - 1 if end == 2500 else end)

    @activity.defn(name="finish_batch")
    async def finish_batch(batch_id: str) -> CredentialImportProgress:
        return CredentialImportProgress(processed=2500, total=2500, status=CredentialBatchStatus.imported)

    return [prepare_batch, import_chunk, finish_batch]


def administrator_activities() -> list[Any]:
    """The account's administrator steps, faked: two invited, one skipped."""

    @activity.defn(name="create_administrators")
    async def create_administrators(request: CreateAdministrators) -> AdministratorsInvited:
        suffix = request.account_id[:8]
        return AdministratorsInvited(
            invite=[f"a{suffix}", f"b{suffix}"], skipped=1, activation_ttl=7 * DAY, reminder_after=3 * DAY
        )

    @activity.defn(name="notify_skipped")
    async def notify_skipped(notice: SkippedNotice) -> None:
        pass

    return [create_administrators, notify_skipped, *administrator_test.Fakes().activities()]


ENROLLMENT_SCENARIOS: dict[str, Scenario] = {
    "enrollment-expired-then-revived": expired_then_revived,
    "enrollment-edited-resent-cancelled": edited_resent_cancelled,
    "enrollment-submitted-approved": submitted_and_approved,
    "enrollment-submitted-rejected": submitted_and_rejected,
    "enrollment-mail-bounced-fixed-approved": bounced_fixed_approved,
    "enrollment-mail-continued-as-new": continued_as_new,
    # Recorded after LEAN_STORE_WRITES: validate and persist as local activities, unchanged attributes not upserted.
    "enrollment-lean-bounced-fixed-approved": bounced_fixed_approved,
    "enrollment-lean-expired-then-revived": expired_then_revived,
    "enrollment-lean-continued-as-new": continued_as_new,
    # Recorded after CARRIED_HANDOVER and STALE_BOUNCES_IGNORED (history limit 60).
    "enrollment-carried-resent-bounced-continued": resent_old_bounce_continued,
    # Recorded after CHECKED_WITH_FIRST_WRITE: no validate, persist checks the fields.
    "enrollment-checked-bounced-fixed-approved": bounced_fixed_approved,
}
ACCOUNT_SCENARIOS: dict[str, Scenario] = {
    "account-lifecycle": account_lifecycle,
    "account-mail-suspended-past-end": account_suspended_past_end,
    # Recorded after MEMBER_ADMINISTRATORS: the contacts become administrators at the first run.
    "account-with-administrators": account_with_administrators,
    # Recorded after CARRIED_HANDOVER (3 events per run).
    "account-carried-continued-as-new": account_continued_as_new,
}

CREDENTIAL_SCENARIOS: dict[str, Scenario] = {
    "credential-batch-imported": credential_batch_imported,
}


async def webhook_endpoint_lifecycle(env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any]) -> None:
    """Two deliveries, one failing once (Failing, then Enabled again on its retry), disabled and enabled by its
    owner, one replayed, then deleted."""
    await wait_for_delivered(handle, 2)
    await handle.execute_update("set_enabled", EnableEndpoint(enabled=False), id="disable-1")
    await handle.execute_update("set_enabled", EnableEndpoint(enabled=True), id="enable-1")
    await handle.execute_update("replay", ReplayDelivery(delivery_id="msg_b"), id="replay-1")
    await wait_for_delivered(handle, 3)
    await handle.execute_update("remove", RemoveEndpoint(), id="remove-1")
    await handle.result()


WEBHOOK_ATTEMPTS: dict[str, int] = {}


async def wait_for_delivered(handle: WorkflowHandle[Any, Any], count: int) -> None:
    for _ in range(300):
        if sum(1 for key, n in WEBHOOK_ATTEMPTS.items() if key.endswith(":ok")) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the deliveries never went")


def webhook_activities() -> list[Any]:
    """An endpoint's steps, faked: two events delivered at once but `msg_a` refused (500), retried and delivered."""
    collected: list[int] = []

    @activity.defn(name="deliver_new_events")
    async def deliver_new_events(request: DeliverNewEvents) -> NewEventsDelivered:
        if not collected:
            collected.append(1)
            WEBHOOK_ATTEMPTS["msg_b-1:ok"] = 1
            failed = FailedDelivery(delivery_id="msg_a", attempts=1, status_code=500)
            return NewEventsDelivered(cursor=request.after + 2, delivered=1, failed=(failed,))
        await asyncio.sleep(1)  # waits for an event, as the real one does (up to its wait)
        return NewEventsDelivered(cursor=request.after)

    @activity.defn(name="attempt_delivery")
    async def attempt_delivery(request: AttemptDelivery) -> AttemptOutcome:
        WEBHOOK_ATTEMPTS[f"{request.delivery_id}-{request.number}-{len(WEBHOOK_ATTEMPTS)}:ok"] = 1
        return AttemptOutcome(delivered=True, status_code=200)

    @activity.defn(name="record_endpoint_status")
    async def record_endpoint_status(change: EndpointStatusChange) -> None:
        pass

    @activity.defn(name="notify_endpoint_disabled")
    async def notify_endpoint_disabled(change: EndpointStatusChange) -> None:
        pass

    @activity.defn(name="reschedule_deliveries")
    async def reschedule_deliveries(delivery_ids: list[str]) -> None:
        pass

    return [
        deliver_new_events,
        attempt_delivery,
        record_endpoint_status,
        notify_endpoint_disabled,
        reschedule_deliveries,
    ]


WEBHOOK_SCENARIOS: dict[str, Scenario] = {
    "webhook-endpoint-failed-retried-replayed-removed": webhook_endpoint_lifecycle,
}

ADMINISTRATOR_SCENARIOS: dict[str, Scenario] = {
    "administrator-expired-resent": administrator_expired_resent,
}


async def record(
    name: str, start: Callable[[WorkflowEnvironment, str], Awaitable[WorkflowHandle[Any, Any]]], scenario: Scenario
) -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=shutil.which("temporal-test-server")
    )
    try:
        from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default",
                search_attributes={k.name: k.indexed_value_type.value for k in SEARCH_ATTRIBUTES},  # type: ignore[misc]
            )
        )
        task_queue = f"record-{uuid.uuid4().hex[:8]}"
        account_only = [
            a for a in account_test.Fakes().activities() if a.__temporal_activity_definition.name == "record_account"
        ]
        activities = (
            enrollment_test.Fakes().activities()
            + account_only
            + administrator_activities()
            + credential_activities()
            + webhook_activities()
        )
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=activities,
        ):
            handle = await start(env, task_queue)
            await scenario(env, handle)
            first = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
            history = await first.fetch_history()
        (HERE / f"{name}.json").write_text(history.to_json())
        print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


def enrollment_starter(
    env: WorkflowEnvironment, task_queue: str, history_limit: int = 2000
) -> Awaitable[WorkflowHandle[Any, Any]]:
    enrollment_id = uuid.uuid4().hex[:16]
    return env.client.start_workflow(
        EnrollmentWorkflow.run,
        EnrollmentInput(
            enrollment_id=enrollment_id, fields=FIELDS, created_by=CSM, schedule=SCHEDULE, history_limit=history_limit
        ),
        id=enrollment_workflow_id(enrollment_id),
        task_queue=task_queue,
    )


async def account_starter(
    env: WorkflowEnvironment, task_queue: str, events_per_run: int = 1000
) -> WorkflowHandle[Any, Any]:
    today = (await env.get_current_time()).date()
    account_id = uuid.uuid4().hex[:16]
    return await env.client.start_workflow(
        MemberAccountWorkflow.run,
        AccountInput(
            account_id=account_id,
            enrollment_id=account_id,
            fields=FIELDS.model_copy(update={"service_end_date": today + timedelta(days=60)}),
            form=FORM,
            created_by=CSM,
            service_start_date=today,
            warning_offsets=SCHEDULE.warning_offsets,
            events_per_run=events_per_run,
        ),
        id=account_workflow_id(account_id),
        task_queue=task_queue,
    )


async def administrator_starter(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[Any, Any]:
    user_id = uuid.uuid4().hex[:16]
    return await env.client.start_workflow(
        AdministratorWorkflow.run,
        AdministratorInput(
            user_id=user_id,
            account_id=uuid.uuid4().hex[:16],
            invited_by=CSM,
            activation_ttl=7 * DAY,
            reminder_after=3 * DAY,
        ),
        id=administrator_workflow_id(user_id),
        task_queue=task_queue,
    )


async def credential_starter(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[Any, Any]:
    return await start_import(env.client, uuid.uuid4().hex[:16], task_queue)


async def webhook_starter(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[Any, Any]:
    return await start_endpoint(env.client, uuid.uuid4().hex[:16], 0, task_queue)


async def main(names: list[str]) -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    if not names:
        scenarios = (ENROLLMENT_SCENARIOS, ACCOUNT_SCENARIOS, ADMINISTRATOR_SCENARIOS, CREDENTIAL_SCENARIOS)
        print("scenarios:", *(name for group in scenarios for name in group), *WEBHOOK_SCENARIOS)
    for name in names:
        if name in ("enrollment-mail-continued-as-new", "enrollment-carried-resent-bounced-continued"):
            await record(name, lambda env, queue: enrollment_starter(env, queue, 60), ENROLLMENT_SCENARIOS[name])
        elif name == "account-carried-continued-as-new":
            await record(name, lambda env, queue: account_starter(env, queue, 3), ACCOUNT_SCENARIOS[name])
        elif name in ENROLLMENT_SCENARIOS:
            await record(name, enrollment_starter, ENROLLMENT_SCENARIOS[name])
        elif name in CREDENTIAL_SCENARIOS:
            await record(name, credential_starter, CREDENTIAL_SCENARIOS[name])
        elif name in WEBHOOK_SCENARIOS:
            await record(name, webhook_starter, WEBHOOK_SCENARIOS[name])
        elif name in ADMINISTRATOR_SCENARIOS:
            await record(name, administrator_starter, ADMINISTRATOR_SCENARIOS[name])
        else:
            await record(name, account_starter, ACCOUNT_SCENARIOS[name])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
