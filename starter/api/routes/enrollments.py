"""/api/enrollments: create, list and read enrollments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from domain.models import EnrollmentStatus, MemberType
from starter.api.body import JsonBodyRoute
from starter.api.responses import BODY_RESPONSES, CHANGE_RESPONSES
from starter.api.schemas import (
    AuditNote,
    Detail,
    EnrollmentCreate,
    EnrollmentItem,
    EnrollmentOut,
    EnrollmentPage,
    EnrollmentPatch,
    Rejection,
    ResendNote,
)
from starter.deps import Creator, Reviewer, ServiceDep, Staff, actor_of

router = APIRouter(prefix="/api/enrollments", tags=["enrollments"], route_class=JsonBodyRoute)
NO_NOTE = ResendNote()
"""A resend sent without a body."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES, 403: {"model": Detail}},
)
async def create_enrollment(
    body: EnrollmentCreate,
    response: Response,
    user: Creator,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EnrollmentOut:
    """Create a member account: starts its enrollment, which emails the corporate contact a form link."""
    view, created = await service.create(
        body.fields(), actor_of(user), user_id=user.id, idempotency_key=idempotency_key
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return EnrollmentOut.of(view)


@router.get("", response_model=EnrollmentPage)
async def list_enrollments(
    user: Staff,
    service: ServiceDep,
    status_: Annotated[EnrollmentStatus | None, Query(alias="status")] = None,
    member_type: MemberType | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> EnrollmentPage:
    """Newest first; `q` matches part of the organization name; follow `next_cursor` for the next page."""
    items, next_cursor = await service.list(status=status_, member_type=member_type, q=q, limit=limit, cursor=cursor)
    return EnrollmentPage(items=[EnrollmentItem.of(v) for v in items], next_cursor=next_cursor)


@router.get("/{enrollment_id}", response_model=EnrollmentOut, responses={404: {"model": Detail}})
async def get_enrollment(enrollment_id: str, user: Staff, service: ServiceDep) -> EnrollmentOut:
    return EnrollmentOut.of(await service.get(enrollment_id))


@router.patch(
    "/{enrollment_id}",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES, 404: {"model": Detail}},
)
async def edit_enrollment(
    enrollment_id: str, body: EnrollmentPatch, user: Creator, service: ServiceDep
) -> EnrollmentOut:
    """Change fields, with a required `audit_note`. A changed contact email rotates the form link and invites
    the new address (unless `"send_invitation": false`); refused with 409 once review has begun."""
    changes = {**body.changes(), "audit_note": body.audit_note}
    view = await service.edit(enrollment_id, actor_of(user), changes, send_invitation=body.send_invitation)
    return EnrollmentOut.of(view)


@router.post(
    "/{enrollment_id}/resend",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES},
)
async def resend_invitation(
    enrollment_id: str, user: Creator, service: ServiceDep, body: ResendNote = NO_NOTE
) -> EnrollmentOut:
    """A new form link (the old one dies) and a fresh deadline; revives an Expired enrollment to New."""
    return EnrollmentOut.of(await service.resend(enrollment_id, actor_of(user), body.audit_note))


@router.delete("/{enrollment_id}", response_model=EnrollmentOut, responses=CHANGE_RESPONSES)
async def delete_enrollment(
    enrollment_id: str, user: Creator, service: ServiceDep, audit_note: Annotated[str, Query(max_length=1000)]
) -> EnrollmentOut:
    """Cancel the enrollment (status Cancelled); refused with 409 once review has begun."""
    return EnrollmentOut.of(await service.cancel(enrollment_id, actor_of(user), audit_note))


@router.post(
    "/{enrollment_id}/review/start",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES},
)
async def start_review(enrollment_id: str, body: AuditNote, user: Reviewer, service: ServiceDep) -> EnrollmentOut:
    """Pending Review → In Review; edits and delete are locked from now on."""
    return EnrollmentOut.of(await service.start_review(enrollment_id, actor_of(user), body.audit_note))


@router.post(
    "/{enrollment_id}/review/approve",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES},
)
async def approve(enrollment_id: str, body: AuditNote, user: Reviewer, service: ServiceDep) -> EnrollmentOut:
    """In Review → Approved: the member account starts (Active) and the contacts get a welcome."""
    return EnrollmentOut.of(await service.approve(enrollment_id, actor_of(user), body.audit_note))


@router.post(
    "/{enrollment_id}/review/reject",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES},
)
async def reject(enrollment_id: str, body: Rejection, user: Reviewer, service: ServiceDep) -> EnrollmentOut:
    """In Review → Rejected, with a `reason` the contact is told."""
    view = await service.reject(enrollment_id, actor_of(user), body.audit_note, body.reason)
    return EnrollmentOut.of(view)
