"""AdministratorWorkflow: one member administrator's invitation, from the first email to activation or expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.administrators import INVITATION_EMAILS, AdministratorActivities
    from domain.models import (
        SYSTEM,
        Actor,
        AdministratorInput,
        AdministratorStatus,
        AdministratorView,
        EmailKind,
        InvitationAction,
        InvitationEvent,
        InvitationMail,
        InvitationOutcome,
        InvitationRound,
        MailProblem,
    )
    from workflows.common import EMAIL_TIMEOUT, RECORD_TIMEOUT, RETRY, changed_within, refuse
    from workflows.details import administrator_details

RESEND_WINDOW = timedelta(days=30)
"""How long after its deadline an Expired invitation's run waits for a resend before it ends (a later resend
starts a new run)."""
INVITATION_CLOSED = "InvitationClosed"
"""The error type of a resend turned away because the run is ending: start a new run instead."""
SETTLED = {
    "activated": AdministratorStatus.active,
    "disabled": AdministratorStatus.disabled,
    "expired": AdministratorStatus.expired,
}
"""The store's outcome of a round → the administrator's status (`invited` changes nothing; `replaced` ends the run:
a newer round than this run's is in the store)."""
REFUSALS = {
    AdministratorStatus.active: (
        "This administrator has already activated their sign-in; there is no invitation to resend."
    ),
    AdministratorStatus.disabled: "This administrator is disabled; enable them before resending the invitation.",
}
Arg = TypeVar("Arg")
Result = TypeVar("Result")


@dataclass
class Mailing:
    """An email waiting for the mailer: the invitation or reminder of a link version, or the bounce notice."""

    kind: EmailKind
    link_version: int
    activity_id: str


@workflow.defn
class AdministratorWorkflow:
    """Invite (link valid `activation_ttl`) → one reminder at `reminder_after` → Expired at the deadline → after
    30 days without a resend, the run ends. Activation (in the store) ends it as Active; disabling as Disabled.

    Query `status` → AdministratorView. Signal `activated` (the API, after the link was used). Updates `resend`
    (Invited or Expired: a new link version, the old link dies, the deadline restarts) and `mail_event` (a
    provider's late bounce). The store is the source of truth: before the reminder, at the deadline and on the
    signal an activity asks it how the round stands.

    Email is best-effort: a mailer task sends outside the lock, and no email failure ends the run. A bounce
    marks the administrator bounced (no reminder goes) and tells whoever invited them. No address and no token
    passes through here: the activities read and derive them by user id.
    """

    @workflow.init
    def __init__(self, input: AdministratorInput) -> None:
        self._input = input
        self._view = AdministratorView(
            user_id=input.user_id,
            account_id=input.account_id,
            status=AdministratorStatus.invited,
            link_version=input.link_version,
            expires_at=workflow.now() + timedelta(seconds=input.activation_ttl),
        )
        self._round_started_at = workflow.now()
        self._lock = asyncio.Lock()
        self._epoch = 0
        self._steps = 0
        self._outbox: list[Mailing] = []
        self._sending = False
        self._replaced = False
        self._closing = False

    @workflow.run
    async def run(self, input: AdministratorInput) -> AdministratorView:
        mailer = asyncio.create_task(self._mailer())
        async with self._lock:
            first = "administrator invited" if input.link_version == 1 else "administrator invitation resent"
            await self._open_round(input.link_version, first, input.invited_by, None)
        while not self._replaced:
            if self._view.status == AdministratorStatus.invited:
                await self._wait_for_activation()
            elif self._view.status == AdministratorStatus.expired:
                if not await self._changed_within(self._resend_left(), "resend window closes"):
                    async with self._lock:
                        if self._view.status == AdministratorStatus.expired:
                            self._closing = True
                            break
            else:
                break
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and self._mail_idle())
        mailer.cancel()
        return self._view

    @workflow.query(name="status")
    def status(self) -> AdministratorView:
        return self._view

    @workflow.signal(name="activated")
    async def activated(self) -> None:
        """The administrator used the link: the store confirms it, and the run ends as Active."""
        async with self._lock:
            if self._view.status == AdministratorStatus.invited:
                self._settle(await self._outcome())

    @workflow.update(name="resend")
    async def resend(self, action: InvitationAction) -> AdministratorView:
        async with self._lock:
            self._check_resend()
            await self._open_round(
                self._view.link_version + 1, "administrator invitation resent", action.actor, action.note
            )
            return self._view

    @resend.validator
    def _validate_resend(self, action: InvitationAction) -> None:
        self._check_resend()

    def _check_resend(self) -> None:
        if self._closing or self._replaced:
            raise ApplicationError(
                "This invitation's run has ended; a resend starts a new one.",
                type=INVITATION_CLOSED,
                non_retryable=True,
            )
        refuse(REFUSALS.get(self._view.status))

    @workflow.update(name="mail_event")
    async def mail_event(self, problem: MailProblem) -> AdministratorView:
        """A provider's late report on one of this administrator's emails (`POST /api/mail-events`); the
        recipient is left out of it (it is this administrator)."""
        async with self._lock:
            if problem.bounced and problem.kind in INVITATION_EMAILS:
                await self._bounced(self._view.link_version, problem.reason)
            else:
                await self._record("administrator email failed", SYSTEM, f"{problem.kind.value}: {problem.reason}")
            return self._view

    # --- the wait for activation ----------------------------------------------------------------------

    def _next_deadline(self) -> tuple[datetime, str]:
        """The reminder (once per round, not to a bounced address, only before the deadline), else the deadline."""
        view = self._view
        remind_at = self._round_started_at + timedelta(seconds=self._input.reminder_after)
        if view.reminders_sent == 0 and not view.bounced and remind_at < view.expires_at:
            return remind_at, "reminder"
        return view.expires_at, "expire"

    async def _wait_for_activation(self) -> None:
        epoch = self._epoch
        at, kind = self._next_deadline()
        delay = (at - workflow.now()).total_seconds()
        if delay > 0 and await self._changed_within(
            timedelta(seconds=delay), "reminder" if kind == "reminder" else "link deadline"
        ):
            return
        async with self._lock:
            if self._epoch != epoch or self._view.status != AdministratorStatus.invited:
                return
            version = self._view.link_version
            if kind == "reminder":
                outcome = await self._outcome()
                if outcome.state != "invited":
                    self._settle(outcome)
                    return
                self._set(reminders_sent=self._view.reminders_sent + 1)
                self._outbox.append(Mailing(EmailKind.administrator_reminder, version, f"remind-{version}"))
            else:
                outcome = await self._activity(
                    AdministratorActivities.expire_invitation, self._round(), f"expire-{version}"
                )
                self._settle(outcome)

    def _resend_left(self) -> timedelta:
        return max(self._view.expires_at + RESEND_WINDOW - workflow.now(), timedelta(seconds=1))

    async def _changed_within(self, timeout: timedelta, label: str) -> bool:
        return await changed_within(lambda: self._epoch, timeout, label)

    # --- the mailer ----------------------------------------------------------------------------------

    async def _mailer(self) -> None:
        """Send the queued emails one by one, outside the lock; relay trouble retries inside the activity."""
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            mailing = self._outbox.pop(0)
            if self._stale(mailing):
                continue
            self._sending = True
            try:
                await self._send(mailing)
            finally:
                self._sending = False

    async def _send(self, mailing: Mailing) -> None:
        round = self._round(mailing.link_version)
        try:
            if mailing.kind in INVITATION_EMAILS:
                result = await self._activity(
                    AdministratorActivities.send_administrator_invitation,
                    InvitationMail(kind=mailing.kind, round=round),
                    mailing.activity_id,
                    timeout=EMAIL_TIMEOUT,
                )
            else:
                result = await self._activity(
                    AdministratorActivities.notify_bounced, round, mailing.activity_id, timeout=EMAIL_TIMEOUT
                )
        except ActivityError as err:
            async with self._lock:
                await self._failed(mailing, err)
            return
        if result.dropped or mailing.kind not in INVITATION_EMAILS:
            return
        async with self._lock:
            if not self._stale(mailing):
                sent = "invitation sent" if mailing.kind == EmailKind.administrator_invitation else "reminded"
                await self._record(f"administrator {sent}", SYSTEM, None)

    async def _failed(self, mailing: Mailing, err: ActivityError) -> None:
        cause = err.cause
        reason = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        if isinstance(cause, ApplicationError) and cause.type == "SmtpRecipientRefused":
            reason = str(cause.details[1]) if len(cause.details) > 1 else reason
            if mailing.kind in INVITATION_EMAILS:
                await self._bounced(mailing.link_version, reason)
                return
        await self._record("administrator email failed", SYSTEM, f"{mailing.kind.value}: {reason}")

    async def _bounced(self, version: int, reason: str) -> None:
        """Once per round: marked on the user and the timeline, no reminder, and whoever invited is told."""
        if version != self._view.link_version or self._view.bounced:
            return
        self._set(bounced=True)
        await self._record("administrator invitation bounced", SYSTEM, reason, bounce=reason)
        self._outbox.append(Mailing(EmailKind.administrator_bounced, version, f"notify-bounced-{version}"))

    def _stale(self, mailing: Mailing) -> bool:
        """An invitation or reminder of a link version that is no longer the live one is never sent."""
        return mailing.kind in INVITATION_EMAILS and (
            mailing.link_version != self._view.link_version or self._view.status != AdministratorStatus.invited
        )

    def _mail_idle(self) -> bool:
        return not self._outbox and not self._sending

    # --- steps ---------------------------------------------------------------------------------------

    async def _open_round(self, version: int, event: str, actor: Actor, note: str | None) -> None:
        """A link version with a fresh deadline and reminder: recorded on the user (so the activity opens that
        version's link, and older ones die), then its invitation queued."""
        now = workflow.now()
        self._round_started_at = now
        self._set(
            status=AdministratorStatus.invited,
            link_version=version,
            expires_at=now + timedelta(seconds=self._input.activation_ttl),
            reminders_sent=0,
            bounced=False,
        )
        await self._record(event, actor, note, opens_round=True)
        self._outbox.append(Mailing(EmailKind.administrator_invitation, version, f"invite-{version}"))

    async def _outcome(self) -> InvitationOutcome:
        self._steps += 1
        return await self._activity(
            AdministratorActivities.invitation_outcome,
            self._round(),
            f"outcome-{self._view.link_version}-{self._steps}",
        )

    def _settle(self, outcome: InvitationOutcome) -> None:
        """Take the store's word for how the round stands."""
        if outcome.state == "replaced":
            self._replaced = True
        elif outcome.state in SETTLED:
            self._set(status=SETTLED[outcome.state])
        self._epoch += 1

    def _round(self, version: int | None = None) -> InvitationRound:
        return InvitationRound(
            user_id=self._view.user_id,
            account_id=self._view.account_id,
            link_version=self._view.link_version if version is None else version,
            expires_at=self._view.expires_at,
        )

    async def _record(
        self, event: str, actor: Actor, note: str | None, *, opens_round: bool = False, bounce: str | None = None
    ) -> None:
        """A step on the account's timeline (the store adds the address); `opens_round` also sets the user's link
        version and deadline. The activity id holds the link version, so a later run's ids never repeat it."""
        self._steps += 1
        version = self._view.link_version
        step = InvitationEvent(
            user_id=self._view.user_id,
            account_id=self._view.account_id,
            event=event,
            actor=actor,
            note=note,
            link_version=version if opens_round else None,
            expires_at=self._view.expires_at if opens_round else None,
            bounce=bounce,
        )
        await self._activity(AdministratorActivities.record_invitation, step, f"record-{version}-{self._steps}")
        self._epoch += 1

    async def _activity(
        self,
        activity: Callable[[AdministratorActivities, Arg], Awaitable[Result]],
        arg: Arg,
        activity_id: str,
        *,
        timeout: timedelta = RECORD_TIMEOUT,
    ) -> Result:
        return await workflow.execute_activity_method(
            activity, arg, activity_id=activity_id, start_to_close_timeout=timeout, retry_policy=RETRY
        )

    def _set(self, **changes: object) -> None:
        self._view = self._view.model_copy(update=changes)
        deadline = self._next_deadline() if self._view.status == AdministratorStatus.invited else None
        workflow.set_current_details(administrator_details(self._view, deadline))
