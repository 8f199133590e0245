"""The portal's users who enroll: staff creators, and partners (a reseller's administrators) for their own
customers. `domain.access` decides (`ENROLLERS`, `ENROLLMENT_READERS`); the service scopes a partner to its own
reseller account (a 404 for any other enrollment, a 403 naming the rule for what it may not create)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from domain.access import ENROLLERS, ENROLLMENT_READERS, PERMISSIONS, STAFF, Permission, enrollment_scope
from domain.models import AccountView, MemberType
from domain.settings import Settings
from starter.portal.session import NotForYourRole, NothingHereYet, PortalUser
from store import accounts as account_store
from store.tables import User


def _refuse(user: User, permission: Permission) -> NotForYourRole | NothingHereYet:
    """As `require_portal` refuses: a member user is shown its own page, staff the refusal page."""
    if user.role not in STAFF:
        return NothingHereYet(user)
    return NotForYourRole(user, PERMISSIONS[permission].what)


async def portal_enroller(user: PortalUser) -> User:
    if user.role not in ENROLLERS:
        raise _refuse(user, Permission.enrollments_create)
    return user


async def portal_enrollment_reader(user: PortalUser) -> User:
    if user.role not in ENROLLMENT_READERS:
        raise _refuse(user, Permission.enrollments_read)
    return user


PortalEnroller = Annotated[User, Depends(portal_enroller)]
PortalEnrollmentReader = Annotated[User, Depends(portal_enrollment_reader)]


def is_partner(user: User) -> bool:
    """A partner: its pages show its own reseller account's customers alone."""
    return enrollment_scope(user) is not None


async def partner_account(settings: Settings, user: User) -> AccountView | None:
    """A partner's own reseller account (None for staff, or while it has none)."""
    if not is_partner(user) or not user.account_id:
        return None
    account = await account_store.get_account(settings.effective_database_url, user.account_id[:64])
    return account if account is not None and account.member_type == MemberType.reseller else None
