"""The JSON API under /api (and /healthz, /metrics, and the remote codec): one router of the resources' routers."""

from __future__ import annotations

from fastapi import APIRouter

from starter.api.routes import (
    accounts,
    administrators,
    audit,
    credentials,
    enrollments,
    events,
    health,
    mail_events,
    metrics,
    tokens,
    webhooks,
)

router = APIRouter()
for part in (
    health,
    metrics,
    enrollments,
    accounts,
    administrators,
    credentials,
    tokens,
    audit,
    mail_events,
    events,
    webhooks,
):
    router.include_router(part.router)
