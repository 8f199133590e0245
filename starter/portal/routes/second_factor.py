"""The second factor: setting it up (`/me/second-factor`), asking for it at sign-in (`/signin/second-factor`),
recovery codes, and resetting it."""

from __future__ import annotations

from fastapi import APIRouter

from starter.portal.common import PortalRoute

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
