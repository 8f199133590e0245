"""Links from emails to a user: an administrator's activation (`/activate/<token>`), and a forgotten password
(`/signin/forgot` → `/reset/<token>`). Scanner-safe: a GET only shows, the POST from that page consumes."""

from __future__ import annotations

from fastapi import APIRouter

from starter.portal.common import PortalRoute

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
