"""The back-office portal: server-rendered pages for CSMs, sales and reviewers (signed in with a cookie)."""

from __future__ import annotations

from fastapi import APIRouter

from starter.api.routes import (
    portal_account_changes,
    portal_accounts,
    portal_auth,
    portal_changes,
    portal_create,
    portal_enrollments,
    portal_review,
)

router = APIRouter(include_in_schema=False)
# portal_create first: its /accounts/new must win over /accounts/{account_id}.
for part in (
    portal_auth,
    portal_create,
    portal_enrollments,
    portal_changes,
    portal_review,
    portal_accounts,
    portal_account_changes,
):
    router.include_router(part.router)
