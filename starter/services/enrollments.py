"""What every way in (API, portal, CLI) does with an enrollment: check, start or update the workflow, read.

Writes go through the workflow (which writes the store through activities); reads come from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.access import Viewer, enrollment_scope, may_see_enrollment, partner_refusal
from domain.models import (
    AccountFields,
    Actor,
    CsmAction,
    EditEnrollment,
    EnrollmentInput,
    EnrollmentStatus,
    EnrollmentView,
    FieldError,
    LinkRequest,
    MemberType,
    ReviewAction,
    Schedule,
    SubmitForm,
)
from domain.rules import ACCOUNT_FIELDS, check_account_fields, check_contact_form
from domain.settings import Settings
from domain.status import EnrollmentAction, enrollment_refusal
from starter.services.errors import (
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    ServiceError,
    Unavailable,
    check_note,
    duplicate_message,
)
from starter.services.temporal import CheckedUpdates, refusal_from, run_update, unavailable_when_down
from store import accounts as accounts_store
from store import enrollments as store
from store import links
from workflows.client import COURTESY_TIMEOUT, RPC_TIMEOUT
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import ENROLLMENT_STATUS, MEMBER_TYPE, enrollment_workflow_id

UNKNOWN_LINK = "This enrollment link is not valid. Check that the whole link from the email was used."
DEAD_LINK = (
    "This enrollment link is no longer valid. It may have been used already, replaced by a newer one, "
    "or expired. Ask your representative to send you a new link."
)


class PartnerRefused(ServiceError):
    """A partner (a reseller's administrator) asked for what its rules refuse: the sentence names the rule."""

    status = 403


def enrollment_id_for(user_id: str, idempotency_key: str | None) -> str:
    """A fresh id, or the same id for the same user and Idempotency-Key (so retries find one enrollment)."""
    if idempotency_key is None:
        return secrets.token_hex(8)
    return hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()[:16]


async def check_reseller(url: str, reseller_account_id: str | None) -> None:
    """A customer sold through a reseller names an Active reseller account (the store's one check)."""
    problem = await accounts_store.reseller_problem(url, reseller_account_id)
    if problem is not None:
        raise InvalidInput([problem])


async def check_partner(url: str, viewer: Viewer, member_type: str, reseller_account_id: str | None) -> None:
    """For a partner: its reseller account must be Active, the member type customer and the reseller its own
    (`domain.access.partner_refusal`); else `PartnerRefused` naming the rule. Staff: nothing to check."""
    if enrollment_scope(viewer) is None:
        return
    status = None
    if viewer.account_id:
        account = await accounts_store.get_account(url, viewer.account_id[:64])
        if account is not None and account.member_type == MemberType.reseller:
            status = account.status.value
    problem = partner_refusal(
        viewer, member_type=member_type, reseller_account_id=reseller_account_id, account_status=status
    )
    if problem is not None:
        raise PartnerRefused(problem)


async def visible_enrollment(url: str, viewer: Viewer, enrollment_id: str) -> EnrollmentView:
    """The enrollment, if `viewer` may see it (`may_see_enrollment`); otherwise the same 404 as for an id that
    does not exist, so a partner cannot tell another reseller's enrollment from none. Read from the store alone
    (pages that only show an enrollment work while Temporal is down)."""
    view = await store.get_enrollment(url, enrollment_id[:64])
    if view is None or not may_see_enrollment(viewer, view.reseller_account_id):
        raise NotFound(f"No enrollment has the id {enrollment_id[:64]}.")
    return view


async def changeable_enrollment(url: str, viewer: Viewer, enrollment_id: str) -> EnrollmentView:
    """An enrollment `viewer` may change: one it may see (404 otherwise), and for a partner, while its reseller
    account is Active (403)."""
    view = await visible_enrollment(url, viewer, enrollment_id)
    await check_partner(url, viewer, view.member_type.value, view.reseller_account_id)
    return view


PARTNER_DUPLICATE = (
    "An open enrollment or active member account already exists for this organization name. If it should be "
    "your customer, ask your provider's Client Services contact."
)


async def duplicate_for(url: str, viewer: Viewer | None, holder: str) -> str:
    """The Conflict of a taken organization name: it names the enrollment that holds it only to whoever may
    see that enrollment (a partner is not told another reseller's, or a direct customer's, enrollment id)."""
    if viewer is not None and enrollment_scope(viewer) is not None:
        theirs = await store.get_enrollment(url, holder)
        if theirs is None or not may_see_enrollment(viewer, theirs.reseller_account_id):
            return PARTNER_DUPLICATE
    return duplicate_message(holder)


def new_account_fields(raw: Mapping[str, Any], *, free_mail: Collection[str]) -> AccountFields:
    """A new member account's fields, checked by the field rules (InvalidInput names every broken rule)."""
    fields, errors = check_account_fields(raw, today=datetime.now(UTC).date(), free_mail=free_mail)
    if errors:
        raise InvalidInput(errors)
    assert fields is not None
    return fields


def edited_fields(
    current: EnrollmentView, changes: Mapping[str, Any], *, free_mail: Collection[str]
) -> tuple[AccountFields | None, list[FieldError]]:
    """An enrollment's fields with an edit's `changes` merged in (the fields it leaves out stay), checked by the
    field rules: the fields, or every broken rule by field. Switching Display Users Purchased off without
    naming users purchased empties it."""
    merged = {**current.model_dump(mode="json", include=set(ACCOUNT_FIELDS)), **changes}
    if merged.get("display_users_purchased") in (False, "no", "false") and "users_purchased" not in changes:
        merged["users_purchased"] = None
    return check_account_fields(merged, today=datetime.now(UTC).date(), free_mail=free_mail)


class EnrollmentService:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.effective_database_url
        self.updates = CheckedUpdates(client, self.get, enrollment_refusal, enrollment_workflow_id)

    def schedule(self) -> Schedule:
        return Schedule(
            reminder_offsets=[d.total_seconds() for d in self.settings.reminders],
            ttl=self.settings.enrollment_ttl.total_seconds(),
            warning_offsets=[d.total_seconds() for d in self.settings.service_end_warnings],
        )

    async def create(
        self,
        fields: AccountFields | Mapping[str, Any],
        actor: Actor,
        *,
        user_id: str,
        idempotency_key: str | None = None,
        viewer: Viewer | None = None,
    ) -> tuple[EnrollmentView, bool]:
        """Start an enrollment from checked fields, or raw ones to check; (the enrollment, True if this call
        created it). A partner `viewer` (a reseller's administrator) creates customers of its own Active
        reseller account only (`PartnerRefused` otherwise), and its `reseller_account_id` defaults to that."""
        if not isinstance(fields, AccountFields):
            if viewer is not None:  # a forged member type or reseller is refused by its rule, before field rules
                member_type, reseller = fields.get("member_type"), fields.get("reseller_account_id")
                await self.check_partner(viewer, str(member_type or "customer"), str(reseller) if reseller else None)
            fields = new_account_fields(fields, free_mail=self.settings.free_mail)
        if viewer is not None:
            await self.check_partner(viewer, fields.member_type.value, fields.reseller_account_id)
            if enrollment_scope(viewer) is not None:
                fields = fields.model_copy(update={"reseller_account_id": viewer.account_id})
        enrollment_id = enrollment_id_for(user_id, idempotency_key)
        if idempotency_key is not None:
            existing = await store.get_enrollment(self.url, enrollment_id)
            if existing is not None:
                return existing, False
        await check_reseller(self.url, fields.reseller_account_id)
        holder = await store.find_claim(self.url, fields.organization_name)
        if holder is not None and holder != enrollment_id:
            raise Conflict(await duplicate_for(self.url, viewer, holder))
        start = WithStartWorkflowOperation(
            EnrollmentWorkflow.run,
            EnrollmentInput(enrollment_id=enrollment_id, fields=fields, created_by=actor, schedule=self.schedule()),
            id=enrollment_workflow_id(enrollment_id),
            task_queue=self.settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(ENROLLMENT_STATUS, EnrollmentStatus.new.value),
                    SearchAttributePair(MEMBER_TYPE, fields.member_type.value),
                ]
            ),
            static_summary=f"{fields.organization_name} · {fields.member_type.value}",
            static_details=f"Member account enrollment {enrollment_id}, created by {actor.label}.",
        )
        try:
            with unavailable_when_down():
                view = cast(
                    EnrollmentView,
                    await self.client.execute_update_with_start_workflow(
                        EnrollmentWorkflow.created, start_workflow_operation=start, rpc_timeout=RPC_TIMEOUT
                    ),
                )
        except WorkflowUpdateFailedError as err:
            raise refusal_from(err) from err
        except (WorkflowAlreadyStartedError, RPCError) as err:
            if isinstance(err, RPCError) and err.status != RPCStatusCode.ALREADY_EXISTS:
                raise
            existing = await store.get_enrollment(self.url, enrollment_id)
            if existing is None:
                raise Conflict("This Idempotency-Key was used for an enrollment that did not complete.") from err
            return existing, False
        return view, True

    async def check_partner(self, viewer: Viewer, member_type: str, reseller_account_id: str | None) -> None:
        await check_partner(self.url, viewer, member_type, reseller_account_id)

    async def visible(self, viewer: Viewer, enrollment_id: str) -> EnrollmentView:
        return await visible_enrollment(self.url, viewer, enrollment_id)

    async def changeable(self, viewer: Viewer, enrollment_id: str) -> EnrollmentView:
        return await changeable_enrollment(self.url, viewer, enrollment_id)

    async def resend(
        self, enrollment_id: str, actor: Actor, audit_note: object, *, viewer: Viewer | None = None
    ) -> EnrollmentView:
        if viewer is not None:
            await self.changeable(viewer, enrollment_id)
        action = CsmAction(actor=actor, audit_note=check_note(audit_note))
        return await self.updates.run(enrollment_id, EnrollmentAction.resend, EnrollmentWorkflow.resend, action)

    async def cancel(
        self, enrollment_id: str, actor: Actor, audit_note: object, *, viewer: Viewer | None = None
    ) -> EnrollmentView:
        if viewer is not None:
            await self.changeable(viewer, enrollment_id)
        action = CsmAction(actor=actor, audit_note=check_note(audit_note))
        return await self.updates.run(enrollment_id, EnrollmentAction.cancel, EnrollmentWorkflow.cancel, action)

    async def edit(
        self,
        enrollment_id: str,
        actor: Actor,
        changes: Mapping[str, Any],
        *,
        send_invitation: bool = True,
        viewer: Viewer | None = None,
    ) -> EnrollmentView:
        """Apply the changed fields (the rest stay), with the required audit note. A partner `viewer` changes
        its own customers' enrollments only (404 for any other), and they stay its customers (403)."""
        changes = dict(changes)
        current = await (self.changeable(viewer, enrollment_id) if viewer is not None else self.get(enrollment_id))
        note = check_note(changes.pop("audit_note", None))
        if viewer is not None:  # a forged member type or reseller is refused by its rule, before the field rules
            member_type = changes.get("member_type", current.member_type.value)
            reseller = changes.get("reseller_account_id", current.reseller_account_id)
            await self.check_partner(viewer, str(member_type), str(reseller) if reseller else "")
        fields, errors = edited_fields(current, changes, free_mail=self.settings.free_mail)
        if errors:
            raise InvalidInput(errors)
        assert fields is not None
        if viewer is not None:
            await self.check_partner(viewer, fields.member_type.value, fields.reseller_account_id or "")
        await check_reseller(self.url, fields.reseller_account_id)
        edit = EditEnrollment(actor=actor, fields=fields, audit_note=note, send_invitation=send_invitation)
        return await self.updates.run(enrollment_id, EnrollmentAction.edit, EnrollmentWorkflow.edit, edit)

    async def start_review(self, enrollment_id: str, actor: Actor, audit_note: object) -> EnrollmentView:
        action = ReviewAction(actor=actor, audit_note=check_note(audit_note))
        return await self.updates.run(
            enrollment_id, EnrollmentAction.start_review, EnrollmentWorkflow.start_review, action
        )

    async def approve(self, enrollment_id: str, actor: Actor, audit_note: object) -> EnrollmentView:
        action = ReviewAction(actor=actor, audit_note=check_note(audit_note))
        return await self.updates.run(enrollment_id, EnrollmentAction.approve, EnrollmentWorkflow.approve, action)

    async def reject(self, enrollment_id: str, actor: Actor, audit_note: object, reason: object) -> EnrollmentView:
        action = ReviewAction(actor=actor, audit_note=check_note(audit_note), reason=check_note(reason, "reason"))
        return await self.updates.run(enrollment_id, EnrollmentAction.reject, EnrollmentWorkflow.reject, action)

    async def open_form(self, token: str) -> tuple[EnrollmentView, int]:
        """The enrollment a live form link opens; its workflow is told on the link's first open only."""
        enrollment_id, version = await self._live_link(token)
        view = await self.get(enrollment_id)
        if await links.first_open(self.url, token):
            await self._opened(enrollment_id, version)
        return view, version

    async def _opened(self, enrollment_id: str, version: int) -> None:
        """The timeline entry is a courtesy: the form opens at once whether or not Temporal hears of it."""
        handle = self.client.get_workflow_handle_for(EnrollmentWorkflow.run, enrollment_workflow_id(enrollment_id))
        signal = LinkRequest(enrollment_id=enrollment_id, link_version=version)
        with contextlib.suppress(TimeoutError, Unavailable, RPCError):
            async with asyncio.timeout(COURTESY_TIMEOUT.total_seconds()):
                with unavailable_when_down():
                    await handle.signal(EnrollmentWorkflow.opened, signal, rpc_timeout=COURTESY_TIMEOUT)

    async def submit_form(self, token: str, raw: Mapping[str, Any], *, source: str | None = None) -> EnrollmentView:
        """The contact's form: checked, then handed to the workflow, which accepts it only once."""
        enrollment_id, version = await self._live_link(token)
        form, errors = check_contact_form(raw, free_mail=self.settings.free_mail)
        if errors:
            raise InvalidInput(errors)
        assert form is not None
        submission = SubmitForm(link_version=version, form=form, source=source)
        workflow_id = enrollment_workflow_id(enrollment_id)
        try:
            # The shared path: a submit that meets a run handing over to a fresh one is tried again there.
            return await run_update(self.client, workflow_id, EnrollmentWorkflow.submit_form, submission)
        except Unavailable:
            raise
        except ServiceError as err:  # refused (the link was used, replaced or has expired) or the run has ended
            raise Gone(DEAD_LINK) from err

    async def _live_link(self, token: str) -> tuple[str, int]:
        state, enrollment_id, version = await links.resolve(self.url, token)
        if state == links.LinkState.unknown or enrollment_id is None:
            raise NotFound(UNKNOWN_LINK)
        if state == links.LinkState.dead:
            raise Gone(DEAD_LINK)
        return enrollment_id, version

    async def get(self, enrollment_id: str) -> EnrollmentView:
        view = await store.get_enrollment(self.url, enrollment_id)
        if view is None:
            raise NotFound(f"No enrollment has the id {enrollment_id}.")
        return view

    async def list(
        self,
        *,
        status: EnrollmentStatus | None = None,
        member_type: MemberType | None = None,
        q: str | None = None,
        reseller_account_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        viewer: Viewer | None = None,
    ) -> tuple[list[EnrollmentView], str | None]:
        """Newest first. A partner `viewer` sees its own customers' enrollments only, whatever
        `reseller_account_id` it asks for (another reseller's id finds nothing)."""
        scope = enrollment_scope(viewer) if viewer is not None else None
        if scope is not None:
            if reseller_account_id not in (None, scope):
                return [], None
            reseller_account_id = scope
        return await store.list_enrollments(
            self.url,
            status=status,
            member_type=member_type.value if member_type else None,
            q=q,
            reseller_account_id=reseller_account_id,
            limit=limit,
            cursor=cursor,
        )
