"""MemberAccountWorkflow: an approved member account, from approval until it is deleted."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, time, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.administrators import AdministratorActivities
    from activities.enrollment import EnrollmentActivities
    from domain.models import (
        SYSTEM,
        AccountChange,
        AccountInput,
        AccountStatus,
        AccountView,
        Actor,
        AddUsersPurchased,
        AdministratorInput,
        CreateAdministrators,
        EditAccount,
        EmailKind,
        EmailRequest,
        MailProblem,
        MemberType,
        NewAdministrator,
        RecordAccount,
        SkippedNotice,
        TimelineEvent,
        UsageReport,
    )
    from domain.status import AccountAction, account_refusal
    from workflows.administrator import AdministratorWorkflow
    from workflows.common import (
        BEST_EFFORT_MAIL,
        EMAIL_TIMEOUT,
        RECORD_TIMEOUT,
        RETRY,
        Mail,
        changed_within,
        mail_problem_of,
        refuse,
    )
    from workflows.names import ACCOUNT_STATUS, MEMBER_TYPE, SERVICE_END_DATE, administrator_workflow_id

A = AccountStatus
MEMBER_ADMINISTRATORS = "member-administrators"
"""The patch that makes the approved enrollment's contacts administrators of the account at its first run:
runs started before it replay without that step."""


def ends_at(view: AccountView) -> datetime:
    """The account is disabled from 00:00 UTC on its service end date."""
    return datetime.combine(view.service_end_date, time(0), tzinfo=UTC)


@workflow.defn
class MemberAccountWorkflow:
    """An Active member account: service-end warnings at each offset, Expired at the end date (revived when
    the date is extended), Suspended ⇄ Active, Deleted only from Suspended; continues as new to stay bounded.

    Query `status` → AccountView. Updates: `suspend`, `reactivate`, `delete`, `edit`,
    `add_users_purchased`, `report_usage`, `mail_event`.

    Emails are best-effort, sent by a mailer task outside the lock (a failure is an `email_failed` event).
    Suspension is kept apart from expiry: a Suspended account stays Suspended past its end date, and only
    reactivating it makes it Active (or Expired, once the date has passed).

    At its first run the approved enrollment's contacts become the account's administrators, each invited by an
    AdministratorWorkflow of its own (abandoned, so it outlives nothing it depends on here).
    """

    @workflow.init
    def __init__(self, input: AccountInput) -> None:
        self._input = input
        fields = input.fields
        self._view = input.state or AccountView(
            id=input.account_id,
            enrollment_id=input.enrollment_id,
            status=A.active,
            service_start_date=input.service_start_date,
            contacts=input.form,
            **fields.model_dump(),
            created_by=input.created_by.email,
            created_at=workflow.now(),
        )
        self._warned: set[str] = set(input.warned)
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._events = 0
        # Decided once per run: runs started before email became best-effort replay their old shape.
        self._v2 = workflow.patched(BEST_EFFORT_MAIL)
        self._outbox: list[Mail] = []
        self._sending = False
        self._notice: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, input: AccountInput) -> AccountView:
        mailer = asyncio.create_task(self._mailer()) if self._v2 else None
        async with self._lock:
            if input.state is None:
                await self._record(
                    "activated", input.approved_by or input.created_by, f"enrollment {input.enrollment_id} approved"
                )
            else:
                self._upsert_attributes()
        if input.state is None and workflow.patched(MEMBER_ADMINISTRATORS):
            await self._make_administrators(input)
        while self._view.status != A.deleted:
            # Bound the history over years of usage reports and edits: a fresh run carries the state on.
            if self._events >= input.events_per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mail_idle())
                workflow.continue_as_new(
                    input.model_copy(
                        update={"state": self._view.model_copy(update={"timeline": []}), "warned": sorted(self._warned)}
                    )
                )
            if self._view.status == A.expired or self._ended_while_suspended():
                await self._changed_within(None, None)
            else:
                await self._wait_for_service_end()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mail_idle())
        if mailer is not None:
            mailer.cancel()
        return self._view

    @workflow.query(name="status")
    def status(self) -> AccountView:
        return self._view

    # --- updates -----------------------------------------------------------------------------------

    @workflow.update(name="suspend")
    async def suspend(self, change: AccountChange) -> AccountView:
        async with self._lock:
            self._require(AccountAction.suspend)
            self._set(status=A.suspended)
            await self._record("suspended", change.actor, change.audit_note)
            return self._view

    @suspend.validator
    def _validate_suspend(self, change: AccountChange) -> None:
        self._require(AccountAction.suspend)

    @workflow.update(name="reactivate")
    async def reactivate(self, change: AccountChange) -> AccountView:
        async with self._lock:
            self._require(AccountAction.reactivate)
            self._set(status=A.expired if workflow.now() >= ends_at(self._view) else A.active)
            await self._record("reactivated", change.actor, change.audit_note)
            return self._view

    @reactivate.validator
    def _validate_reactivate(self, change: AccountChange) -> None:
        self._require(AccountAction.reactivate)

    @workflow.update(name="delete")
    async def delete(self, change: AccountChange) -> AccountView:
        async with self._lock:
            self._require(AccountAction.delete)
            self._set(status=A.deleted)
            await self._record("deleted", change.actor, change.audit_note, release_claim=True)
            return self._view

    @delete.validator
    def _validate_delete(self, change: AccountChange) -> None:
        self._require(AccountAction.delete)

    @workflow.update(name="edit")
    async def edit(self, change: EditAccount) -> AccountView:
        async with self._lock:
            self._check_edit(change)
            notes = []
            if change.service_end_date is not None and change.service_end_date != self._view.service_end_date:
                notes.append(f"service end date {self._view.service_end_date} → {change.service_end_date}")
                self._set(service_end_date=change.service_end_date)
                if self._view.status == A.expired and workflow.now() < ends_at(self._view):
                    self._set(status=A.active)
            if (
                change.display_users_purchased is not None
                and change.display_users_purchased != self._view.display_users_purchased
            ):
                notes.append(f"display users purchased {'on' if change.display_users_purchased else 'off'}")
                self._set(display_users_purchased=change.display_users_purchased)
                if change.display_users_purchased and self._view.users_purchased is None:
                    self._set(users_purchased=0)
            await self._record("edited", change.actor, "; ".join([*notes, change.audit_note]))
            return self._view

    @edit.validator
    def _validate_edit(self, change: EditAccount) -> None:
        self._check_edit(change)

    def _check_edit(self, change: EditAccount) -> None:
        self._require(AccountAction.edit)
        if change.display_users_purchased and self._view.member_type != MemberType.customer:
            refuse("Display Users Purchased applies to customer accounts only.")

    @workflow.update(name="add_users_purchased")
    async def add_users_purchased(self, order: AddUsersPurchased) -> AccountView:
        async with self._lock:
            self._check_add(order)
            before = self._view.users_purchased or 0
            self._set(users_purchased=before + order.add)
            sign = "+" if order.add >= 0 else "−"
            note = f"{before:,} {sign} {abs(order.add):,} = {before + order.add:,}; {order.audit_note}"
            await self._record("users purchased changed", order.actor, note)
            return self._view

    @add_users_purchased.validator
    def _validate_add(self, order: AddUsersPurchased) -> None:
        self._check_add(order)

    def _check_add(self, order: AddUsersPurchased) -> None:
        self._require(AccountAction.add_users)
        if (self._view.users_purchased or 0) + order.add < 0:
            refuse(f"Users purchased cannot go below zero (the total is {self._view.users_purchased or 0:,}).")

    @workflow.update(name="report_usage")
    async def report_usage(self, report: UsageReport) -> AccountView:
        async with self._lock:
            self._require(AccountAction.report_usage)
            last = self._view.users_reported_at
            if last is None or report.reported_at >= last:
                self._set(users_existing=report.users_existing, users_reported_at=report.reported_at)
                await self._record(None, SYSTEM, None)
            return self._view

    @report_usage.validator
    def _validate_usage(self, report: UsageReport) -> None:
        self._require(AccountAction.report_usage)

    @workflow.update(name="mail_event")
    async def mail_event(self, problem: MailProblem) -> AccountView:
        """A provider's late report on one of this account's emails (`POST /api/mail-events`)."""
        async with self._lock:
            await self._mail_problem(problem)
            return self._view

    # --- the service end date ------------------------------------------------------------------------

    def _due_warnings(self) -> list[tuple[datetime, str]]:
        """(when, key) of the warnings for the current end date not yet sent, soonest first."""
        end = ends_at(self._view)
        due = [
            (end - timedelta(seconds=offset), f"{self._view.service_end_date.isoformat()}:{offset:g}")
            for offset in self._input.warning_offsets
        ]
        return sorted((at, key) for at, key in due if key not in self._warned)

    async def _wait_for_service_end(self) -> None:
        epoch = self._epoch
        warnings = self._due_warnings()
        at = warnings[0][0] if warnings else ends_at(self._view)
        delay = (at - workflow.now()).total_seconds()
        if delay > 0 and await self._changed_within(
            timedelta(seconds=delay), "service end" if not warnings else "service end warning"
        ):
            return
        async with self._lock:
            if self._epoch != epoch or self._view.status in (A.expired, A.deleted):
                return
            now = workflow.now()
            passed = [key for when, key in self._due_warnings() if when <= now]
            if now >= ends_at(self._view) and self._v2 and self._view.status == A.suspended:
                # The service has ended, but the account stays Suspended until someone reactivates it.
                self._warned.update([*passed, self._end_key()])
                await self._record("service ended", SYSTEM, f"service end date {self._view.service_end_date} reached")
                await self._email(EmailKind.account_expired, f"expired-{self._view.service_end_date.isoformat()}")
            elif now >= ends_at(self._view):
                self._warned.update(passed)
                self._set(status=A.expired)
                await self._record("expired", SYSTEM, f"service end date {self._view.service_end_date} reached")
                await self._email(EmailKind.account_expired, f"expired-{self._view.service_end_date.isoformat()}")
            elif passed:
                # One email, however many offsets have already passed (an account ending tomorrow warns once).
                self._warned.update(passed)
                await self._email(EmailKind.service_end_warning, f"warning-{passed[-1]}")
                await self._record("service end warning", SYSTEM, f"service ends on {self._view.service_end_date}")

    def _end_key(self) -> str:
        return f"{self._view.service_end_date.isoformat()}:ended"

    def _ended_while_suspended(self) -> bool:
        """A Suspended account whose service end has been handled: nothing to wait for but a change."""
        return self._v2 and self._view.status == A.suspended and self._end_key() in self._warned

    async def _changed_within(self, timeout: timedelta | None, label: str | None) -> bool:
        return await changed_within(lambda: self._epoch, timeout, label)

    # --- the mailer ----------------------------------------------------------------------------------

    async def _mailer(self) -> None:
        """Send the queued emails one by one, outside the lock; relay trouble retries inside the activity."""
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            mail = self._outbox.pop(0)
            self._sending = True
            try:
                result = await workflow.execute_activity_method(
                    mail.activity,
                    mail.request,
                    activity_id=mail.activity_id,
                    start_to_close_timeout=EMAIL_TIMEOUT,
                    retry_policy=RETRY,
                )
                problems = [
                    MailProblem(kind=mail.request.kind, recipient=address, reason=reply)
                    for address, _, reply in (refusal.partition(": ") for refusal in result.refused)
                ]
            except ActivityError as err:
                problem = mail_problem_of(mail, err)
                problems = [problem] if problem else []
            finally:
                self._sending = False
            for problem in problems:
                async with self._lock:
                    await self._mail_problem(problem)

    async def _mail_problem(self, problem: MailProblem) -> None:
        event = "complained" if problem.event == "complained" else "email_failed"
        await self._record(event, SYSTEM, f"{problem.kind.value} to {problem.recipient}: {problem.reason}")

    def _mail_idle(self) -> bool:
        return not self._outbox and not self._sending and (self._notice is None or self._notice.done())

    # --- the administrators ----------------------------------------------------------------------------

    async def _make_administrators(self, input: AccountInput) -> None:
        """Approval makes the corporate and technical contacts administrators, each invited by a run of its own.
        A contact not attached is on the timeline (the store wrote it, with its address) and the reviewer is
        told; this history holds only user ids and counts."""
        if input.form is None:
            return
        by = input.approved_by or input.created_by
        request = CreateAdministrators(
            account_id=self._view.id,
            organization_name=self._view.organization_name,
            member_type=self._view.member_type,
            contacts=[
                NewAdministrator(email=input.fields.corporate_contact_email, name=input.form.corporate_contact_name),
                NewAdministrator(email=input.form.technical_contact_email, name=input.form.technical_contact_name),
            ],
            by=by,
        )
        created = await workflow.execute_activity_method(
            AdministratorActivities.create_administrators,
            request,
            activity_id="create-administrators",
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
        )
        if not created.invite and not created.skipped:
            return  # every contact was an administrator of this account already
        note = f"{len(created.invite)} invited"
        if created.skipped:
            note += f"; {created.skipped} contact{'s' if created.skipped > 1 else ''} not attached"
        async with self._lock:
            await self._record("administrators invited", SYSTEM, note)
        for user_id in created.invite:
            # An administrator whose invitation already runs (a retried approval) keeps that run.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await workflow.start_child_workflow(
                    AdministratorWorkflow.run,
                    AdministratorInput(
                        user_id=user_id,
                        account_id=self._view.id,
                        invited_by=by,
                        activation_ttl=created.activation_ttl,
                        reminder_after=created.reminder_after,
                    ),
                    id=administrator_workflow_id(user_id),
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    static_summary=f"Administrator invitation · account {self._view.id}",
                )
        if created.skipped and by.user_id:
            self._notice = asyncio.create_task(
                self._notify_skipped(SkippedNotice(account_id=self._view.id, reviewer_id=by.user_id))
            )

    async def _notify_skipped(self, notice: SkippedNotice) -> None:
        """Best-effort, like every email: a failure is an `email_failed` event."""
        try:
            await workflow.execute_activity_method(
                AdministratorActivities.notify_skipped,
                notice,
                activity_id="notify-skipped",
                start_to_close_timeout=EMAIL_TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            reason = err.cause.message if isinstance(err.cause, ApplicationError) else str(err.cause or err)
            async with self._lock:
                await self._record("email_failed", SYSTEM, f"{EmailKind.administrators_skipped.value}: {reason}")

    # --- steps ---------------------------------------------------------------------------------------

    def _recipients(self) -> list[str]:
        recipients = [self._view.corporate_contact_email]
        if self._view.contacts:
            recipients.append(self._view.contacts.technical_contact_email)
        if self._view.created_by:
            recipients.append(self._view.created_by)
        return list(dict.fromkeys(recipients))

    async def _email(self, kind: EmailKind, activity_id: str) -> None:
        """Queue the email for the mailer (older runs: send it now, and wait)."""
        request = EmailRequest(kind=kind, account=self._view.model_copy(update={"timeline": []}), to=self._recipients())
        if self._v2:
            self._outbox.append(Mail(request, EnrollmentActivities.send_email, f"email-{activity_id}"))
            return
        await workflow.execute_activity_method(
            EnrollmentActivities.send_email,
            request,
            activity_id=f"email-{activity_id}",
            start_to_close_timeout=EMAIL_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _record(self, event: str | None, actor: Actor, note: str | None, *, release_claim: bool = False) -> None:
        """Bring the store's row up to the view, adding `event` to the timeline when there is one."""
        self._events += 1
        entry = None
        if event is not None:
            entry = TimelineEvent(at=workflow.now(), event=event, actor=actor.label, note=note, source=actor.source)
            self._view = self._view.model_copy(update={"timeline": [*self._view.timeline[-49:], entry]})
        info = workflow.info()
        record = RecordAccount(
            view=self._view.model_copy(update={"timeline": []}),
            event_key=f"{info.workflow_id}/{info.run_id}/event-{self._events}",
            event=entry,
            release_claim=release_claim,
        )
        await workflow.execute_activity_method(
            EnrollmentActivities.record_account,
            record,
            activity_id=f"record-{self._events}",
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
        )
        self._epoch += 1
        self._upsert_attributes()

    def _require(self, action: AccountAction) -> None:
        """Refuse `action` with the status machine's sentence when the status does not allow it now (a 409)."""
        refuse(account_refusal(self._view.status, action))

    def _set(self, **changes: Any) -> None:
        self._view = self._view.model_copy(update=changes)

    def _upsert_attributes(self) -> None:
        view = self._view
        updates: list[SearchAttributeUpdate[Any]] = [
            ACCOUNT_STATUS.value_set(view.status.value),
            MEMBER_TYPE.value_set(view.member_type.value),
            SERVICE_END_DATE.value_set(ends_at(view)),
        ]
        workflow.upsert_search_attributes(updates)
        details = f"**{view.status.value}** · service ends {view.service_end_date.isoformat()}"
        if view.display_users_purchased:
            details += f" · users purchased {view.users_purchased or 0:,}"
        if view.users_existing is not None:
            details += f" · users existing {view.users_existing:,}"
        if view.timeline:
            last = view.timeline[-1]
            details += f"\n\nLast event: {last.event} by {last.actor} at {last.at:%Y-%m-%d %H:%M:%S} UTC"
        workflow.set_current_details(details)
