"""/api/enrollments: create, list and read enrollments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from domain.models import EnrollmentStatus, MemberType
from starter.api.body import JsonBodyRoute
from starter.api.partners import PARTNER, Enroller, EnrollmentReader
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
from starter.deps import Reviewer, ServiceDep, actor_of

router = APIRouter(prefix="/api/enrollments", tags=["enrollments"], route_class=JsonBodyRoute)
NO_NOTE = ResendNote()
"""A resend sent without a body."""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES, 403: {"model": Detail}},
    openapi_extra=PARTNER,
)
async def create_enrollment(
    body: EnrollmentCreate,
    response: Response,
    user: Enroller,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EnrollmentOut:
    """Partners (reseller tokens) may call this. A reseller's token creates `customer` accounts under its own
    reseller account, and `reseller_account_id` defaults to it (403 naming the rule for another member type,
    another reseller's id, or a reseller account that is not Active).

    Create a member account: starts its enrollment, which emails the corporate contact a form link."""
    view, created = await service.create(
        body.fields(), actor_of(user), user_id=user.id, idempotency_key=idempotency_key, viewer=user
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return EnrollmentOut.of(view)


@router.get("", response_model=EnrollmentPage, openapi_extra=PARTNER)
async def list_enrollments(
    user: EnrollmentReader,
    service: ServiceDep,
    status_: Annotated[EnrollmentStatus | None, Query(alias="status")] = None,
    member_type: MemberType | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    reseller_account_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> EnrollmentPage:
    """Partners (reseller tokens) may call this. A reseller's token lists its own customers' enrollments only.

    Newest first; `q` matches part of the organization name; `reseller_account_id` keeps the customers sold
    through that reseller; follow `next_cursor` for the next page."""
    items, next_cursor = await service.list(
        status=status_,
        member_type=member_type,
        q=q,
        reseller_account_id=reseller_account_id or None,
        limit=limit,
        cursor=cursor,
        viewer=user,
    )
    return EnrollmentPage(items=[EnrollmentItem.of(v) for v in items], next_cursor=next_cursor)


@router.get("/{enrollment_id}", response_model=EnrollmentOut, responses={404: {"model": Detail}}, openapi_extra=PARTNER)
async def get_enrollment(enrollment_id: str, user: EnrollmentReader, service: ServiceDep) -> EnrollmentOut:
    """Partners (reseller tokens) may call this: their own customers' enrollments; any other id is 404."""
    return EnrollmentOut.of(await service.visible(user, enrollment_id))


@router.patch(
    "/{enrollment_id}",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES, 403: {"model": Detail}, 404: {"model": Detail}},
    openapi_extra=PARTNER,
)
async def edit_enrollment(
    enrollment_id: str, body: EnrollmentPatch, user: Enroller, service: ServiceDep
) -> EnrollmentOut:
    """Partners (reseller tokens) may call this. A reseller's token changes its own customers' enrollments (404
    for any other), which stay customers of its own reseller account (403 naming the rule).

    Change fields, with a required `audit_note`. A changed contact email rotates the form link and invites
    the new address (unless `"send_invitation": false`); refused with 409 once review has begun."""
    changes = {**body.changes(), "audit_note": body.audit_note}
    view = await service.edit(enrollment_id, actor_of(user), changes, send_invitation=body.send_invitation, viewer=user)
    return EnrollmentOut.of(view)


@router.post(
    "/{enrollment_id}/resend",
    response_model=EnrollmentOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES, 403: {"model": Detail}},
    openapi_extra=PARTNER,
)
async def resend_invitation(
    enrollment_id: str, user: Enroller, service: ServiceDep, body: ResendNote = NO_NOTE
) -> EnrollmentOut:
    """Partners (reseller tokens) may call this. A reseller's token changes its own customers' enrollments
    (404 for any other).

    A new form link (the old one dies) and a fresh deadline; revives an Expired enrollment to New."""
    return EnrollmentOut.of(await service.resend(enrollment_id, actor_of(user), body.audit_note, viewer=user))


@router.delete(
    "/{enrollment_id}",
    response_model=EnrollmentOut,
    responses={**CHANGE_RESPONSES, 403: {"model": Detail}},
    openapi_extra=PARTNER,
)
async def delete_enrollment(
    enrollment_id: str, user: Enroller, service: ServiceDep, audit_note: Annotated[str, Query(max_length=1000)]
) -> EnrollmentOut:
    """Partners (reseller tokens) may call this. A reseller's token changes its own customers' enrollments
    (404 for any other).

    Cancel the enrollment (status Cancelled); refused with 409 once review has begun."""
    return EnrollmentOut.of(await service.cancel(enrollment_id, actor_of(user), audit_note, viewer=user))


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
