"""`/account/administrators` (and `/accounts/{id}/administrators` for staff): a member account's administrators."""

from __future__ import annotations

from fastapi import APIRouter

from starter.portal.common import PortalRoute

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
