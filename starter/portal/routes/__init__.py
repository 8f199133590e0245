"""The portal's pages, one module per area; their order does not matter (ids never match a fixed segment)."""

from __future__ import annotations

from fastapi import APIRouter

from starter.portal.routes import (
    account_changes,
    accounts,
    activation,
    admin,
    administrators,
    auth,
    changes,
    contact_form,
    create,
    credentials,
    enrollments,
    review,
    second_factor,
    tokens,
    webhooks,
)

router = APIRouter(include_in_schema=False)
for part in (
    auth,
    second_factor,
    tokens,
    activation,
    accounts,
    account_changes,
    administrators,
    create,
    enrollments,
    changes,
    review,
    admin,
    contact_form,
    credentials,
    webhooks,
):
    router.include_router(part.router)
