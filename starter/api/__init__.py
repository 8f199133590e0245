"""The JSON API under /api (and /healthz, and the remote codec): one router of the resources' routers."""

from __future__ import annotations

from fastapi import APIRouter

from starter.api.routes import accounts, audit, enrollments, health, mail_events

router = APIRouter()
for part in (health, enrollments, accounts, audit, mail_events):
    router.include_router(part.router)
