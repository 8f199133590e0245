"""The enrollment's I/O: checking, persisting, form links and email. Each activity is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email import deliver, form_token
from domain.models import (
    AccountFieldsBase,
    EmailKind,
    EmailRequest,
    EmailResult,
    LinkRequest,
    RecordAccount,
    RecordEnrollment,
    ValidateEnrollment,
)
from domain.rules import check_account_fields, has_control_characters
from domain.settings import Settings
from store import accounts, links, outbox
from store.enrollments import OrganizationTaken, find_claim, record_enrollment


def organization_taken(holder: str) -> ApplicationError:
    return ApplicationError(
        f"an open enrollment or live account (enrollment {holder}) already has this organization name",
        holder,
        type="OrganizationTaken",
        non_retryable=True,
    )


RESELLER_NOTICES = (EmailKind.service_end_warning, EmailKind.account_expired)
"""The emails about a customer's account that its reseller's administrators receive as well."""


def _key() -> str:
    info = activity.info()
    return f"{info.workflow_id}/{info.activity_id}"


class EnrollmentActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url

    @activity.defn(name="validate")
    async def validate(self, request: ValidateEnrollment) -> None:
        """Every rule of the README's field table (`domain/rules.py`), plus: no open enrollment or live account
        of the same name. (Runs from before the patch `checked-with-first-write`; newer ones check in `persist`.)"""
        await self._check(request.fields)
        holder = await find_claim(self.url, request.fields.organization_name)
        if holder is not None and holder != request.enrollment_id:
            raise organization_taken(holder)

    async def _check(self, fields: AccountFieldsBase) -> None:
        """The field rules and the reseller's; `InvalidEnrollment` naming each field that breaks one."""
        values = fields.model_dump(mode="json", include=set(AccountFieldsBase.model_fields))
        if not values["display_users_purchased"]:
            values.pop("users_purchased")
        _, errors = check_account_fields(values, today=datetime.now(UTC).date(), free_mail=self.settings.free_mail)
        if errors:
            raise ApplicationError(
                "; ".join(f"{e.field} {e.message}" for e in errors),
                [e.model_dump() for e in errors],
                type="InvalidEnrollment",
                non_retryable=True,
            )
        problem = await accounts.reseller_problem(self.url, fields.reseller_account_id)
        if problem is not None:
            raise ApplicationError(
                f"{problem.field} {problem.message}",
                [problem.model_dump()],
                type="InvalidEnrollment",
                non_retryable=True,
            )

    @activity.defn(name="persist")
    async def persist(self, record: RecordEnrollment) -> None:
        """Check the fields (as `validate` does), then write the row (status New), claim the organization name
        and add the `created` event: the claim is taken in the write's own transaction, so a name another open
        enrollment or live account holds is `OrganizationTaken` and nothing is written."""
        await self._check(record.view)
        await self.record(record)

    @activity.defn(name="record")
    async def record(self, record: RecordEnrollment) -> None:
        """Bring the read model up to the workflow's view; the event is added once, whatever the retries."""
        try:
            await record_enrollment(self.url, record)
        except OrganizationTaken as exc:
            raise organization_taken(exc.enrollment_id) from exc

    @activity.defn(name="send_invitation")
    async def send_invitation(self, request: EmailRequest) -> EmailResult:
        """Open the form link of this link version (older ones die) and email it to the contact; with
        `current_link_only`, drop it instead once the version is no longer current (never mail a live link
        of a cancelled or re-linked enrollment)."""
        if request.enrollment is None or request.link_version is None:
            raise ApplicationError(
                "an invitation needs an enrollment and a link version", type="BadEmailRequest", non_retryable=True
            )
        enrollment_id, version = request.enrollment.id, request.link_version
        token = form_token(self.settings.signing_key, enrollment_id, version)
        if request.current_link_only:
            if not await links.open_current_link(self.url, token=token, enrollment_id=enrollment_id, version=version):
                return await self._dropped(request)
        else:
            await links.open_link(self.url, token=token, enrollment_id=enrollment_id, version=version)
        return await deliver(self.settings, request, _key())

    @activity.defn(name="send_email")
    async def send_email(self, request: EmailRequest) -> EmailResult:
        """Any other email of the enrollment: reminder, confirmation, notices, welcome."""
        if request.kind == EmailKind.reminder and request.enrollment and request.link_version is not None:
            enrollment_id, version = request.enrollment.id, request.link_version
            token = form_token(self.settings.signing_key, enrollment_id, version)
            live = await links.keep_link_for_reminder(
                self.url, token=token, enrollment_id=enrollment_id, version=version
            )
            if not live and request.current_link_only:
                return await self._dropped(request)
        return await deliver(self.settings, request, _key(), also_to=await self._reseller_copies(request))

    async def _reseller_copies(self, request: EmailRequest) -> list[str]:
        """A customer's service-end warning and expired notice go to its reseller's active administrators too.
        Read from the store at send time, so their addresses never enter the workflow's history; the outbox keeps
        the first attempt's set for every retry (`deliver`)."""
        account = request.account
        if request.kind not in RESELLER_NOTICES or account is None or account.reseller_account_id is None:
            return []
        recipients = await accounts.reseller_recipients(self.url, account.reseller_account_id)
        return [address for address in recipients if not has_control_characters(address)]

    async def _dropped(self, request: EmailRequest) -> EmailResult:
        activity.logger.info("email %s (%s) dropped: its link is no longer current", _key(), request.kind.value)
        return EmailResult(dropped=True)

    @activity.defn(name="record_account")
    async def record_account(self, record: RecordAccount) -> None:
        """Bring a member account's row up to its workflow's view; the event is added once."""
        await accounts.record_account(self.url, record)

    @activity.defn(name="close_form_links")
    async def close_form_links(self, request: LinkRequest) -> None:
        """Kill every form link of the enrollment (submitted, expired, cancelled, re-linked); an invitation or
        reminder still retrying is dropped with them (its run cancels it)."""
        await links.kill_links(self.url, request.enrollment_id)
        await outbox.drop_link_emails(self.url, request.enrollment_id)
