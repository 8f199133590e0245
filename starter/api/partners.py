"""The API's users who enroll: staff creators, and partners (a reseller's administrators) for their own customers.

`domain.access` decides: `ENROLLERS` may create and change enrollments, `ENROLLMENT_READERS` may see them; the
service then scopes a partner to its own reseller account (`may_see_enrollment`, `partner_refusal`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from domain.access import ENROLLERS, ENROLLMENT_READERS, Permission, refusal
from starter.deps import CurrentUser
from store.tables import User

PARTNER = {"x-partner": True}
"""`openapi_extra` of an operation a reseller's token may call; its description starts "Partners (reseller
tokens) may call this."."""


async def enroller(user: CurrentUser) -> User:
    """Staff who create, or a partner: else 403 naming the permission (a customer or manufacturer user too)."""
    if user.role not in ENROLLERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal(user.role, Permission.enrollments_create))
    return user


async def enrollment_reader(user: CurrentUser) -> User:
    """Staff, or a partner (who sees its own customers' enrollments alone): else 403."""
    if user.role not in ENROLLMENT_READERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal(user.role, Permission.enrollments_read))
    return user


Enroller = Annotated[User, Depends(enroller)]
EnrollmentReader = Annotated[User, Depends(enrollment_reader)]
