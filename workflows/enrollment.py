"""EnrollmentWorkflow: one member-account enrollment, from the CSM's create to approval or another end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.models import (
        CONTACT,
        SYSTEM,
        AccountInput,
        Actor,
        CsmAction,
        EditEnrollment,
        EmailKind,
        EmailRequest,
        EmailResult,
        EnrollmentInput,
        EnrollmentStatus,
        EnrollmentView,
        LinkRequest,
        RecordEnrollment,
        ReviewAction,
        SubmitForm,
        TimelineEvent,
        ValidateEnrollment,
    )
    from domain.status import EnrollmentAction, enrollment_refusal
    from workflows.attributes import (
        ENROLLMENT_STATUS,
        FORM_DUE_AT,
        MEMBER_TYPE,
        REMINDER_COUNT,
    )

S = EnrollmentStatus
RESENDS_PER_DAY = 5
EXPIRED_REVIVAL_WINDOW = timedelta(days=30)
RECORD_TIMEOUT = timedelta(seconds=30)
EMAIL_TIMEOUT = timedelta(seconds=90)
# Transient failures (store locked, SMTP down) retry for as long as it takes, backing off to a minute.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)


async def changed_within(epoch: Callable[[], int], timeout: timedelta | None, label: str | None) -> bool:
    """True when a handler moved the process on (bumped its epoch) before `timeout` (None: wait as long as it takes).
    The label is the timer's summary in the Temporal UI."""
    start = epoch()
    try:
        await workflow.wait_condition(lambda: epoch() != start, timeout=timeout, timeout_summary=label)
    except TimeoutError:
        return False
    return True


def refused(status: EnrollmentStatus, action: EnrollmentAction) -> None:
    """Raise the status machine's sentence when `action` is not allowed now (an update's 409)."""
    reason = enrollment_refusal(status, action)
    if reason:
        raise ApplicationError(reason, type="TransitionRefused", non_retryable=True)


@workflow.defn
class EnrollmentWorkflow:
    """Validate → persist (New) → invite the contact → wait for the form with reminders and expiry →
    review → approve (starts MemberAccountWorkflow) or reject.

    Query `status` → EnrollmentView. Updates (each refused by the status machine when not allowed now):
    `created` (waits until persisted; the API starts the run with it), `submit_form`, `resend`, `edit`,
    `cancel`, `start_review`, `approve`, `reject`.
    """

    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        self._input = input
        now = workflow.now()
        fields = input.fields
        self._view = EnrollmentView(
            id=input.enrollment_id,
            status=S.new,
            created_at=now,
            created_by=input.created_by.email,
            expires_at=now + timedelta(seconds=input.schedule.ttl),
            **fields.model_dump(),
        )
        # Handlers and the timer loop take turns through this lock, so a reminder can't cross a submit.
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._events = 0
        self._persisted = False
        self._failure: ApplicationError | None = None
        self._invited_version = 0
        self._round_started_at = now
        self._resends: list[datetime] = []
        self._opened_versions: set[int] = set()

    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentView:
        self._upsert_attributes()
        try:
            await self._activity(
                "validate", ValidateEnrollment(enrollment_id=input.enrollment_id, fields=input.fields), "validate"
            )
            await self._record("created", input.created_by, None, activity="persist")
        except ActivityError as err:
            cause = err.cause if isinstance(err.cause, ApplicationError) else None
            self._failure = cause or ApplicationError(str(err), type="EnrollmentFailed", non_retryable=True)
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise self._failure from err
        self._persisted = True
        async with self._lock:
            await self._invite(rotate=True)
        while True:
            status = self._view.status
            if status == S.new:
                await self._wait_for_form()
            elif status == S.expired:
                if not await self._changed_within(EXPIRED_REVIVAL_WINDOW, "revival window closes"):
                    async with self._lock:
                        if self._view.status == S.expired:
                            await self._record("closed", SYSTEM, "expired too long ago to resend", release_claim=True)
                            break
            elif status in (S.pending_review, S.in_review):
                await self._changed_within(None, None)
            else:
                break
        # Let an update that is still emailing (approve, reject, cancel) finish before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._view

    @workflow.query(name="status")
    def status(self) -> EnrollmentView:
        return self._view

    @workflow.signal(name="opened")
    async def opened(self, link: LinkRequest) -> None:
        """The contact opened the form (once per link version makes the timeline; mail scanners too)."""
        if link.link_version in self._opened_versions:
            return
        self._opened_versions.add(link.link_version)
        async with self._lock:
            if self._view.status == S.new and link.link_version == self._view.link_version:
                await self._record("opened", CONTACT, None)

    # --- updates -----------------------------------------------------------------------------------

    @workflow.update(name="created")
    async def created(self) -> EnrollmentView:
        await workflow.wait_condition(lambda: self._persisted or self._failure is not None)
        if self._failure is not None:
            raise self._failure
        return self._view

    @workflow.update(name="submit_form")
    async def submit_form(self, submission: SubmitForm) -> EnrollmentView:
        async with self._lock:
            self._check_submission(submission)
            self._set(status=S.pending_review, form=submission.form)
            await self._record("submitted", CONTACT.model_copy(update={"source": submission.source}), None)
            await self._activity(
                "close_form_links",
                LinkRequest(enrollment_id=self._view.id, link_version=self._view.link_version),
                f"close-links-{self._view.link_version}",
            )
            await self._email(EmailKind.submitted, [self._view.corporate_contact_email], f"submitted-{self._events}")
            if self._input.created_by.email:
                await self._email(
                    EmailKind.submitted_csm, [self._input.created_by.email], f"submitted-csm-{self._events}"
                )
            return self._view

    @submit_form.validator
    def _validate_submit(self, submission: SubmitForm) -> None:
        self._check_submission(submission)

    def _check_submission(self, submission: SubmitForm) -> None:
        refused(self._view.status, EnrollmentAction.submit_form)
        if submission.link_version != self._view.link_version or self._invited_version != self._view.link_version:
            raise ApplicationError(
                "This enrollment link has been replaced by a newer one.", type="LinkDead", non_retryable=True
            )

    @workflow.update(name="resend")
    async def resend(self, action: CsmAction) -> EnrollmentView:
        async with self._lock:
            self._check_resend()
            self._resends.append(workflow.now())
            self._set(status=S.new)
            await self._invite(rotate=True, actor=action.actor, event="resent", note=action.audit_note)
            return self._view

    @resend.validator
    def _validate_resend(self, action: CsmAction) -> None:
        self._check_resend()

    def _check_resend(self) -> None:
        refused(self._view.status, EnrollmentAction.resend)
        since = workflow.now() - timedelta(days=1)
        if sum(1 for at in self._resends if at > since) >= RESENDS_PER_DAY:
            raise ApplicationError(
                f"The invitation was already resent {RESENDS_PER_DAY} times in the last 24 hours; try again later.",
                type="TransitionRefused",
                non_retryable=True,
            )

    @workflow.update(name="edit")
    async def edit(self, change: EditEnrollment) -> EnrollmentView:
        async with self._lock:
            refused(self._view.status, EnrollmentAction.edit)
            before = self._view
            contact_changed = change.fields.corporate_contact_email != before.corporate_contact_email
            self._set(**change.fields.model_dump())
            try:
                await self._record("edited", change.actor, change.audit_note)
            except ActivityError as err:
                self._view = before
                raise (err.cause if isinstance(err.cause, ApplicationError) else err) from None
            if contact_changed and before.status == S.new:
                await self._email(
                    EmailKind.contact_changed,
                    [before.corporate_contact_email],
                    f"contact-changed-{self._events}",
                    view=before,
                )
                if change.send_invitation:
                    await self._invite(rotate=True)
                else:
                    self._set(link_version=before.link_version + 1)
                    await self._activity(
                        "close_form_links",
                        LinkRequest(enrollment_id=before.id, link_version=before.link_version),
                        f"close-links-{before.link_version}",
                    )
                    await self._record("link rotated", SYSTEM, "not sent: the CSM will resend when ready")
            self._epoch += 1
            return self._view

    @edit.validator
    def _validate_edit(self, change: EditEnrollment) -> None:
        refused(self._view.status, EnrollmentAction.edit)

    @workflow.update(name="cancel")
    async def cancel(self, action: CsmAction) -> EnrollmentView:
        async with self._lock:
            refused(self._view.status, EnrollmentAction.cancel)
            await self._close(S.cancelled, "cancelled", action.actor, action.audit_note)
            return self._view

    @cancel.validator
    def _validate_cancel(self, action: CsmAction) -> None:
        refused(self._view.status, EnrollmentAction.cancel)

    @workflow.update(name="start_review")
    async def start_review(self, action: ReviewAction) -> EnrollmentView:
        async with self._lock:
            refused(self._view.status, EnrollmentAction.start_review)
            self._set(status=S.in_review)
            await self._record("review started", action.actor, action.audit_note)
            return self._view

    @start_review.validator
    def _validate_start_review(self, action: ReviewAction) -> None:
        refused(self._view.status, EnrollmentAction.start_review)

    @workflow.update(name="approve")
    async def approve(self, action: ReviewAction) -> EnrollmentView:
        async with self._lock:
            refused(self._view.status, EnrollmentAction.approve)
            account_id = self._view.id
            await workflow.start_child_workflow(
                "MemberAccountWorkflow",
                AccountInput(
                    account_id=account_id,
                    enrollment_id=self._view.id,
                    fields=self._input.fields.model_copy(update=_fields_of(self._view)),
                    form=self._view.form,
                    created_by=self._input.created_by,
                    service_start_date=workflow.now().date(),
                    warning_offsets=self._input.schedule.warning_offsets,
                    approved_by=action.actor,
                ),
                id=f"account-{account_id}",
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"{self._view.organization_name} · {self._view.member_type.value}",
            )
            self._set(status=S.approved, account_id=account_id)
            await self._record("approved", action.actor, action.audit_note)
            recipients = [self._view.corporate_contact_email]
            if self._view.form and self._view.form.technical_contact_email not in recipients:
                recipients.append(self._view.form.technical_contact_email)
            await self._email(EmailKind.approved, recipients, "welcome")
            return self._view

    @approve.validator
    def _validate_approve(self, action: ReviewAction) -> None:
        refused(self._view.status, EnrollmentAction.approve)

    @workflow.update(name="reject")
    async def reject(self, action: ReviewAction) -> EnrollmentView:
        async with self._lock:
            self._check_reject(action)
            self._set(status=S.rejected)
            await self._record("rejected", action.actor, f"{action.reason} — {action.audit_note}")
            await self._email(
                EmailKind.rejected, [self._view.corporate_contact_email], "rejected", reason=action.reason
            )
            return self._view

    @reject.validator
    def _validate_reject(self, action: ReviewAction) -> None:
        self._check_reject(action)

    def _check_reject(self, action: ReviewAction) -> None:
        refused(self._view.status, EnrollmentAction.reject)
        if not (action.reason or "").strip():
            raise ApplicationError("A rejection needs a reason.", type="TransitionRefused", non_retryable=True)

    # --- the wait for the form -----------------------------------------------------------------------

    async def _wait_for_form(self) -> None:
        """Sleep until the next reminder or the deadline, unless a handler changes things first."""
        epoch = self._epoch
        at, kind = self._next_deadline()
        delay = (at - workflow.now()).total_seconds()
        if delay > 0:
            label = "next reminder" if kind == "reminder" else "form deadline"
            if await self._changed_within(timedelta(seconds=delay), label):
                return
        async with self._lock:
            if self._epoch != epoch or self._view.status != S.new:
                return
            if kind == "reminder":
                self._set(reminders_sent=self._view.reminders_sent + 1)
                await self._email(
                    EmailKind.reminder,
                    [self._view.corporate_contact_email],
                    f"remind-{self._view.link_version}-{self._view.reminders_sent}",
                    link_version=self._view.link_version,
                )
                await self._record("reminded", SYSTEM, f"reminder {self._view.reminders_sent}")
            else:
                await self._close(S.expired, "expired", SYSTEM, "the form was not completed before the deadline")
                if self._input.created_by.email:
                    await self._email(
                        EmailKind.expired, [self._input.created_by.email], f"expired-{self._view.link_version}"
                    )

    def _next_deadline(self) -> tuple[datetime, str]:
        expires_at = self._view.expires_at or self._round_started_at
        if self._invited_version == self._view.link_version:
            offsets = self._input.schedule.reminder_offsets
            for offset in offsets[self._view.reminders_sent :]:
                at = self._round_started_at + timedelta(seconds=offset)
                if at < expires_at:
                    return at, "reminder"
        return expires_at, "expire"

    async def _changed_within(self, timeout: timedelta | None, label: str | None) -> bool:
        return await changed_within(lambda: self._epoch, timeout, label)

    # --- steps ---------------------------------------------------------------------------------------

    async def _invite(
        self, *, rotate: bool, actor: Actor = SYSTEM, event: str = "invited", note: str | None = None
    ) -> None:
        """A new link version, a fresh deadline and reminder round, and the invitation email."""
        now = workflow.now()
        version = self._view.link_version + 1 if rotate else self._view.link_version
        self._round_started_at = now
        self._set(
            link_version=version,
            reminders_sent=0,
            expires_at=now + timedelta(seconds=self._input.schedule.ttl),
        )
        result = await self._activity(
            "send_invitation",
            self._email_request(EmailKind.invitation, [self._view.corporate_contact_email], link_version=version),
            f"invite-{version}",
            timeout=EMAIL_TIMEOUT,
            result_type=EmailResult,
        )
        self._invited_version = version
        self._set(invitation_sent_at=result.sent_at)
        await self._record(event, actor, note)

    async def _close(self, status: EnrollmentStatus, event: str, actor: Actor, note: str | None) -> None:
        self._set(status=status)
        await self._activity(
            "close_form_links",
            LinkRequest(enrollment_id=self._view.id, link_version=self._view.link_version),
            f"close-links-{event}-{self._events}",
        )
        await self._record(event, actor, note)

    async def _email(
        self,
        kind: EmailKind,
        to: list[str],
        activity_id: str,
        *,
        view: EnrollmentView | None = None,
        link_version: int | None = None,
        reason: str | None = None,
    ) -> None:
        request = self._email_request(kind, to, view=view, link_version=link_version, reason=reason)
        await self._activity("send_email", request, f"email-{activity_id}", timeout=EMAIL_TIMEOUT)

    def _email_request(
        self,
        kind: EmailKind,
        to: list[str],
        *,
        view: EnrollmentView | None = None,
        link_version: int | None = None,
        reason: str | None = None,
    ) -> EmailRequest:
        enrollment = (view or self._view).model_copy(update={"timeline": []})
        return EmailRequest(kind=kind, enrollment=enrollment, to=to, link_version=link_version, reason=reason)

    async def _record(
        self, event: str, actor: Actor, note: str | None, *, activity: str = "record", release_claim: bool = False
    ) -> None:
        """Add `event` to the timeline and bring the store's row up to the workflow's view."""
        self._events += 1
        entry = TimelineEvent(at=workflow.now(), event=event, actor=actor.label, note=note, source=actor.source)
        self._view = self._view.model_copy(update={"timeline": [*self._view.timeline, entry]})
        record = RecordEnrollment(
            view=self._view.model_copy(update={"timeline": []}),
            event_key=f"{workflow.info().workflow_id}/event-{self._events}",
            event=entry,
            release_claim=release_claim,
        )
        await self._activity(activity, record, f"{activity}-{self._events}")
        self._epoch += 1
        self._upsert_attributes()

    async def _activity(
        self,
        name: str,
        arg: object,
        activity_id: str,
        *,
        timeout: timedelta = RECORD_TIMEOUT,
        result_type: type | None = None,
    ) -> Any:
        return await workflow.execute_activity(
            name,
            arg,
            activity_id=activity_id,
            start_to_close_timeout=timeout,
            retry_policy=RETRY,
            result_type=result_type,
        )

    def _set(self, **changes: object) -> None:
        self._view = self._view.model_copy(update=changes)

    def _upsert_attributes(self) -> None:
        view = self._view
        updates: list[SearchAttributeUpdate[Any]] = [
            ENROLLMENT_STATUS.value_set(view.status.value),
            MEMBER_TYPE.value_set(view.member_type.value),
            REMINDER_COUNT.value_set(view.reminders_sent),
        ]
        if view.expires_at is not None and view.status == S.new:
            updates.append(FORM_DUE_AT.value_set(view.expires_at.astimezone(UTC)))
        else:
            updates.append(FORM_DUE_AT.value_unset())
        workflow.upsert_search_attributes(updates)
        details = f"**{view.status.value}** · reminders sent: {view.reminders_sent}"
        if view.status == S.new and view.expires_at is not None:
            at, kind = self._next_deadline()
            if kind == "reminder":
                details += f" · next reminder {at:%Y-%m-%d %H:%M} UTC"
            details += f" · form due {view.expires_at:%Y-%m-%d %H:%M} UTC"
        if view.timeline:
            rows = "\n".join(
                f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.event} | {e.actor} | {e.note or ''} |" for e in view.timeline
            )
            details += f"\n\n| at (UTC) | event | actor | note |\n|---|---|---|---|\n{rows}"
        workflow.set_current_details(details)


def _fields_of(view: EnrollmentView) -> dict[str, object]:
    return {
        name: getattr(view, name)
        for name in (
            "service_end_date",
            "member_type",
            "display_users_purchased",
            "users_purchased",
            "organization_name",
            "corporate_contact_email",
            "reseller_account_id",
        )
    }
