"""EnrollmentWorkflow: one member-account enrollment, from the CSM's create to approval or another end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.enrollment import EnrollmentActivities
    from domain.models import (
        CONTACT,
        LINK_EMAILS,
        SYSTEM,
        AccountFieldsBase,
        AccountInput,
        Actor,
        CsmAction,
        EditEnrollment,
        EmailKind,
        EmailRequest,
        EmailResult,
        EnrollmentInput,
        EnrollmentState,
        EnrollmentStatus,
        EnrollmentView,
        LinkRequest,
        MailProblem,
        QueuedEmail,
        RecordEnrollment,
        ReviewAction,
        SubmitForm,
        TimelineEvent,
        ValidateEnrollment,
    )
    from domain.status import OPEN_STATUSES, EnrollmentAction, enrollment_refusal
    from workflows import metrics
    from workflows.account import MemberAccountWorkflow
    from workflows.common import (
        BEST_EFFORT_MAIL,
        CARRIED_HANDOVER,
        CHECKED_WITH_FIRST_WRITE,
        EMAIL_TIMEOUT,
        HANDOVER_MAIL_WAIT,
        LEAN_STORE_WRITES,
        RECORD_TIMEOUT,
        RETRY,
        STALE_BOUNCES_IGNORED,
        applied_once,
        changed_within,
        checked_once,
        refuse,
        refuse_while_handing_over,
    )
    from workflows.details import enrollment_details
    from workflows.mailer import Mailer, refusals_of
    from workflows.names import (
        ENROLLMENT_STATUS,
        FORM_DUE_AT,
        MEMBER_TYPE,
        REMINDER_COUNT,
        account_workflow_id,
    )

RESENDS_PER_DAY = 5
EXPIRED_REVIVAL_WINDOW = timedelta(days=30)
CREATE_LEG: frozenset[Callable[..., Awaitable[Any]]] = frozenset(
    {EnrollmentActivities.validate, EnrollmentActivities.persist}
)
"""The create's checks and first write: local activities in runs with LEAN_STORE_WRITES, so the API's create
answers after one workflow task instead of three."""
Arg = TypeVar("Arg")
Result = TypeVar("Result")


def invitation_activity_id(link_version: int) -> str:
    return f"invite-{link_version}"


def reminder_email_id(link_version: int, reminder: int) -> str:
    """A reminder's email id (its activity id is `email-` and this)."""
    return f"remind-{link_version}-{reminder}"


def link_version_of(activity_id: str) -> int | None:
    """The link version an invitation's or reminder's activity id names (the outbox keys each email by its
    workflow id and activity id); None for any other email."""
    for prefix in ("invite-", "email-remind-"):  # invitation_activity_id, and `email-` + reminder_email_id
        if activity_id.startswith(prefix):
            version = activity_id.removeprefix(prefix).split("-", 1)[0]
            return int(version) if version.isdigit() else None
    return None


@workflow.defn
class EnrollmentWorkflow:
    """Validate → persist (New) → invite the contact → wait for the form with reminders and expiry →
    review → approve (starts MemberAccountWorkflow) or reject.

    Query `status` → EnrollmentView. Signal `opened`. Updates (each refused by the status machine when not
    allowed now): `created` (waits until persisted; the API starts the run with it), `submit_form`, `resend`,
    `edit`, `cancel`, `start_review`, `approve`, `reject`, and `mail_event` (a provider's late bounce).

    Email is best-effort for the process: handlers and the timer loop only queue emails, and a mailer task sends
    them outside the lock, so a slow or refusing relay never holds up a CSM, a reviewer or the contact, and no
    email failure ends the run. A bounce of the contact's address marks the enrollment Bounced and tells the
    CSM; any other permanent failure is an `email_failed` event. The run continues as new past
    `history_limit` events, so its history stays bounded.
    """

    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        self._input = input
        # Each patch is decided once per run: runs started before it replay their old shape (the section "Runs
        # started before a patch" at the end gathers what only they do).
        self._best_effort_mail = workflow.patched(BEST_EFFORT_MAIL)
        self._lean_writes = self._best_effort_mail and workflow.patched(LEAN_STORE_WRITES)
        self._carried_handover = self._lean_writes and workflow.patched(CARRIED_HANDOVER)
        self._stale_bounces_ignored = self._carried_handover and workflow.patched(STALE_BOUNCES_IGNORED)
        self._checked_with_first_write = self._stale_bounces_ignored and workflow.patched(CHECKED_WITH_FIRST_WRITE)
        self._attributes: tuple[object, ...] | None = None
        now = workflow.now()
        fields = input.fields
        state = input.state
        self._view = (
            state.view
            if state
            else EnrollmentView(
                id=input.enrollment_id,
                status=EnrollmentStatus.new,
                created_at=now,
                created_by=input.created_by.email,
                expires_at=now + timedelta(seconds=input.schedule.ttl),
                **fields.model_dump(),
            )
        )
        # Handlers and the timer loop take turns through this lock, so a reminder can't cross a submit.
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._events = state.events if state else 0
        self._persisted = state is not None
        self._failure: ApplicationError | None = None
        self._invited_version = state.invited_version if state else 0
        self._round_started_at = state.round_started_at if state else now
        self._resends: list[datetime] = list(state.resends) if state else []
        self._opened_versions: set[int] = set(state.opened_versions) if state else set()
        self._closed = False
        self._mailer = Mailer(
            sent=self._mail_sent,
            failed=self._mail_failed,
            stale=self._stale,
            queued=state.mail if state and self._carried_handover else (),
        )
        self._updates: list[str] | None = list(state.updates if state else []) if self._carried_handover else None
        self._draining = False

    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentView:
        if not (self._lean_writes and input.state is None):  # a new lean run: the start set them; persist sets the rest
            self._upsert_attributes()
        mailer = asyncio.create_task(self._mailer.run()) if self._best_effort_mail else None
        if input.state is None:
            try:
                if not self._checked_with_first_write:  # newer runs: `persist` checks the fields first
                    await self._activity(
                        EnrollmentActivities.validate,
                        ValidateEnrollment(enrollment_id=input.enrollment_id, fields=input.fields),
                        "validate",
                    )
                if self._best_effort_mail:
                    self._start_round()
                await self._record("created", input.created_by, None, persist=True)
                metrics.created(self._view)
            except ActivityError as err:
                cause = err.cause if isinstance(err.cause, ApplicationError) else None
                self._failure = cause or ApplicationError(str(err), type="EnrollmentFailed", non_retryable=True)
                await workflow.wait_condition(workflow.all_handlers_finished)
                raise self._failure from err
            self._persisted = True
            if self._best_effort_mail:
                self._queue_invitation()
            else:
                async with self._lock:
                    await self._invite_before_best_effort_mail(rotate=True)
        while True:
            if self._best_effort_mail and self._view.status in OPEN_STATUSES and self._history_full():
                await self._hand_over(input)
            status = self._view.status
            if status == EnrollmentStatus.new:
                await self._wait_for_form()
            elif status == EnrollmentStatus.expired:
                if not await self._changed_within(self._revival_left(), "revival window closes"):
                    async with self._lock:
                        if self._view.status == EnrollmentStatus.expired:
                            self._closed = True
                            await self._record("closed", SYSTEM, "expired too long ago to resend", release_claim=True)
                            break
            elif status in (EnrollmentStatus.pending_review, EnrollmentStatus.in_review):
                await self._changed_within(None, None)
            else:
                break
        # Let an update that is still working (approve, reject, cancel) and the emails it queued finish first.
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mailer.idle())
        if mailer is not None:
            mailer.cancel()
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
            if self._view.status == EnrollmentStatus.new and link.link_version == self._view.link_version:
                await self._record("opened", CONTACT, None)

    # --- updates -----------------------------------------------------------------------------------

    @workflow.update(name="created")
    async def created(self) -> EnrollmentView:
        await workflow.wait_condition(lambda: self._persisted or self._failure is not None)
        if self._failure is not None:
            raise self._failure
        return self._view

    @workflow.update(name="submit_form")
    @applied_once
    async def submit_form(self, submission: SubmitForm) -> EnrollmentView:
        async with self._lock:
            self._check_submission(submission)
            self._set(status=EnrollmentStatus.pending_review, form=submission.form)
            await self._record("submitted", CONTACT.model_copy(update={"source": submission.source}), None)
            await self._activity(
                EnrollmentActivities.close_form_links,
                LinkRequest(enrollment_id=self._view.id, link_version=self._view.link_version),
                f"close-links-{self._view.link_version}",
            )
            self._mailer.drop_stale()
            await self._email(EmailKind.submitted, [self._view.corporate_contact_email], f"submitted-{self._events}")
            if self._input.created_by.email:
                await self._email(
                    EmailKind.submitted_csm, [self._input.created_by.email], f"submitted-csm-{self._events}"
                )
            return self._view

    @submit_form.validator
    @checked_once
    def _validate_submit(self, submission: SubmitForm) -> None:
        self._check_submission(submission)

    def _check_submission(self, submission: SubmitForm) -> None:
        self._require(EnrollmentAction.submit_form)
        # The mailer records an invitation as sent a moment after the relay took it; the link is live in the
        # store from before the send, so the link version alone decides (older runs also waited for the record).
        invited = self._best_effort_mail or self._invited_version == self._view.link_version
        if submission.link_version != self._view.link_version or not invited:
            raise ApplicationError(
                "This enrollment link has been replaced by a newer one.", type="LinkDead", non_retryable=True
            )

    @workflow.update(name="resend")
    @applied_once
    async def resend(self, action: CsmAction) -> EnrollmentView:
        async with self._lock:
            self._check_resend()
            self._resends.append(workflow.now())
            self._set(status=EnrollmentStatus.new)
            if not self._best_effort_mail:
                await self._invite_before_best_effort_mail(
                    rotate=True, actor=action.actor, event="resent", note=action.audit_note
                )
                return self._view
            self._start_round()
            await self._record("resent", action.actor, action.audit_note)
            await self._close_links("resent")
            self._mailer.drop_stale()
            self._queue_invitation()
            return self._view

    @resend.validator
    @checked_once
    def _validate_resend(self, action: CsmAction) -> None:
        self._check_resend()

    def _check_resend(self) -> None:
        if self._closed and self._best_effort_mail:
            refuse("This enrollment expired more than 30 days ago and is closed; create a new one instead.")
        self._require(EnrollmentAction.resend)
        since = workflow.now() - timedelta(days=1)
        if sum(1 for at in self._resends if at > since) >= RESENDS_PER_DAY:
            refuse(f"The invitation was already resent {RESENDS_PER_DAY} times in the last 24 hours; try again later.")

    @workflow.update(name="edit")
    @applied_once
    async def edit(self, change: EditEnrollment) -> EnrollmentView:
        async with self._lock:
            self._require(EnrollmentAction.edit)
            if not self._best_effort_mail:
                return await self._edit_before_best_effort_mail(change)
            return await self._edit(change)

    async def _edit(self, change: EditEnrollment) -> EnrollmentView:
        """A changed contact of a New enrollment rotates the link first: the old link is dead before anything
        is mailed, whatever becomes of the courtesy email to the old address."""
        before = self._view
        relink = (
            change.fields.corporate_contact_email != before.corporate_contact_email
            and before.status == EnrollmentStatus.new
        )
        self._set(**change.fields.model_dump())
        if relink:
            if change.send_invitation:
                self._start_round()
            else:
                self._set(link_version=before.link_version + 1, bounced=False, bounce_reason=None)
        try:
            await self._record("edited", change.actor, change.audit_note)
        except ActivityError as err:
            self._view = before
            raise (err.cause if isinstance(err.cause, ApplicationError) else err) from None
        if relink:
            await self._close_links(f"edited-{self._events}")
            self._mailer.drop_stale()
            if not before.bounced:  # an address that bounced has nobody to tell
                await self._tell_old_contact(before)
            if change.send_invitation:
                self._queue_invitation()
            else:
                await self._record("link rotated", SYSTEM, "not sent: the CSM will resend when ready")
        self._epoch += 1
        return self._view

    async def _tell_old_contact(self, before: EnrollmentView) -> None:
        """The courtesy email to the address the edit replaced."""
        await self._email(
            EmailKind.contact_changed, [before.corporate_contact_email], f"contact-changed-{self._events}", view=before
        )

    @edit.validator
    @checked_once
    def _validate_edit(self, change: EditEnrollment) -> None:
        self._require(EnrollmentAction.edit)

    @workflow.update(name="cancel")
    @applied_once
    async def cancel(self, action: CsmAction) -> EnrollmentView:
        async with self._lock:
            self._require(EnrollmentAction.cancel)
            await self._close(EnrollmentStatus.cancelled, "cancelled", action.actor, action.audit_note)
            return self._view

    @cancel.validator
    @checked_once
    def _validate_cancel(self, action: CsmAction) -> None:
        self._require(EnrollmentAction.cancel)

    @workflow.update(name="start_review")
    @applied_once
    async def start_review(self, action: ReviewAction) -> EnrollmentView:
        async with self._lock:
            self._require(EnrollmentAction.start_review)
            self._set(status=EnrollmentStatus.in_review)
            await self._record("review started", action.actor, action.audit_note)
            return self._view

    @start_review.validator
    @checked_once
    def _validate_start_review(self, action: ReviewAction) -> None:
        self._require(EnrollmentAction.start_review)

    @workflow.update(name="approve")
    @applied_once
    async def approve(self, action: ReviewAction) -> EnrollmentView:
        async with self._lock:
            self._require(EnrollmentAction.approve)
            account_id = self._view.id
            await workflow.start_child_workflow(
                MemberAccountWorkflow.run,
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
                id=account_workflow_id(account_id),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"{self._view.organization_name} · {self._view.member_type.value}",
            )
            self._set(status=EnrollmentStatus.approved, account_id=account_id)
            await self._record("approved", action.actor, action.audit_note)
            recipients = [self._view.corporate_contact_email]
            if self._view.form and self._view.form.technical_contact_email not in recipients:
                recipients.append(self._view.form.technical_contact_email)
            await self._email(EmailKind.approved, recipients, "welcome")
            return self._view

    @approve.validator
    @checked_once
    def _validate_approve(self, action: ReviewAction) -> None:
        self._require(EnrollmentAction.approve)

    @workflow.update(name="reject")
    @applied_once
    async def reject(self, action: ReviewAction) -> EnrollmentView:
        async with self._lock:
            self._check_reject(action)
            self._set(status=EnrollmentStatus.rejected)
            await self._record("rejected", action.actor, f"{action.reason} — {action.audit_note}")
            await self._email(
                EmailKind.rejected, [self._view.corporate_contact_email], "rejected", reason=action.reason
            )
            return self._view

    @reject.validator
    @checked_once
    def _validate_reject(self, action: ReviewAction) -> None:
        self._check_reject(action)

    def _check_reject(self, action: ReviewAction) -> None:
        self._require(EnrollmentAction.reject)
        if not (action.reason or "").strip():
            refuse("A rejection needs a reason.")

    @workflow.update(name="mail_event")
    @applied_once
    async def mail_event(self, problem: MailProblem) -> EnrollmentView:
        """A provider's late report on one of this enrollment's emails (`POST /api/mail-events`)."""
        async with self._lock:
            await self._mail_problem(problem)
            return self._view

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
            if self._epoch != epoch or self._view.status != EnrollmentStatus.new:
                return
            if kind == "reminder":
                self._set(reminders_sent=self._view.reminders_sent + 1)
                metrics.reminded()
                await self._email(
                    EmailKind.reminder,
                    [self._view.corporate_contact_email],
                    reminder_email_id(self._view.link_version, self._view.reminders_sent),
                    link_version=self._view.link_version,
                    note=f"reminder {self._view.reminders_sent}",
                )
                if not self._best_effort_mail:
                    await self._record("reminded", SYSTEM, f"reminder {self._view.reminders_sent}")
            else:
                await self._close(
                    EnrollmentStatus.expired, "expired", SYSTEM, "the form was not completed before the deadline"
                )
                if self._input.created_by.email:
                    await self._email(
                        EmailKind.expired, [self._input.created_by.email], f"expired-{self._view.link_version}"
                    )

    def _next_deadline(self) -> tuple[datetime, str]:
        expires_at = self._view.expires_at or self._round_started_at
        # No reminders to an address that bounced: the CSM fixes it, and the new round reminds again.
        if self._invited_version == self._view.link_version and not self._view.bounced:
            offsets = self._input.schedule.reminder_offsets
            for offset in offsets[self._view.reminders_sent :]:
                at = self._round_started_at + timedelta(seconds=offset)
                if at < expires_at:
                    return at, "reminder"
        return expires_at, "expire"

    def _revival_left(self) -> timedelta:
        """How long an Expired enrollment can still be resent (30 days from its deadline)."""
        if not self._best_effort_mail or self._view.expires_at is None:
            return EXPIRED_REVIVAL_WINDOW
        return max(self._view.expires_at + EXPIRED_REVIVAL_WINDOW - workflow.now(), timedelta(seconds=1))

    async def _changed_within(self, timeout: timedelta | None, label: str | None) -> bool:
        return await changed_within(lambda: self._epoch, timeout, label)

    # --- continue-as-new ---------------------------------------------------------------------------------

    async def _hand_over(self, input: EnrollmentInput) -> NoReturn:
        """Carry the enrollment on in a fresh run. New updates are turned away meanwhile (the ways in retry them
        on the fresh run), or a steady stream of them would keep this run growing; the handlers running finish
        here first. The emails not yet sent go with it: an email on its way gets a few seconds to finish, and with the
        relay down it is handed over too (its activity id keeps the send once), so an outage holds up neither
        the handover nor the reminders, the expiry and the updates of the fresh run."""
        if not self._carried_handover:
            await self._hand_over_after_mail(input)
        self._draining = True
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mailer.settled())
        if not self._mailer.idle():
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._mailer.idle, timeout=HANDOVER_MAIL_WAIT, timeout_summary="emails on their way"
                )
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mailer.settled())
        workflow.continue_as_new(input.model_copy(update={"state": self._state()}))

    def _history_full(self) -> bool:
        info = workflow.info()
        return info.get_current_history_length() >= self._input.history_limit or info.is_continue_as_new_suggested()

    def _state(self) -> EnrollmentState:
        return EnrollmentState(
            view=self._view.model_copy(update={"timeline": self._view.timeline[-20:]}),
            events=self._events,
            invited_version=self._invited_version,
            round_started_at=self._round_started_at,
            resends=self._resends[-RESENDS_PER_DAY:],
            opened_versions=sorted(v for v in self._opened_versions if v >= self._view.link_version),
            mail=self._mailer.pending() if self._carried_handover else [],
            updates=self._updates or [],
        )

    # --- the mailer's outcomes --------------------------------------------------------------------------

    async def _mail_sent(self, mail: QueuedEmail, result: EmailResult) -> None:
        if result.dropped:
            return
        async with self._lock:
            request = mail.request
            current = request.link_version == self._view.link_version and self._view.status == EnrollmentStatus.new
            if request.kind == EmailKind.invitation and current:
                self._invited_version = self._view.link_version
                self._set(invitation_sent_at=result.sent_at)
                await self._record("invited", SYSTEM, None, local=True)
            elif request.kind == EmailKind.reminder and current:
                await self._record("reminded", SYSTEM, mail.note, local=True)
            for problem in refusals_of(mail, result):
                await self._mail_problem(problem)

    async def _mail_failed(self, problem: MailProblem) -> None:
        async with self._lock:
            await self._mail_problem(problem)

    async def _mail_problem(self, problem: MailProblem) -> None:
        """Record an email that failed for good; a bounce of the contact's current invitation or reminder marks
        the enrollment Bounced (once per address) and tells the CSM. A bounce of an older link's email is only
        recorded: the current invitation may well arrive."""
        about_contact = (
            problem.kind in LINK_EMAILS and problem.recipient.lower() == self._view.corporate_contact_email.lower()
        )
        older_link = (
            problem.kind in LINK_EMAILS
            and problem.link_version is not None
            and problem.link_version != self._view.link_version
        )
        if problem.event == "complained":
            await self._record("complained", SYSTEM, f"{problem.kind.value}: {problem.reason}")
        elif problem.bounced and older_link and self._stale_bounces_ignored:
            metrics.bounced(problem.kind.value)
            note = f"{problem.kind.value} of link version {problem.link_version}, since replaced: {problem.reason}"
            await self._record("old link bounced", SYSTEM, note)
        elif problem.bounced and about_contact and self._view.status == EnrollmentStatus.new:
            if self._view.bounced:
                return
            metrics.bounced(problem.kind.value)
            self._set(bounced=True, bounce_reason=problem.reason)
            await self._record("invitation_bounced", SYSTEM, problem.reason)
            if self._input.created_by.email:
                await self._email(EmailKind.bounced_csm, [self._input.created_by.email], f"bounced-{self._events}")
        else:
            if problem.bounced:
                metrics.bounced(problem.kind.value)
            await self._record("email_failed", SYSTEM, f"{problem.kind.value}: {problem.reason}")

    def _stale(self, mail: QueuedEmail) -> bool:
        """An invitation or reminder whose link is no longer the live one is never sent."""
        request = mail.request
        return request.kind in LINK_EMAILS and (
            request.link_version != self._view.link_version or self._view.status != EnrollmentStatus.new
        )

    # --- steps ---------------------------------------------------------------------------------------

    def _start_round(self) -> None:
        """A new link version, a fresh deadline and reminder round; the Bounced marker goes with the old one."""
        now = workflow.now()
        self._round_started_at = now
        self._set(
            link_version=self._view.link_version + 1,
            reminders_sent=0,
            expires_at=now + timedelta(seconds=self._input.schedule.ttl),
            bounced=False,
            bounce_reason=None,
        )

    def _queue_invitation(self) -> None:
        version = self._view.link_version
        request = self._email_request(EmailKind.invitation, [self._view.corporate_contact_email], link_version=version)
        self._mailer.queue(
            QueuedEmail(request=request, sender="send_invitation", activity_id=invitation_activity_id(version))
        )

    async def _close(self, status: EnrollmentStatus, event: str, actor: Actor, note: str | None) -> None:
        self._set(status=status)
        if not self._best_effort_mail:
            return await self._close_before_best_effort_mail(event, actor, note)
        # The status reaches the store before the links die, so an invitation being sent cannot open one again.
        await self._record(event, actor, note)
        await self._close_links(f"{event}-{self._events}")
        self._mailer.drop_stale()

    async def _close_links(self, label: str) -> None:
        await self._activity(
            EnrollmentActivities.close_form_links,
            LinkRequest(enrollment_id=self._view.id, link_version=self._view.link_version),
            f"close-links-{label}",
        )

    async def _email(
        self,
        kind: EmailKind,
        to: list[str],
        activity_id: str,
        *,
        view: EnrollmentView | None = None,
        link_version: int | None = None,
        reason: str | None = None,
        note: str | None = None,
    ) -> None:
        """Queue the email for the mailer (older runs: send it now, and wait)."""
        request = self._email_request(kind, to, view=view, link_version=link_version, reason=reason)
        if not self._best_effort_mail:
            return await self._send_before_best_effort_mail(request, f"email-{activity_id}")
        self._mailer.queue(QueuedEmail(request=request, activity_id=f"email-{activity_id}", note=note))

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
        return EmailRequest(
            kind=kind,
            enrollment=enrollment,
            to=to,
            link_version=link_version,
            reason=reason,
            current_link_only=self._best_effort_mail and kind in LINK_EMAILS,
        )

    async def _record(
        self,
        event: str,
        actor: Actor,
        note: str | None,
        *,
        persist: bool = False,
        release_claim: bool = False,
        local: bool = False,
    ) -> None:
        """Add `event` to the timeline and bring the store's row up to the workflow's view (`persist`: the first
        write, which creates the row and claims the organization name)."""
        self._events += 1
        entry = TimelineEvent(at=workflow.now(), event=event, actor=actor.label, note=note, source=actor.source)
        self._view = self._view.model_copy(update={"timeline": [*self._view.timeline, entry]})
        record = RecordEnrollment(
            view=self._view.model_copy(update={"timeline": []}),
            event_key=f"{workflow.info().workflow_id}/event-{self._events}",
            event=entry,
            release_claim=release_claim,
        )
        if persist:
            await self._activity(EnrollmentActivities.persist, record, f"persist-{self._events}")
        else:
            await self._activity(EnrollmentActivities.record, record, f"record-{self._events}", local=local)
        self._epoch += 1
        self._upsert_attributes()

    async def _activity(
        self,
        activity: Callable[[EnrollmentActivities, Arg], Awaitable[Result]],
        arg: Arg,
        activity_id: str,
        *,
        timeout: timedelta = RECORD_TIMEOUT,
        local: bool = False,
    ) -> Result:
        """Run the activity under its explicit id; its result decodes to the method's return type. The store's
        create leg runs as local activities (in the workflow task, no round trip through the task queue).

        Only the create leg: the time-skipping test server loses an update that arrives while a local activity
        holds the workflow task open, and email, which can take long, is never local."""
        if self._lean_writes and (local or activity in CREATE_LEG):
            return await workflow.execute_local_activity_method(
                activity,
                arg,
                activity_id=activity_id,
                start_to_close_timeout=timeout,
                retry_policy=RETRY,
            )
        return await workflow.execute_activity_method(
            activity,
            arg,
            activity_id=activity_id,
            start_to_close_timeout=timeout,
            retry_policy=RETRY,
        )

    def _require(self, action: EnrollmentAction) -> None:
        """Refuse `action` with the status machine's sentence when the status does not allow it now (a 409), or,
        while the run hands over to a fresh one, with `ContinuingAsNew` (the ways in retry it there)."""
        refuse_while_handing_over(self._draining, "enrollment")
        refuse(enrollment_refusal(self._view.status, action))

    def _set(self, **changes: object) -> None:
        before = self._view.status
        self._view = self._view.model_copy(update=changes)
        if self._view.status != before:
            metrics.transition(before, self._view, workflow.now())

    def _upsert_attributes(self) -> None:
        view = self._view
        updates: list[SearchAttributeUpdate[Any]] = [
            ENROLLMENT_STATUS.value_set(view.status.value),
            MEMBER_TYPE.value_set(view.member_type.value),
            REMINDER_COUNT.value_set(view.reminders_sent),
        ]
        if view.expires_at is not None and view.status == EnrollmentStatus.new:
            updates.append(FORM_DUE_AT.value_set(view.expires_at.astimezone(UTC)))
        else:
            updates.append(FORM_DUE_AT.value_unset())
        values = (
            view.status,
            view.member_type,
            view.reminders_sent,
            view.status == EnrollmentStatus.new and view.expires_at,
        )
        if not self._lean_writes or values != self._attributes:
            workflow.upsert_search_attributes(updates)
            self._attributes = values
        deadline = self._next_deadline() if view.status == EnrollmentStatus.new and view.expires_at else None
        workflow.set_current_details(enrollment_details(view, deadline))

    # === Runs started before a patch ======================================================================
    # What only runs started before BEST_EFFORT_MAIL or CARRIED_HANDOVER do, gathered so that retiring a patch
    # (docs/operations.md, "Changing a workflow") is deleting its methods here and the branches that call them.
    # The other flags' differences are single conditions: `_lean_writes` in `run`, `_activity` and
    # `_upsert_attributes`; `_best_effort_mail` in `_check_submission`, `_check_resend`, `_wait_for_form`,
    # `_revival_left` and `_email_request`; `_stale_bounces_ignored` in `_mail_problem`; `_checked_with_first_write`
    # in `run` (the `validate` before the first write).

    # --- before BEST_EFFORT_MAIL: every email sent before the process went on ----------------------------

    async def _edit_before_best_effort_mail(self, change: EditEnrollment) -> EnrollmentView:
        """The edit: the invitation to a changed contact sent before going on."""
        before = self._view
        contact_changed = change.fields.corporate_contact_email != before.corporate_contact_email
        self._set(**change.fields.model_dump())
        try:
            await self._record("edited", change.actor, change.audit_note)
        except ActivityError as err:
            self._view = before
            raise (err.cause if isinstance(err.cause, ApplicationError) else err) from None
        if contact_changed and before.status == EnrollmentStatus.new:
            await self._tell_old_contact(before)
            if change.send_invitation:
                await self._invite_before_best_effort_mail(rotate=True)
            else:
                self._set(link_version=before.link_version + 1)
                await self._activity(
                    EnrollmentActivities.close_form_links,
                    LinkRequest(enrollment_id=before.id, link_version=before.link_version),
                    f"close-links-{before.link_version}",
                )
                await self._record("link rotated", SYSTEM, "not sent: the CSM will resend when ready")
        self._epoch += 1
        return self._view

    async def _invite_before_best_effort_mail(
        self, *, rotate: bool, actor: Actor = SYSTEM, event: str = "invited", note: str | None = None
    ) -> None:
        """A new round, and the invitation sent before going on."""
        now = workflow.now()
        version = self._view.link_version + 1 if rotate else self._view.link_version
        self._round_started_at = now
        self._set(
            link_version=version,
            reminders_sent=0,
            expires_at=now + timedelta(seconds=self._input.schedule.ttl),
        )
        result = await self._activity(
            EnrollmentActivities.send_invitation,
            self._email_request(EmailKind.invitation, [self._view.corporate_contact_email], link_version=version),
            invitation_activity_id(version),
            timeout=EMAIL_TIMEOUT,
        )
        self._invited_version = version
        self._set(invitation_sent_at=result.sent_at)
        await self._record(event, actor, note)

    async def _close_before_best_effort_mail(self, event: str, actor: Actor, note: str | None) -> None:
        """The links died before the status reached the store."""
        await self._close_links(f"{event}-{self._events}")
        await self._record(event, actor, note)

    async def _send_before_best_effort_mail(self, request: EmailRequest, activity_id: str) -> None:
        """Send the email now, and wait for it."""
        await self._activity(EnrollmentActivities.send_email, request, activity_id, timeout=EMAIL_TIMEOUT)

    # --- before CARRIED_HANDOVER: the handover waits for every email -----------------------------------------

    async def _hand_over_after_mail(self, input: EnrollmentInput) -> NoReturn:
        """Wait for every email, however long the relay is down, then hand over (new updates are turned away
        meanwhile with LEAN_STORE_WRITES)."""
        self._draining = self._lean_writes
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mailer.idle())
        workflow.continue_as_new(input.model_copy(update={"state": self._state()}))


def _fields_of(view: EnrollmentView) -> dict[str, object]:
    """The seven account fields of the enrollment as it stands (edits included)."""
    return {name: getattr(view, name) for name in AccountFieldsBase.model_fields}
