"""/api/enrollments: create, list and read enrollments."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from domain.models import EnrollmentStatus, FieldError, MemberType
from starter.api.schemas import (
    AuditNote,
    Detail,
    EnrollmentItem,
    EnrollmentOut,
    EnrollmentPage,
    EnrollmentPatch,
    ErrorList,
    Rejection,
    body_schema,
    create_body_schema,
)
from starter.deps import Creator, Reviewer, ServiceDep, Staff, actor_of
from starter.services.enrollments import InvalidInput
from store.enrollments import BadCursor

router = APIRouter(prefix="/api/enrollments", tags=["enrollments"])
# What a change through the workflow may answer besides its result: refused, or Temporal out of reach.
CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": Detail},
    503: {"model": Detail, "description": "The workflow service is unreachable or did not answer in time."},
}


async def json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, or a 422 that says what is wrong with it."""
    raw = await request.body()
    if empty_ok and not raw.strip():
        return {}
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, absurd nesting, a 5,000-digit number
        raise InvalidInput([FieldError(field="body", message=f"is not valid JSON ({exc})")]) from exc
    if not isinstance(body, dict):
        raise InvalidInput([FieldError(field="body", message="must be a JSON object with the enrollment's fields")])
    return body


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentOut,
    openapi_extra=create_body_schema(),
    responses={422: {"model": ErrorList}, **CHANGE_RESPONSES, 403: {"model": Detail}},
)
async def create_enrollment(
    request: Request,
    response: Response,
    user: Creator,
    service: ServiceDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EnrollmentOut:
    """Create a member account: starts its enrollment, which emails the corporate contact a form link."""
    body = await json_object(request)
    view, created = await service.create(body, actor_of(user), user_id=user.id, idempotency_key=idempotency_key)
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
    try:
        items, next_cursor = await service.list(
            status=status_, member_type=member_type, q=q, limit=limit, cursor=cursor
        )
    except BadCursor as exc:
        raise InvalidInput([FieldError(field="cursor", message=str(exc))]) from exc
    return EnrollmentPage(items=[EnrollmentItem.of(v) for v in items], next_cursor=next_cursor)


@router.get("/{enrollment_id}", response_model=EnrollmentOut, responses={404: {"model": Detail}})
async def get_enrollment(enrollment_id: str, user: Staff, service: ServiceDep) -> EnrollmentOut:
    return EnrollmentOut.of(await service.get(enrollment_id))


@router.patch(
    "/{enrollment_id}",
    response_model=EnrollmentOut,
    openapi_extra=body_schema(EnrollmentPatch),
    responses={422: {"model": ErrorList}, **CHANGE_RESPONSES, 404: {"model": Detail}},
)
async def edit_enrollment(enrollment_id: str, request: Request, user: Creator, service: ServiceDep) -> EnrollmentOut:
    """Change fields, with a required `audit_note`. A changed contact email rotates the form link and invites
    the new address (unless `"send_invitation": false`); refused with 409 once review has begun."""
    body = await json_object(request)
    send = body.pop("send_invitation", True)
    if not isinstance(send, bool):
        raise InvalidInput([FieldError(field="send_invitation", message="must be true or false")])
    return EnrollmentOut.of(await service.edit(enrollment_id, actor_of(user), body, send_invitation=send))


@router.post(
    "/{enrollment_id}/resend",
    response_model=EnrollmentOut,
    responses=CHANGE_RESPONSES,
    openapi_extra=body_schema(AuditNote, required=False),
)
async def resend_invitation(enrollment_id: str, request: Request, user: Creator, service: ServiceDep) -> EnrollmentOut:
    """A new form link (the old one dies) and a fresh deadline; revives an Expired enrollment to New."""
    body = await json_object(request, empty_ok=True)
    note = body.get("audit_note") or "invitation resent"
    return EnrollmentOut.of(await service.resend(enrollment_id, actor_of(user), note))


@router.delete("/{enrollment_id}", response_model=EnrollmentOut, responses=CHANGE_RESPONSES)
async def delete_enrollment(
    enrollment_id: str, user: Creator, service: ServiceDep, audit_note: Annotated[str, Query(max_length=1000)]
) -> EnrollmentOut:
    """Cancel the enrollment (status Cancelled); refused with 409 once review has begun."""
    return EnrollmentOut.of(await service.cancel(enrollment_id, actor_of(user), audit_note))


@router.post(
    "/{enrollment_id}/review/start",
    response_model=EnrollmentOut,
    responses=CHANGE_RESPONSES,
    openapi_extra=body_schema(AuditNote),
)
async def start_review(enrollment_id: str, request: Request, user: Reviewer, service: ServiceDep) -> EnrollmentOut:
    """Pending Review → In Review; edits and delete are locked from now on."""
    body = await json_object(request)
    return EnrollmentOut.of(await service.start_review(enrollment_id, actor_of(user), body.get("audit_note")))


@router.post(
    "/{enrollment_id}/review/approve",
    response_model=EnrollmentOut,
    responses=CHANGE_RESPONSES,
    openapi_extra=body_schema(AuditNote),
)
async def approve(enrollment_id: str, request: Request, user: Reviewer, service: ServiceDep) -> EnrollmentOut:
    """In Review → Approved: the member account starts (Active) and the contacts get a welcome."""
    body = await json_object(request)
    return EnrollmentOut.of(await service.approve(enrollment_id, actor_of(user), body.get("audit_note")))


@router.post(
    "/{enrollment_id}/review/reject",
    response_model=EnrollmentOut,
    responses=CHANGE_RESPONSES,
    openapi_extra=body_schema(Rejection),
)
async def reject(enrollment_id: str, request: Request, user: Reviewer, service: ServiceDep) -> EnrollmentOut:
    """In Review → Rejected, with a `reason` the contact is told."""
    body = await json_object(request)
    view = await service.reject(enrollment_id, actor_of(user), body.get("audit_note"), body.get("reason"))
    return EnrollmentOut.of(view)
