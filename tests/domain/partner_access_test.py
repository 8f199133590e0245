"""domain.access: a partner (a reseller's administrator) sees and creates its own customers' enrollments only."""

from __future__ import annotations

from dataclasses import dataclass

from domain.access import (
    ENROLLERS,
    ENROLLMENT_READERS,
    NO_ACCOUNT,
    NOT_ACTIVE,
    ONLY_CUSTOMERS,
    OWN_RESELLER,
    STAFF,
    enrollment_scope,
    may_see_enrollment,
    partner_refusal,
)
from domain.models import Role


@dataclass(frozen=True)
class Who:
    role: str
    account_id: str | None = None


PARTNER = Who(Role.reseller, "r1")


def refusal(
    who: Who = PARTNER, member_type: str = "customer", reseller: str | None = None, status: str | None = "Active"
) -> str | None:
    return partner_refusal(who, member_type=member_type, reseller_account_id=reseller, account_status=status)


def test_only_resellers_are_partners_and_partners_are_not_staff() -> None:
    assert Role.reseller in ENROLLERS and Role.reseller in ENROLLMENT_READERS and Role.reseller not in STAFF
    for role in (Role.customer, Role.manufacturer, Role.mail_events):
        assert role not in ENROLLERS and role not in ENROLLMENT_READERS
    assert Role.reviewer in ENROLLMENT_READERS and Role.reviewer not in ENROLLERS


def test_the_scope_and_what_a_partner_sees() -> None:
    assert enrollment_scope(Who(Role.csm)) is None
    assert enrollment_scope(PARTNER) == "r1"
    assert enrollment_scope(Who(Role.reseller)) == ""  # bound to no account: sees nothing
    assert may_see_enrollment(Who(Role.reviewer), "r2") and may_see_enrollment(Who(Role.sales), None)
    assert may_see_enrollment(PARTNER, "r1")
    assert not may_see_enrollment(PARTNER, "r2") and not may_see_enrollment(PARTNER, None)
    assert not may_see_enrollment(Who(Role.reseller), None)
    assert not may_see_enrollment(Who(Role.customer, "r1"), "r1")


def test_each_rule_of_a_partners_creation() -> None:
    assert refusal() is None and refusal(reseller="r1") is None
    assert refusal(member_type="reseller") == ONLY_CUSTOMERS
    assert refusal(reseller="r2") == OWN_RESELLER.format(own="r1")
    assert refusal(status="Suspended") == NOT_ACTIVE.format(status="Suspended")
    assert refusal(status=None) == NO_ACCOUNT
    assert refusal(Who(Role.reseller)) == NO_ACCOUNT
    assert refusal(Who(Role.csm), member_type="reseller", reseller="r9", status=None) is None  # staff: no such rule
