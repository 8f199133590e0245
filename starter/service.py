"""What every way in (API, portal, CLI) does with an enrollment: check, start or update the workflow, read.

Writes go through the workflow (which writes the store through activities); reads come from the store.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
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

from domain.models import (
    Actor,
    EnrollmentInput,
    EnrollmentStatus,
    EnrollmentView,
    FieldError,
    MemberType,
    Schedule,
)
from domain.rules import check_account_fields
from domain.settings import Settings
from domain.temporal_names import enrollment_workflow_id
from store import enrollments as store
from workflows.attributes import ENROLLMENT_STATUS, MEMBER_TYPE
from workflows.enrollment import EnrollmentWorkflow


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


def refusal_from(err: WorkflowUpdateFailedError) -> ServiceError:
    """Map a refused or failed update to what the user is told."""
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = getattr(cause, "cause", None)
    if not isinstance(cause, ApplicationError):
        return ServiceError(f"The enrollment could not be updated: {err.cause or err}")
    if cause.type == "InvalidEnrollment":
        details = cause.details[0] if cause.details else []
        return InvalidInput([FieldError.model_validate(d) for d in details])
    if cause.type == "OrganizationTaken":
        return Conflict(_duplicate_message(str(cause.details[0]) if cause.details else "unknown"))
    return Conflict(cause.message)


class EnrollmentService:
    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.url = settings.effective_database_url

    def schedule(self) -> Schedule:
        return Schedule(
            reminder_offsets=[d.total_seconds() for d in self.settings.reminder_offsets],
            ttl=self.settings.ttl.total_seconds(),
        )

    async def create(
        self, raw: Mapping[str, Any], actor: Actor, *, user_id: str, idempotency_key: str | None = None
    ) -> tuple[EnrollmentView, bool]:
        """Start an enrollment; (the enrollment, True if this call created it)."""
        fields, errors = check_account_fields(raw, today=datetime.now(UTC).date(), free_mail=self.settings.free_mail)
        if errors:
            raise InvalidInput(errors)
        assert fields is not None
        enrollment_id = enrollment_id_for(user_id, idempotency_key)
        if idempotency_key is not None:
            existing = await store.get_enrollment(self.url, enrollment_id)
            if existing is not None:
                return existing, False
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
            view: EnrollmentView = await self.client.execute_update_with_start_workflow(
                "created", start_workflow_operation=start, result_type=EnrollmentView
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
