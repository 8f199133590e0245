"""The refusals every service raises and every way in answers: each carries the sentence a user can act on and
the HTTP status it maps to (`starter.app`); and the audit note's check, which every change asks for."""

from __future__ import annotations

from domain.models import FieldError
from domain.rules import check_text


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


class Gone(ServiceError):
    status = 410


class Unavailable(ServiceError):
    """Temporal is out of reach or too slow to answer: try again later, the request itself was fine."""

    status = 503


def duplicate_message(holder: str) -> str:
    """The Conflict for an organization name that an open enrollment or active account (`holder`) claims."""
    return (
        f"An open enrollment or active member account already exists for this organization "
        f"(enrollment {holder}); open it instead of creating another."
    )


def check_note(note: object, field: str = "audit_note") -> str:
    """An audit note: required, one line, at most 1,000 characters."""
    text, problem = check_text(note, maximum=1000)
    if problem:
        raise InvalidInput([FieldError(field=field, message=problem)])
    assert text is not None
    return text
