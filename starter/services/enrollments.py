"""What every way in (API, portal, CLI) does with an enrollment: check, start or update the workflow, read.

Writes go through the workflow (which writes the store through activities); reads come from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import Awaitable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

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
from domain.rules import ACCOUNT_FIELDS, check_account_fields, check_contact_form, check_text
from domain.settings import Settings
from domain.status import EnrollmentAction, enrollment_refusal
from store import accounts as accounts_store
from store import enrollments as store
from store import links
from workflows.client import COURTESY_TIMEOUT, RPC_TIMEOUT
from workflows.common import CONTINUING_AS_NEW
from workflows.enrollment import EnrollmentWorkflow
from workflows.names import ENROLLMENT_STATUS, MEMBER_TYPE, enrollment_workflow_id

W = TypeVar("W")
A = TypeVar("A")
R = TypeVar("R")
UNKNOWN_LINK = "This enrollment link is not valid. Check that the whole link from the email was used."
DEAD_LINK = (
    "This enrollment link is no longer valid. It may have been used already, replaced by a newer one, "
    "or expired. Ask your representative to send you a new link."
)
UNREACHABLE = "The workflow service is unreachable at the moment; try again shortly."
NO_ANSWER = (
    "The workflow service did not answer in time, so the change may or may not have been made; "
    "check again shortly before you try again."
)


class ServiceError(Exception):
    """A refusal a user can act on; `status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field} {e.message}" for e in errors))
        self.errors = errors


class Conflict(ServiceError):
    status = 409


class NotFound(ServiceError):
    status = 404


class Unavailable(ServiceError):
    """Temporal is out of reach or too slow to answer: try again later, the request itself was fine."""

    status = 503


@contextlib.contextmanager
def unavailable_when_down() -> Iterator[None]:
    """Around a Temporal call: a server out of reach or too slow to answer becomes Unavailable (503).

    A timed-out update may still be applied, so it is never reported as refused (409) or gone (410)."""
    try:
        yield
    except RPCTimeoutOrCancelledError as err:
        raise Unavailable(NO_ANSWER) from err
    except RPCError as err:
        if err.status == RPCStatusCode.DEADLINE_EXCEEDED:
            raise Unavailable(NO_ANSWER) from err
        if err.status == RPCStatusCode.UNAVAILABLE:
            raise Unavailable(UNREACHABLE) from err
        raise
    except RuntimeError as err:
        if str(err).startswith("Failed client connect"):  # the API's client connects on first use
            raise Unavailable(UNREACHABLE) from err
        raise


def enrollment_id_for(user_id: str, idempotency_key: str | None) -> str:
    """A fresh id, or the same id for the same user and Idempotency-Key (so retries find one enrollment)."""
    if idempotency_key is None:
        return secrets.token_hex(8)
    return hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()[:16]


def _duplicate_message(holder: str) -> str:
    return (
        f"An open enrollment or active member account already exists for this organization "
        f"(enrollment {holder}); open it instead of creating another."
    )


def application_cause(err: WorkflowUpdateFailedError) -> ApplicationError | None:
    """The ApplicationError the workflow refused or failed the update with, however deep in the chain."""
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None)
    return cause if isinstance(cause, ApplicationError) else None


def refusal_from(err: WorkflowUpdateFailedError) -> ServiceError:
    """Map a refused or failed update to what the user is told."""
    cause = application_cause(err)
    if cause is None:
        return ServiceError(f"The enrollment could not be updated: {err.cause or err}")
    if cause.type == "InvalidEnrollment":
        details = cause.details[0] if cause.details else []
        return InvalidInput([FieldError.model_validate(d) for d in details])
    if cause.type == "OrganizationTaken":
        return Conflict(_duplicate_message(str(cause.details[0]) if cause.details else "unknown"))
    return Conflict(cause.message)


Update = UpdateMethodMultiParam[[W, A], Awaitable[R]]
"""An update method of workflow class W taking an A and answering an R, e.g. `EnrollmentWorkflow.resend`. (The
workflows name their handlers, so the type checker sees each return an awaitable of its result.)"""


HANDOVER_RETRIES = 20
"""How often an update turned away by a run handing over to a fresh one is tried again (about 4 s in all)."""


async def run_update(client: Client, workflow_id: str, update: Update[Any, A, R], arg: A) -> R:
    """Execute `update` with `arg`; a refusal or a finished run becomes the Conflict the user is shown. An update
    that arrives while the run continues as new is tried again: it lands on the fresh run."""
    handle = client.get_workflow_handle(workflow_id)
    for attempt in range(HANDOVER_RETRIES + 1):
        try:
            with unavailable_when_down():
                return cast(R, await handle.execute_update(update, arg, rpc_timeout=RPC_TIMEOUT))
        except WorkflowUpdateFailedError as err:
            cause = application_cause(err)
            if cause is not None and cause.type == CONTINUING_AS_NEW and attempt < HANDOVER_RETRIES:
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise refusal_from(err) from err
        except RPCError as err:
            if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise
            # The run it reached may have just continued as new ("already completed"): the fresh run takes it.
            if attempt < HANDOVER_RETRIES and await _running(handle):
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            raise Conflict("This has ended; it can no longer change.") from err
    raise AssertionError("unreachable")


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow's latest run is still running."""
    try:
        with unavailable_when_down():
            description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError:
        return False
    return description.status == WorkflowExecutionStatus.RUNNING


async def check_reseller(url: str, reseller_account_id: str | None) -> None:
    """A customer sold through a reseller names an Active reseller account (the store's one check)."""
    problem = await accounts_store.reseller_problem(url, reseller_account_id)
    if problem is not None:
        raise InvalidInput([problem])


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

    def schedule(self) -> Schedule:
        return Schedule(
            reminder_offsets=[d.total_seconds() for d in self.settings.reminder_offsets],
            ttl=self.settings.ttl.total_seconds(),
            warning_offsets=[d.total_seconds() for d in self.settings.warning_offsets],
        )

    async def create(
        self,
        fields: AccountFields | Mapping[str, Any],
        actor: Actor,
        *,
        user_id: str,
        idempotency_key: str | None = None,
    ) -> tuple[EnrollmentView, bool]:
        """Start an enrollment from checked fields, or raw ones to check; (the enrollment, True if this call
        created it)."""
        if not isinstance(fields, AccountFields):
            fields = new_account_fields(fields, free_mail=self.settings.free_mail)
        enrollment_id = enrollment_id_for(user_id, idempotency_key)
        if idempotency_key is not None:
            existing = await store.get_enrollment(self.url, enrollment_id)
            if existing is not None:
                return existing, False
        await check_reseller(self.url, fields.reseller_account_id)
        holder = await store.find_claim(self.url, fields.organization_name)
        if holder is not None and holder != enrollment_id:
            raise Conflict(_duplicate_message(holder))
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

    async def _update(
        self,
        enrollment_id: str,
        action: EnrollmentAction,
        update: Update[EnrollmentWorkflow, A, EnrollmentView],
        arg: A,
    ) -> EnrollmentView:
        """Ask the status machine first (fast, and right for finished runs), then the workflow, which decides."""
        current = await self.get(enrollment_id)
        refusal = enrollment_refusal(current.status, action)
        if refusal:
            raise Conflict(refusal)
        return await run_update(self.client, enrollment_workflow_id(enrollment_id), update, arg)

    async def resend(self, enrollment_id: str, actor: Actor, audit_note: object) -> EnrollmentView:
        action = CsmAction(actor=actor, audit_note=check_note(audit_note))
        return await self._update(enrollment_id, EnrollmentAction.resend, EnrollmentWorkflow.resend, action)

    async def cancel(self, enrollment_id: str, actor: Actor, audit_note: object) -> EnrollmentView:
        action = CsmAction(actor=actor, audit_note=check_note(audit_note))
        return await self._update(enrollment_id, EnrollmentAction.cancel, EnrollmentWorkflow.cancel, action)

    async def edit(
        self, enrollment_id: str, actor: Actor, changes: Mapping[str, Any], *, send_invitation: bool = True
    ) -> EnrollmentView:
        """Apply the changed fields (the rest stay), with the required audit note."""
        changes = dict(changes)
        note = check_note(changes.pop("audit_note", None))
        current = await self.get(enrollment_id)
        fields, errors = edited_fields(current, changes, free_mail=self.settings.free_mail)
        if errors:
            raise InvalidInput(errors)
        assert fields is not None
        await check_reseller(self.url, fields.reseller_account_id)
        edit = EditEnrollment(actor=actor, fields=fields, audit_note=note, send_invitation=send_invitation)
        return await self._update(enrollment_id, EnrollmentAction.edit, EnrollmentWorkflow.edit, edit)

    async def start_review(self, enrollment_id: str, actor: Actor, audit_note: object) -> EnrollmentView:
        action = ReviewAction(actor=actor, audit_note=check_note(audit_note))
        return await self._update(enrollment_id, EnrollmentAction.start_review, EnrollmentWorkflow.start_review, action)

    async def approve(self, enrollment_id: str, actor: Actor, audit_note: object) -> EnrollmentView:
        action = ReviewAction(actor=actor, audit_note=check_note(audit_note))
        return await self._update(enrollment_id, EnrollmentAction.approve, EnrollmentWorkflow.approve, action)

    async def reject(self, enrollment_id: str, actor: Actor, audit_note: object, reason: object) -> EnrollmentView:
        action = ReviewAction(actor=actor, audit_note=check_note(audit_note), reason=check_note(reason, "reason"))
        return await self._update(enrollment_id, EnrollmentAction.reject, EnrollmentWorkflow.reject, action)

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
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[EnrollmentView], str | None]:
        return await store.list_enrollments(
            self.url,
            status=status,
            member_type=member_type.value if member_type else None,
            q=q,
            limit=limit,
            cursor=cursor,
        )


class Gone(ServiceError):
    status = 410


def check_note(note: object, field: str = "audit_note") -> str:
    """An audit note: required, one line, at most 1,000 characters."""
    text, problem = check_text(note, maximum=1000)
    if problem:
        raise InvalidInput([FieldError(field=field, message=problem)])
    assert text is not None
    return text
