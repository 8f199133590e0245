"""The member administrators' I/O: making the contacts administrators at approval, their invitations (link and
email), the steps on the account's timeline, and the inactivity sweep. Each activity is idempotent.

Workflows pass user ids only: the address is read here from the store and the activation token derived here, so
neither enters a history. An SMTP error is handed back with the address taken out of it for the same reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import activation_token, deliver
from domain.models import (
    AccountView,
    AdministratorMail,
    AdministratorsInvited,
    AdministratorStatus,
    CreateAdministrators,
    EmailKind,
    EmailRequest,
    EmailResult,
    InactiveSweep,
    InactiveSwept,
    InactiveWarning,
    InvitationEvent,
    InvitationMail,
    InvitationOutcome,
    InvitationRound,
    SkippedNotice,
)
from domain.settings import Settings
from store import accounts, administrators, users

INVITATION_EMAILS = (EmailKind.administrator_invitation, EmailKind.administrator_reminder)


def _key() -> str:
    info = activity.info()
    return f"{info.workflow_id}/{info.activity_id}"


def _dropped(why: str) -> EmailResult:
    activity.logger.info("email %s dropped: %s", _key(), why)
    return EmailResult(dropped=True)


def _without(address: str, err: ApplicationError) -> ApplicationError:
    """`err` with `address` taken out of its message and details (a relay's reply often quotes it)."""

    def clean(value: object) -> object:
        return value.replace(address, "the recipient") if isinstance(value, str) else value

    return ApplicationError(
        str(clean(err.message)),
        *(clean(detail) for detail in err.details),
        type=err.type,
        non_retryable=err.non_retryable,
    )


def _mail(user_id: str, email: str, name: str | None, account: AccountView, **about: Any) -> AdministratorMail:
    """What an email to or about a person of `account` says: who, which account, and `about` (link, reason…)."""
    return AdministratorMail(
        user_id=user_id,
        email=email,
        name=name,
        account_id=account.id,
        organization_name=account.organization_name,
        member_type=account.member_type,
        **about,
    )


class AdministratorActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url

    @activity.defn(name="create_administrators")
    async def create_administrators(self, request: CreateAdministrators) -> AdministratorsInvited:
        """Approval: the contacts become administrators (one login per address); each address not attached
        goes onto the account's timeline here, so the workflow learns only how many."""
        created = await administrators.create_administrators(self.url, request, _key())
        return AdministratorsInvited(
            invite=created.invite,
            skipped=len(created.skipped),
            activation_ttl=self.settings.activation_ttl.total_seconds(),
            reminder_after=self.settings.activation_reminder.total_seconds(),
        )

    @activity.defn(name="notify_skipped")
    async def notify_skipped(self, notice: SkippedNotice) -> EmailResult:
        """Tell the approving reviewer which contacts did not become administrators (from the timeline)."""
        account = await accounts.get_account(self.url, notice.account_id)
        reviewer = await users.user_by_id(self.url, notice.reviewer_id)
        if account is None or reviewer is None:
            return _dropped("no account or no reviewer to tell")
        sentences = [e.note for e in account.timeline if e.event == administrators.NOT_ATTACHED and e.note]
        if not sentences:
            return _dropped("every contact became an administrator")
        mail = _mail(reviewer.id, reviewer.email, None, account, reason="\n".join(sentences))
        return await self._deliver(
            EmailRequest(kind=EmailKind.administrators_skipped, administrator=mail, to=[reviewer.email])
        )

    @activity.defn(name="send_administrator_invitation")
    async def send_administrator_invitation(self, mail: InvitationMail) -> EmailResult:
        """Open this round's activation link (older ones die) and email it, only while the administrator is
        still invited at this link version and before its deadline; otherwise drop it."""
        if mail.kind not in INVITATION_EMAILS:
            raise ApplicationError(
                f"{mail.kind.value} is not an invitation", type="BadEmailRequest", non_retryable=True
            )
        round = mail.round
        outcome = await administrators.round_outcome(self.url, round.user_id, round.link_version)
        if outcome.state != "invited":
            return _dropped(f"the invitation is {outcome.state}")
        administrator = await administrators.get_administrator(self.url, round.account_id, round.user_id)
        account = await accounts.get_account(self.url, round.account_id)
        if administrator is None or account is None or administrator.status != AdministratorStatus.invited:
            return _dropped("the administrator is no longer invited")
        token = activation_token(self.settings.signing_key, round.user_id, round.link_version)
        if not await administrators.open_activation_link(self.url, token=token, round=round):
            return _dropped("the link is no longer current")
        return await self._deliver(
            EmailRequest(
                kind=mail.kind,
                administrator=_mail(
                    administrator.user_id,
                    administrator.email,
                    administrator.name,
                    account,
                    link_version=round.link_version,
                    expires_at=round.expires_at or administrator.invitation_expires_at,
                    invited_by=administrator.invited_by,
                ),
                to=[administrator.email],
            )
        )

    @activity.defn(name="notify_bounced")
    async def notify_bounced(self, round: InvitationRound) -> EmailResult:
        """Tell whoever invited the administrator that the invitation bounced (the reason is on the user)."""
        user = await users.user_by_id(self.url, round.user_id)
        account = await accounts.get_account(self.url, round.account_id)
        if user is None or account is None or not user.invited_by:
            return _dropped("nobody to tell")
        mail = _mail(user.id, user.email, user.name, account, invited_by=user.invited_by, reason=user.invitation_bounce)
        return await self._deliver(
            EmailRequest(kind=EmailKind.administrator_bounced, administrator=mail, to=[user.invited_by])
        )

    @activity.defn(name="record_invitation")
    async def record_invitation(self, event: InvitationEvent) -> None:
        """A step of the invitation on the user's row and the account's timeline, once whatever the retries."""
        await administrators.record_invitation(self.url, event, _key())

    @activity.defn(name="invitation_outcome")
    async def invitation_outcome(self, round: InvitationRound) -> InvitationOutcome:
        """What the store says of the round (the source of truth: a lost `activated` signal changes nothing)."""
        return await administrators.round_outcome(self.url, round.user_id, round.link_version)

    @activity.defn(name="expire_invitation")
    async def expire_invitation(self, round: InvitationRound) -> InvitationOutcome:
        """The round's deadline: Expired, and the link dies, unless the store says it ended otherwise."""
        return await administrators.expire_round(self.url, round, _key())

    @activity.defn(name="sweep_inactive")
    async def sweep_inactive(self, sweep: InactiveSweep) -> InactiveSwept:
        """Disable the administrators idle for `days`; pick (and mark) those to warn a week before."""
        return await administrators.sweep_inactive(self.url, sweep.days)

    @activity.defn(name="send_inactive_warning")
    async def send_inactive_warning(self, warning: InactiveWarning) -> EmailResult:
        """Tell an administrator the day the sweep will disable them, unless they sign in first."""
        user = await users.user_by_id(self.url, warning.user_id)
        if user is None or user.disabled or user.account_id is None:
            return _dropped("the administrator is gone or disabled")
        account = await accounts.get_account(self.url, user.account_id)
        last = user.last_signed_in_at or user.activated_at
        if account is None or last is None:
            return _dropped("no account or no sign-in to count from")
        mail = _mail(user.id, user.email, user.name, account, expires_at=last + timedelta(days=warning.days))
        return await self._deliver(EmailRequest(kind=EmailKind.inactive_warning, administrator=mail, to=[user.email]))

    async def _deliver(self, request: EmailRequest) -> EmailResult:
        """Send it keyed by workflow id + activity id; the address never comes back in a result or an error."""
        try:
            result = await deliver(self.settings, request, _key())
        except ApplicationError as err:
            cleaned = err
            for address in request.to:
                cleaned = _without(address, cleaned)
            raise cleaned from None
        return result.model_copy(update={"refused": [f"a recipient: {r.partition(': ')[2]}" for r in result.refused]})
