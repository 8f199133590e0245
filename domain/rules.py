"""The field rules of "Create New Member Account" (the README's field table), shared by the API, the portal
and `validate`.

Each check returns every broken rule at once, named by field, so a CSM fixes all of them in one go.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from datetime import date
from typing import Any

from email_validator import EmailNotValidError, validate_email

from domain.models import AccountFields, ContactForm, FieldError, MemberType

ACCOUNT_FIELDS = (
    "service_end_date",
    "member_type",
    "display_users_purchased",
    "users_purchased",
    "organization_name",
    "corporate_contact_email",
    "reseller_account_id",
)
MAX_EMAIL = 254
MAX_TEXT = 200
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


def organization_key(name: str) -> str:
    """Names that differ only in case, accents' composition or spacing are the same organization."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in text)


def check_text(value: Any, *, minimum: int = 1, maximum: int = MAX_TEXT) -> tuple[str | None, str | None]:
    """A required single-line text → (stripped value, None) or (None, message)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "is required"
    if not isinstance(value, str):
        return None, "must be text"
    if has_control_characters(value):
        return None, "must not contain control characters or line breaks"
    text = value.strip()
    if len(text) < minimum:
        return None, f"must be at least {minimum} characters"
    if len(text) > maximum:
        return None, f"must be at most {maximum} characters"
    return text, None


class MailDomains(frozenset[str]):
    """The free-mail domains (`Settings.free_mail`), carrying whether the relay can deliver to addresses with
    non-ASCII characters (`ENROLL_SMTP_UTF8`): every caller that passes `free_mail=` to a check passes both."""

    smtputf8: bool = True

    def __new__(cls, domains: Iterable[str] = (), *, smtputf8: bool = True) -> MailDomains:
        made = super().__new__(cls, domains)
        made.smtputf8 = smtputf8
        return made


NO_SMTPUTF8 = (
    "has non-ASCII characters, which our mail server cannot deliver to (ENROLL_SMTP_UTF8 is off): "
    "enter an address made of ASCII characters only"
)


def check_email(
    value: Any, free_mail: Collection[str] = (), *, smtputf8: bool | None = None
) -> tuple[str | None, str | None]:
    """A business email address: syntax only (no DNS look-up), no CR/LF, not on a free-mail domain, and only
    ASCII characters when the relay cannot carry others (`smtputf8` false: by default, what `free_mail` carries,
    see `MailDomains`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, "is required"
    if not isinstance(value, str):
        return None, "must be text"
    if has_control_characters(value):
        return None, "must not contain control characters or line breaks"
    if len(value.strip()) > MAX_EMAIL:
        return None, f"must be at most {MAX_EMAIL} characters"
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"is not a valid email address ({exc})"
    if checked.domain.lower() in free_mail:
        return None, f"must be a business address, not one on the free-mail domain {checked.domain.lower()}"
    if smtputf8 is None:
        smtputf8 = free_mail.smtputf8 if isinstance(free_mail, MailDomains) else True
    if not smtputf8 and not checked.normalized.isascii():
        return None, NO_SMTPUTF8
    return checked.normalized, None


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def parse_whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().replace(",", "").isascii() and value.strip().replace(",", "").isdigit():
        return int(value.strip().replace(",", ""))
    return None


def check_service_end_date(value: Any, today: date) -> tuple[date | None, str | None]:
    if value is None or value == "":
        return None, "is required"
    if isinstance(value, date):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            return None, "must be a date in the form YYYY-MM-DD"
    else:
        return None, "must be a date in the form YYYY-MM-DD"
    if parsed <= today:
        return None, f"must be after today ({today.isoformat()})"
    return parsed, None


def check_account_fields(
    raw: Mapping[str, Any], *, today: date, free_mail: Collection[str] = ()
) -> tuple[AccountFields | None, list[FieldError]]:
    """Check every rule of the create form; the fields, or every broken rule by field."""
    errors: list[FieldError] = []

    def fail(field: str, message: str) -> None:
        errors.append(FieldError(field=field, message=message))

    for unknown in sorted(set(raw) - set(ACCOUNT_FIELDS)):
        fail(unknown, "is not a field of a member account")

    end_date, problem = check_service_end_date(raw.get("service_end_date"), today)
    if problem:
        fail("service_end_date", problem)

    member_type: MemberType | None = None
    raw_type = raw.get("member_type")
    if raw_type in (None, ""):
        fail("member_type", "is required")
    elif not isinstance(raw_type, str) or raw_type not in set(MemberType):
        fail("member_type", "must be one of customer, reseller, manufacturer")
    else:
        member_type = MemberType(raw_type)

    display: bool | None = False
    raw_display = raw.get("display_users_purchased")
    if raw_display is None:
        if member_type == MemberType.customer:
            fail("display_users_purchased", "is required for a customer (yes or no)")
    else:
        display = parse_bool(raw_display)
        if display is None:
            fail("display_users_purchased", "must be yes or no")
        elif display and member_type not in (None, MemberType.customer):
            fail("display_users_purchased", "applies to customers only; choose no for this member type")

    users: int | None = None
    raw_users = raw.get("users_purchased")
    if display:
        if raw_users in (None, ""):
            fail("users_purchased", "is required when Display Users Purchased is yes")
        else:
            users = parse_whole_number(raw_users)
            if users is None:
                fail("users_purchased", "must be a whole number")
            elif users < 1:
                users = None
                fail("users_purchased", "must be at least 1")
            elif users > 1_000_000_000:
                users = None
                fail("users_purchased", "must be at most 1,000,000,000")
    elif raw_users not in (None, ""):
        fail("users_purchased", "must be left empty unless Display Users Purchased is yes")

    name, problem = check_text(raw.get("organization_name"), minimum=2, maximum=200)
    if problem:
        fail("organization_name", problem)

    email, problem = check_email(raw.get("corporate_contact_email"), free_mail)
    if problem:
        fail("corporate_contact_email", problem)

    reseller: str | None = None
    raw_reseller = raw.get("reseller_account_id")
    if raw_reseller not in (None, ""):
        if not isinstance(raw_reseller, str) or not _ID.match(raw_reseller.strip()):
            fail("reseller_account_id", "must be a member account id")
        elif member_type not in (None, MemberType.customer):
            fail("reseller_account_id", "applies to customers only")
        else:
            reseller = raw_reseller.strip()

    if errors:
        return None, errors
    assert end_date and member_type and name and email and display is not None
    return (
        AccountFields(
            service_end_date=end_date,
            member_type=member_type,
            display_users_purchased=display,
            users_purchased=users,
            organization_name=name,
            corporate_contact_email=email,
            reseller_account_id=reseller,
        ),
        [],
    )


CONTACT_FORM_TEXT = (
    "corporate_contact_name",
    "corporate_contact_phone",
    "technical_contact_name",
    "technical_contact_phone",
    "billing_contact_name",
    "address_line1",
    "city",
    "postal_code",
    "country",
)
CONTACT_FORM_EMAILS = ("technical_contact_email", "billing_contact_email")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{6,30}$")


def check_contact_form(
    raw: Mapping[str, Any], *, free_mail: Collection[str] = ()
) -> tuple[ContactForm | None, list[FieldError]]:
    """Check the contact's enrollment form; the form, or every broken rule by field."""
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for field in CONTACT_FORM_TEXT:
        text, problem = check_text(raw.get(field), maximum=MAX_TEXT)
        if problem:
            errors.append(FieldError(field=field, message=problem))
        elif field.endswith("_phone") and not (_PHONE.match(text or "") and sum(c.isdigit() for c in text or "") >= 6):
            errors.append(FieldError(field=field, message="must be a phone number (digits, spaces, + ( ) - .)"))
        else:
            values[field] = text
    for field in CONTACT_FORM_EMAILS:
        email, problem = check_email(raw.get(field), free_mail)
        if problem:
            errors.append(FieldError(field=field, message=problem))
        else:
            values[field] = email
    if parse_bool(raw.get("accept_terms")) is not True:
        errors.append(FieldError(field="accept_terms", message="must be accepted to complete the enrollment"))
    else:
        values["accept_terms"] = True
    if errors:
        return None, errors
    return ContactForm(**values), []
