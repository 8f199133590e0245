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
    bounced: bool = False
    """The Bounced marker beside the status: the contact's address was refused for good."""
    bounce_reason: str | None = None

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


class EnrollmentPatch(BaseModel):
    """The body of PATCH /api/enrollments/{id}: the fields to change, why, and whether to invite a new contact."""

    audit_note: str
    send_invitation: bool = True
    service_end_date: date | None = None
    member_type: MemberType | None = None
    display_users_purchased: bool | None = None
    users_purchased: int | None = None
    organization_name: str | None = None
    corporate_contact_email: str | None = None
    reseller_account_id: str | None = None


class AuditNote(BaseModel):
    audit_note: str


class Rejection(BaseModel):
    audit_note: str
    reason: str


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace local `$ref`s by their definitions, so the schema stands alone inside the OpenAPI document."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


def body_schema(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """Document a JSON body that the route parses itself (so domain.rules can name every bad field)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": _inline(schema, defs)}},
        }
    }


def create_body_schema() -> dict[str, Any]:
    return body_schema(EnrollmentCreate)
