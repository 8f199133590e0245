"""`/api/accounts/{id}/administrators`: a member account's administrators, listed, invited, resent, disabled,
enabled and unlocked (docs/access.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/accounts", tags=["administrators"])
