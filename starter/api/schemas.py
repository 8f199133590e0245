"""The API's JSON shapes (DESIGN.md's HTTP API), separate from the workflow's models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from domain.models import (
    ContactForm,
    EnrollmentStatus,
    EnrollmentView,
    FieldError,
    MemberType,
    TimelineEvent,
)


class EnrollmentCreate(BaseModel):
    """The body of POST /api/enrollments (checked by domain.rules, which names every bad field)."""

    service_end_date: date
    member_type: MemberType
    display_users_purchased: bool = False
    users_purchased: int | None = None
    organization_name: str
    corporate_contact_email: str
    reseller_account_id: str | None = None


class EnrollmentItem(BaseModel):
    id: str
    status: EnrollmentStatus
    service_end_date: date
    member_type: MemberType
    display_users_purchased: bool
    users_purchased: int | None
    organization_name: str
    corporate_contact_email: str
    reseller_account_id: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    reminders_sent: int
    invitation_sent_at: datetime | None
    account_id: str | None

    @classmethod
    def of(cls, view: EnrollmentView) -> EnrollmentItem:
        return cls.model_validate(view.model_dump(exclude={"timeline", "form", "link_version"}))


class EnrollmentOut(EnrollmentItem):
    form: ContactForm | None
    timeline: list[TimelineEvent]

    @classmethod
    def of(cls, view: EnrollmentView) -> EnrollmentOut:
        return cls.model_validate(view.model_dump(exclude={"link_version"}))


class EnrollmentPage(BaseModel):
    items: list[EnrollmentItem]
    next_cursor: str | None


class ErrorList(BaseModel):
    errors: list[FieldError]


class Detail(BaseModel):
    detail: str


def create_body_schema() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EnrollmentCreate.model_json_schema()}},
        }
    }
