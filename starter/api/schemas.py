"""The API's JSON shapes (the README's contract and docs/architecture.md), separate from the workflow's models.

Request bodies are the models FastAPI parses and documents. Each checks what it is sent with the rules every
way in shares (`domain.rules`, through `starter.services`), before anything is read or changed, and a broken rule
is a pydantic error that carries the rule's field and sentence (`refused`); `starter.api.body.JsonBodyRoute`
answers them as `422 {"errors": [{"field": ..., "message": ...}]}`, every bad field named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SkipValidation, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from domain.models import (
    AccountFields,
    AccountFieldsBase,
    AdministratorStatus,
    ContactForm,
    EnrollmentStatus,
    EnrollmentView,
    FieldError,
    MemberType,
    TimelineEvent,
)
from domain.rules import check_email
from starter.services.accounts import check_account_edit, check_order, check_usage
from starter.services.enrollments import new_account_fields
from starter.services.errors import InvalidInput, check_note

T = TypeVar("T")
RESEND_NOTE = "invitation resent"
"""The audit note of a resend that gives none."""

_free_mail: ContextVar[frozenset[str]] = ContextVar("free_mail")  # set around each API request; never defaulted


@contextlib.contextmanager
def free_mail_domains(domains: frozenset[str]) -> Iterator[None]:
    """The free-mail domains (`ENROLL_FREE_MAIL_DOMAINS`) the bodies parsed meanwhile refuse for contact
    addresses: the API's routes set them from the app's settings around each request (`JsonBodyRoute`)."""
    token = _free_mail.set(domains)
    try:
        yield
    finally:
        _free_mail.reset(token)


def refused(model: type[BaseModel], errors: list[FieldError]) -> ValidationError:
    """The rules' errors as the ValidationError of `model`: one error per field, its location the field's name
    and its message the rule's sentence, as is."""
    return ValidationError.from_exception_data(
        model.__name__,
        [
            InitErrorDetails(type=PydanticCustomError("rule", error.message), loc=(error.field,), input=None)
            for error in errors
        ],
    )


def _checked(model: type[BaseModel], check: Callable[[], T]) -> T:
    """What `check` (a service's check, raising InvalidInput) returns; its errors as `model`'s own."""
    try:
        return check()
    except InvalidInput as exc:
        raise refused(model, exc.errors) from None


# --- enrollments -------------------------------------------------------------------------------------------


class EnrollmentCreate(AccountFieldsBase):
    """The body of POST /api/enrollments: the new member account's fields, checked by `domain.rules`, which
    names every bad field (unknown ones too)."""

    model_config = ConfigDict(extra="forbid")

    display_users_purchased: bool = False

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return _checked(cls, lambda: new_account_fields(data, free_mail=_free_mail.get())).model_dump()

    def fields(self) -> AccountFields:
        return AccountFields.model_validate(self.model_dump())


class EnrollmentPatch(BaseModel):
    """The body of PATCH /api/enrollments/{id}: the fields to change, why, and whether to invite a new contact.

    `send_invitation` and `audit_note` are checked here. The fields to change are checked once merged with the
    enrollment's others (display users purchased and users purchased go together), so after a 404 for an
    enrollment that does not exist; any other field is named then as not a field of a member account."""

    model_config = ConfigDict(extra="allow")

    audit_note: str
    send_invitation: bool = True
    # Taken as sent (SkipValidation): the rules check them once merged.
    service_end_date: SkipValidation[date | None] = None
    member_type: SkipValidation[MemberType | None] = None
    display_users_purchased: SkipValidation[bool | None] = None
    users_purchased: SkipValidation[int | None] = None
    organization_name: SkipValidation[str | None] = None
    corporate_contact_email: SkipValidation[str | None] = None
    reseller_account_id: SkipValidation[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if not isinstance(data.get("send_invitation", True), bool):
            raise refused(cls, [FieldError(field="send_invitation", message="must be true or false")])
        return {**data, "audit_note": _checked(cls, lambda: check_note(data.get("audit_note")))}

    def changes(self) -> dict[str, Any]:
        """The fields to change, as sent (unknown ones too, for the rules to name)."""
        sent = {name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set}
        del sent["audit_note"]
        sent.pop("send_invitation", None)
        return sent | (self.model_extra or {})


class AuditNote(BaseModel):
    """Why: required, one line, at most 1,000 characters."""

    audit_note: str

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {"audit_note": _checked(cls, lambda: check_note(data.get("audit_note")))}


class ResendNote(BaseModel):
    """The optional body of a resend: why (empty or left out: "invitation resent")."""

    audit_note: str = RESEND_NOTE

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {"audit_note": _checked(cls, lambda: check_note(data.get("audit_note") or RESEND_NOTE))}


class Rejection(BaseModel):
    """A rejection: why (the audit note), and the reason the corporate contact is told."""

    audit_note: str
    reason: str

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        note = _checked(cls, lambda: check_note(data.get("audit_note")))
        return {"audit_note": note, "reason": _checked(cls, lambda: check_note(data.get("reason"), "reason"))}


# --- member accounts ---------------------------------------------------------------------------------------


class UsersPurchasedOrder(BaseModel):
    """An order added to the cumulative users purchased (`{"add": 100, "audit_note": ...}`: 1,000 + 100)."""

    add: int
    audit_note: str

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        add, note = _checked(cls, lambda: check_order(data.get("add"), data.get("audit_note")))
        return {"add": add, "audit_note": note}


class UsageCount(BaseModel):
    """Existing users as metered, and when they were counted (with a time zone; left out: now)."""

    users_existing: int
    reported_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        count, when = _checked(cls, lambda: check_usage(data.get("users_existing"), data.get("reported_at")))
        return {"users_existing": count, "reported_at": when}


class AccountEdit(BaseModel):
    """A member account's edit: the service end date (extending it revives an Expired account) and/or Display
    Users Purchased, and why. No other field can be changed."""

    model_config = ConfigDict(extra="forbid")

    service_end_date: date | None = None
    display_users_purchased: bool | None = None
    audit_note: str

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        end_date, display, note = _checked(cls, lambda: check_account_edit(data))
        named = {"service_end_date": end_date, "display_users_purchased": display}
        return {**{name: value for name, value in named.items() if name in data}, "audit_note": note}


# --- member administrators ---------------------------------------------------------------------------------


class AdministratorInvite(BaseModel):
    """The body of POST /api/accounts/{id}/administrators: the address to invite (`domain.rules.check_email`,
    free-mail domains refused as for the contacts). No other field."""

    model_config = ConfigDict(extra="forbid")

    email: str

    @model_validator(mode="before")
    @classmethod
    def _rules(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        email, problem = check_email(data.get("email"), _free_mail.get())
        if problem is not None:
            raise refused(cls, [FieldError(field="email", message=problem)])
        return {**data, "email": email}


# --- answers -----------------------------------------------------------------------------------------------


class _Enrollment(BaseModel):
    """What leads an enrollment's JSON, before its account fields."""

    id: str
    status: EnrollmentStatus


class EnrollmentItem(AccountFieldsBase, _Enrollment):
    """An enrollment in a list: its id and status, its account fields, and these. (The last base's fields come
    first, so the JSON keeps its order: id, status, the account fields, the rest.)"""

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


class AdministratorOut(BaseModel):
    """A member account's administrator: who, their status and its dates, whether their second factor is set
    up, and a bounce of their invitation. Never a token, password or second-factor key."""

    model_config = ConfigDict(from_attributes=True)

    user_id: str
    email: str
    name: str | None
    role: str
    account_id: str
    status: AdministratorStatus
    invited_at: datetime
    invited_by: str | None
    invitation_expires_at: datetime | None
    activated_at: datetime | None
    last_signed_in_at: datetime | None
    second_factor: bool
    bounce: str | None


class AdministratorList(BaseModel):
    items: list[AdministratorOut]
