"""MemberAccountWorkflow: an approved member account, from approval until it is deleted."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, time, timedelta
from typing import Any, NoReturn

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
        EmailResult,
        MailProblem,
        MemberType,
        NewAdministrator,
        QueuedEmail,
        RecordAccount,
        SkippedNotice,
        TimelineEvent,
        UsageReport,
    )
    from domain.status import AccountAction, account_refusal
    from workflows.administrator import AdministratorWorkflow
    from workflows.common import (
        BEST_EFFORT_MAIL,
        CARRIED_HANDOVER,
        EMAIL_TIMEOUT,
        HANDOVER_MAIL_WAIT,
        RECORD_TIMEOUT,
        RETRY,
        applied_once,
        changed_within,
        checked_once,
        refuse,
        refuse_while_handing_over,
    )
    from workflows.details import account_details
    from workflows.mailer import Mailer, refusals_of
    from workflows.names import ACCOUNT_STATUS, MEMBER_TYPE, SERVICE_END_DATE, administrator_workflow_id

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
            status=AccountStatus.active,
            service_start_date=input.service_start_date,
            contacts=input.form,
            **fields.model_dump(),
            created_by=input.created_by.email,
            created_at=workflow.now(),
        )
        self._warned: set[str] = set(input.warned)
        self._lock = asyncio.Lock()
        self._epoch = 0
        # Each patch is decided once per run: runs started before it replay their old shape (the section "Runs
        # started before a patch" at the end gathers what only they do).
        self._best_effort_mail = workflow.patched(BEST_EFFORT_MAIL)
        self._carried_handover = self._best_effort_mail and workflow.patched(CARRIED_HANDOVER)
        self._events = input.events if self._carried_handover else 0
        self._mailer = Mailer(
            sent=self._mail_sent,
            failed=self._mail_failed,
            queued=input.mail if self._carried_handover else (),
        )
        self._updates: list[str] | None = list(input.updates) if self._carried_handover else None
        self._draining = False
        self._notice: asyncio.Task[None] | None = None
        self._notice_request: SkippedNotice | None = None

    @workflow.run
    async def run(self, input: AccountInput) -> AccountView:
        mailer = asyncio.create_task(self._mailer.run()) if self._best_effort_mail else None
        if input.notice is not None and self._carried_handover:
            self._notice = asyncio.create_task(self._notify_skipped(input.notice))
        async with self._lock:
            if input.state is None:
                await self._record(
                    "activated", input.approved_by or input.created_by, f"enrollment {input.enrollment_id} approved"
                )
            else:
                self._upsert_attributes()
        if input.state is None and workflow.patched(MEMBER_ADMINISTRATORS):
            await self._make_administrators(input)
        while self._view.status != AccountStatus.deleted:
            # Bound the history over years of usage reports and edits: a fresh run carries the state on.
            if self._history_full(input):
                await self._hand_over(input)
            if self._view.status == AccountStatus.expired or self._ended_while_suspended():
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
    @applied_once
    async def suspend(self, change: AccountChange) -> AccountView:
        async with self._lock:
            self._require(AccountAction.suspend)
            self._set(status=AccountStatus.suspended)
            await self._record("suspended", change.actor, change.audit_note)
            return self._view

    @suspend.validator
    @checked_once
    def _validate_suspend(self, change: AccountChange) -> None:
        self._require(AccountAction.suspend)

    @workflow.update(name="reactivate")
    @applied_once
    async def reactivate(self, change: AccountChange) -> AccountView:
        async with self._lock:
            self._require(AccountAction.reactivate)
            self._set(status=AccountStatus.expired if workflow.now() >= ends_at(self._view) else AccountStatus.active)
            await self._record("reactivated", change.actor, change.audit_note)
            return self._view

    @reactivate.validator
    @checked_once
    def _validate_reactivate(self, change: AccountChange) -> None:
        self._require(AccountAction.reactivate)

    @workflow.update(name="delete")
    @applied_once
    async def delete(self, change: AccountChange) -> AccountView:
        async with self._lock:
            self._require(AccountAction.delete)
            self._set(status=AccountStatus.deleted)
            await self._record("deleted", change.actor, change.audit_note, release_claim=True)
            return self._view

    @delete.validator
    @checked_once
    def _validate_delete(self, change: AccountChange) -> None:
        self._require(AccountAction.delete)

    @workflow.update(name="edit")
    @applied_once
    async def edit(self, change: EditAccount) -> AccountView:
        async with self._lock:
            self._check_edit(change)
            notes = []
            if change.service_end_date is not None and change.service_end_date != self._view.service_end_date:
                notes.append(f"service end date {self._view.service_end_date} → {change.service_end_date}")
                self._set(service_end_date=change.service_end_date)
                if self._view.status == AccountStatus.expired and workflow.now() < ends_at(self._view):
                    self._set(status=AccountStatus.active)
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
    @checked_once
    def _validate_edit(self, change: EditAccount) -> None:
        self._check_edit(change)

    def _check_edit(self, change: EditAccount) -> None:
        self._require(AccountAction.edit)
        if change.display_users_purchased and self._view.member_type != MemberType.customer:
            refuse("Display Users Purchased applies to customer accounts only.")

    @workflow.update(name="add_users_purchased")
    @applied_once
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
    @checked_once
    def _validate_add(self, order: AddUsersPurchased) -> None:
        self._check_add(order)

    def _check_add(self, order: AddUsersPurchased) -> None:
        self._require(AccountAction.add_users)
        if (self._view.users_purchased or 0) + order.add < 0:
            refuse(f"Users purchased cannot go below zero (the total is {self._view.users_purchased or 0:,}).")

    @workflow.update(name="report_usage")
    @applied_once
    async def report_usage(self, report: UsageReport) -> AccountView:
        async with self._lock:
            self._require(AccountAction.report_usage)
            last = self._view.users_reported_at
            if last is None or report.reported_at >= last:
                self._set(users_existing=report.users_existing, users_reported_at=report.reported_at)
                await self._record(None, SYSTEM, None)
            return self._view

    @report_usage.validator
    @checked_once
    def _validate_usage(self, report: UsageReport) -> None:
        self._require(AccountAction.report_usage)

    @workflow.update(name="mail_event")
    @applied_once
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
            if self._epoch != epoch or self._view.status in (AccountStatus.expired, AccountStatus.deleted):
                return
            now = workflow.now()
            passed = [key for when, key in self._due_warnings() if when <= now]
            if now >= ends_at(self._view) and self._best_effort_mail and self._view.status == AccountStatus.suspended:
                # The service has ended, but the account stays Suspended until someone reactivates it.
                self._warned.update([*passed, self._end_key()])
                await self._record("service ended", SYSTEM, f"service end date {self._view.service_end_date} reached")
                await self._email(EmailKind.account_expired, f"expired-{self._view.service_end_date.isoformat()}")
            elif now >= ends_at(self._view):
                self._warned.update(passed)
                self._set(status=AccountStatus.expired)
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
        suspended = self._view.status == AccountStatus.suspended
        return self._best_effort_mail and suspended and self._end_key() in self._warned

    async def _changed_within(self, timeout: timedelta | None, label: str | None) -> bool:
        return await changed_within(lambda: self._epoch, timeout, label)

    # --- the mailer's outcomes and the handover -------------------------------------------------------------

    async def _mail_sent(self, mail: QueuedEmail, result: EmailResult) -> None:
        for problem in refusals_of(mail, result):
            async with self._lock:
                await self._mail_problem(problem)

    async def _mail_failed(self, problem: MailProblem) -> None:
        async with self._lock:
            await self._mail_problem(problem)

    async def _mail_problem(self, problem: MailProblem) -> None:
        event = "complained" if problem.event == "complained" else "email_failed"
        await self._record(event, SYSTEM, f"{problem.kind.value} to {problem.recipient}: {problem.reason}")

    def _mail_idle(self) -> bool:
        return self._mailer.idle() and (self._notice is None or self._notice.done())

    def _history_full(self, input: AccountInput) -> bool:
        if workflow.info().is_continue_as_new_suggested():
            return True
        return self._events - (input.events if self._carried_handover else 0) >= input.events_per_run

    async def _hand_over(self, input: AccountInput) -> NoReturn:
        """Carry the account on in a fresh run, so its history stays bounded over years of usage reports and
        edits. As an enrollment's: updates are turned away meanwhile (the ways in retry them on the fresh run),
        the handlers running finish first, and the emails not yet sent (and the reviewer's notice) go with it
        once they have had a few seconds, so a relay outage never holds the handover."""
        if not self._carried_handover:
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mail_idle())
            workflow.continue_as_new(self._next_input(input))
        self._draining = True
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mailer.settled())
        if not self._mail_idle():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._mail_idle, timeout=HANDOVER_MAIL_WAIT, timeout_summary="emails on their way"
                )
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mailer.settled())
        workflow.continue_as_new(self._next_input(input))

    def _next_input(self, input: AccountInput) -> AccountInput:
        state = {"state": self._view.model_copy(update={"timeline": []}), "warned": sorted(self._warned)}
        if not self._carried_handover:
            return input.model_copy(update=state)
        notice = self._notice_request if self._notice is not None and not self._notice.done() else None
        return input.model_copy(
            update={
                **state,
                "events": self._events,
                "mail": self._mailer.pending(),
                "updates": self._updates or [],
                "notice": notice,
            }
        )

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
        self._notice_request = notice
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
        if self._best_effort_mail:
            self._mailer.queue(QueuedEmail(request=request, activity_id=f"email-{activity_id}"))
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
        # `<workflow id>/event-<n>`: n grows across runs, so the store writes the row only from a newer record.
        # Runs started before CARRIED_HANDOVER count from 1 in each run, and key by run too (no version).
        run = "" if self._carried_handover else f"/{info.run_id}"
        record = RecordAccount(
            view=self._view.model_copy(update={"timeline": []}),
            event_key=f"{info.workflow_id}{run}/event-{self._events}",
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
        """Refuse `action` with the status machine's sentence when the status does not allow it now (a 409), or,
        while the run hands over to a fresh one, with `ContinuingAsNew` (the ways in retry it there)."""
        refuse_while_handing_over(self._draining, "account")
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
        workflow.set_current_details(account_details(view))
