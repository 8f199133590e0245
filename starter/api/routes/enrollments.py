"""/api/enrollments: create, list and read enrollments."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from domain.models import EnrollmentStatus, FieldError, MemberType
from starter.api.deps import Creator, ServiceDep, Staff, actor_of
from starter.api.schemas import (
    Detail,
    EnrollmentItem,
    EnrollmentOut,
    EnrollmentPage,
    ErrorList,
    create_body_schema,
)
from starter.service import InvalidInput
from store.enrollments import BadCursor

router = APIRouter(prefix="/api/enrollments", tags=["enrollments"])


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 422 that says what is wrong with it."""
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput([FieldError(field="body", message=f"is not valid JSON ({exc})")]) from exc
    if not isinstance(body, dict):
        raise InvalidInput([FieldError(field="body", message="must be a JSON object with the enrollment's fields")])
    return body


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollmentOut,
    openapi_extra=create_body_schema(),
    responses={422: {"model": ErrorList}, 409: {"model": Detail}, 403: {"model": Detail}},
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
