"""Who may do what: one table of permissions and the roles that hold them, and who may see which account.

Every role decision of the API, the portal and the CLI asks this module, and nothing else. Resource-level
rules come on top of the table: a reseller, customer or manufacturer user sees only its own member account (and
a reseller its customers'), in `may_see` and `may_see_rollup`; a member role manages the administrators of its
own account alone, in `may_manage_administrators`; a reseller (a partner, `customers.enroll`) sees, creates and
changes the enrollments of its own customers alone, in `enrollment_scope`, `may_see_enrollment` and
`partner_refusal`; a manufacturer user uploads token secrets to, and sees the credentials of, its own account
alone, and a customer user sees and checks the credentials assigned to its own, in `may_see_credential` (the
account rules of `may_see` come first: `starter.services.credentials`).
docs/access.md is the matrix of every endpoint and page against every role;
tests/security/access_matrix_test.py walks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from domain.models import MEMBER_ROLES, AccountView, Role


class Permission(StrEnum):
    enrollments_read = "enrollments.read"
    enrollments_create = "enrollments.create"
    enrollments_review = "enrollments.review"
    accounts_change = "accounts.change"
    accounts_suspend = "accounts.suspend"
    accounts_usage = "accounts.usage"
    users_manage = "users.manage"
    audit_export = "audit.export"
    mail_events = "mail.events"
    mail_health = "mail.health"
    administrators_manage = "administrators.manage"
    customers_enroll = "customers.enroll"
    credentials_read = "credentials.read"
    credentials_upload = "credentials.upload"
    credentials_manage = "credentials.manage"
    events_read = "events.read"
    webhooks_manage = "webhooks.manage"


@dataclass(frozen=True)
class Grant:
    roles: frozenset[Role]
    what: str
    """What the permission lets one do, as the refusal says it: "Your role (sales) may not <what>"."""


_STAFF = frozenset({Role.admin, Role.csm, Role.sales, Role.reviewer})
_CREATORS = frozenset({Role.admin, Role.csm, Role.sales})
_REVIEWERS = frozenset({Role.admin, Role.reviewer})
_ADMINS = frozenset({Role.admin})
MEMBERS = frozenset(MEMBER_ROLES.values())
"""The roles bound to a member account (`users.account_id`): its administrators (reseller, customer,
manufacturer)."""

PERMISSIONS: Mapping[Permission, Grant] = {
    Permission.enrollments_read: Grant(_STAFF, "see enrollments"),
    Permission.enrollments_create: Grant(_CREATORS, "create or change member account enrollments"),
    Permission.enrollments_review: Grant(_REVIEWERS, "review enrollments"),
    Permission.accounts_change: Grant(_CREATORS, "change member accounts"),
    Permission.accounts_suspend: Grant(_REVIEWERS, "suspend, reactivate or delete member accounts"),
    Permission.accounts_usage: Grant(_ADMINS, "report usage"),
    Permission.users_manage: Grant(_ADMINS, "manage users and their API tokens"),
    Permission.audit_export: Grant(_ADMINS, "export the audit trail"),
    Permission.mail_events: Grant(frozenset({Role.admin, Role.mail_events}), "report on sent emails"),
    Permission.mail_health: Grant(_ADMINS, "see the mail relay's replies"),
    Permission.administrators_manage: Grant(_CREATORS | MEMBERS, "manage the administrators of member accounts"),
    Permission.customers_enroll: Grant(
        frozenset({Role.reseller}), "enroll customers under its own reseller account and manage their enrollments"
    ),
    Permission.credentials_read: Grant(
        _STAFF | frozenset({Role.manufacturer, Role.customer}), "see or check token credentials"
    ),
    Permission.credentials_upload: Grant(
        _CREATORS | frozenset({Role.manufacturer}), "upload token secrets (PSKC files)"
    ),
    Permission.credentials_manage: Grant(_CREATORS, "assign token credentials to customers"),
    Permission.events_read: Grant(_ADMINS | frozenset({Role.reseller}), "read events"),
    Permission.webhooks_manage: Grant(_ADMINS | frozenset({Role.reseller}), "manage webhook endpoints"),
}


def roles_with(permission: Permission) -> frozenset[Role]:
    return PERMISSIONS[permission].roles


def allows(role: str, permission: Permission) -> bool:
    """Whether a user of `role` (as the store spells it) holds `permission`; an unknown role holds none."""
    return role in PERMISSIONS[permission].roles


def refusal(role: str, permission: Permission) -> str:
    return f"Your role ({role}) may not {PERMISSIONS[permission].what}."


STAFF = roles_with(Permission.enrollments_read)
CREATORS = roles_with(Permission.enrollments_create)
REVIEWERS = roles_with(Permission.enrollments_review)
PARTNERS = roles_with(Permission.customers_enroll)
"""The member roles that enroll customers of their own (a reseller's administrators): `may_see_enrollment`
and `partner_refusal` scope them to their own reseller account."""
ENROLLERS = CREATORS | PARTNERS
"""Who may create enrollments and change them before review: staff creators any, partners their customers'."""
ENROLLMENT_READERS = STAFF | PARTNERS
"""Who may see enrollments: staff all of them, partners their customers' (`may_see_enrollment`)."""


class Viewer(Protocol):
    """Whoever is looking: a user's role and, for reseller and customer users, their member account."""

    @property
    def role(self) -> str: ...

    @property
    def account_id(self) -> str | None: ...


def may_see(viewer: Viewer, account: AccountView) -> bool:
    """Staff: every account. A customer or manufacturer user: its own. A reseller user: its own and its
    customers'."""
    if viewer.role in STAFF:
        return True
    if not viewer.account_id:
        return False
    if viewer.role in (Role.customer, Role.manufacturer):
        return account.id == viewer.account_id
    if viewer.role == Role.reseller:
        return viewer.account_id in (account.id, account.reseller_account_id)
    return False


def may_see_rollup(viewer: Viewer, account_id: str) -> bool:
    """Staff: any reseller's roll-up. A reseller user: its own."""
    if viewer.role in STAFF:
        return True
    return viewer.role == Role.reseller and bool(viewer.account_id) and viewer.account_id == account_id


def may_manage_administrators(viewer: Viewer, account_id: str) -> bool:
    """Staff holding `administrators.manage`: any account's administrators. A member role (reseller,
    customer, manufacturer): its own account's alone; a reseller sees its customers' accounts but does not
    manage their administrators."""
    if viewer.role in MEMBERS:
        return bool(viewer.account_id) and viewer.account_id == account_id
    return allows(viewer.role, Permission.administrators_manage)


def may_see_credential(viewer: Viewer, account_id: str, assigned_account_id: str | None) -> bool:
    """Staff: every credential. A manufacturer user: those its own account imported (`account_id`). A customer
    user: those assigned to its own account. Nobody else (a reseller's users hold no credentials)."""
    if viewer.role in STAFF:
        return True
    if not viewer.account_id:
        return False
    if viewer.role == Role.manufacturer:
        return account_id == viewer.account_id
    if viewer.role == Role.customer:
        return assigned_account_id == viewer.account_id
    return False


def event_scope(viewer: Viewer) -> str | None:
    """The reseller account whose customers' events alone `viewer` sees (and its webhook endpoints receive): None
    for an admin (every event); a reseller user's own account ("" when it has none, which matches no event)."""
    if viewer.role == Role.admin:
        return None
    return viewer.account_id or ""


def enrollment_scope(viewer: Viewer) -> str | None:
    """The reseller account whose customers' enrollments alone `viewer` sees: None for staff (every
    enrollment); a partner's own account ("" when it has none, which matches no enrollment)."""
    if viewer.role in STAFF:
        return None
    return viewer.account_id or ""


def may_see_enrollment(viewer: Viewer, reseller_account_id: str | None) -> bool:
    """Staff: every enrollment. A partner (reseller user): those naming its own reseller account. Nobody else."""
    if viewer.role in STAFF:
        return True
    if viewer.role not in PARTNERS or not viewer.account_id:
        return False
    return reseller_account_id == viewer.account_id


ONLY_CUSTOMERS = "A reseller enrolls customers only: member_type must be customer."
OWN_RESELLER = (
    "A reseller enrolls customers under its own reseller account only: reseller_account_id must be {own} or left out."
)
NOT_ACTIVE = (
    "Your reseller account is {status}: it may not enroll customers or change their enrollments until it is "
    "Active again. Ask your provider's Client Services contact."
)
NO_ACCOUNT = (
    "Your user is not bound to an Active reseller account, so it may not enroll customers. Ask your provider's "
    "Client Services contact."
)


def partner_refusal(
    viewer: Viewer, *, member_type: str, reseller_account_id: str | None, account_status: str | None
) -> str | None:
    """Why a partner may not create (or keep, after an edit) an enrollment of `member_type` naming
    `reseller_account_id` while its own reseller account is in `account_status` (None: no such reseller
    account): the rule's sentence, or None when it may. Staff creators are not partners: always None."""
    if viewer.role not in PARTNERS:
        return None
    if not viewer.account_id or account_status is None:
        return NO_ACCOUNT
    if account_status != "Active":
        return NOT_ACTIVE.format(status=account_status)
    if member_type != "customer":
        return ONLY_CUSTOMERS
    if reseller_account_id not in (None, viewer.account_id):
        return OWN_RESELLER.format(own=viewer.account_id)
    return None
