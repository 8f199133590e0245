"""Form links, stored only as the SHA-256 of their token."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from sqlalchemy import update

from store.db import transaction
from store.enrollments import now
from store.tables import FormLink


class LinkState(StrEnum):
    unknown = "unknown"
    dead = "dead"
    live = "live"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_link(url: str, *, token: str, enrollment_id: str, version: int) -> None:
    """Make `token` the live link of `enrollment_id` (idempotent) and kill every older version."""
    digest = token_hash(token)
    async with transaction(url) as session:
        if await session.get(FormLink, digest) is None:
            session.add(FormLink(token_hash=digest, enrollment_id=enrollment_id, version=version, created_at=now()))
        await session.execute(
            update(FormLink)
            .where(FormLink.enrollment_id == enrollment_id, FormLink.version < version, FormLink.dead_at.is_(None))
            .values(dead_at=now())
        )


async def kill_links(url: str, enrollment_id: str) -> None:
    async with transaction(url) as session:
        await session.execute(
            update(FormLink)
            .where(FormLink.enrollment_id == enrollment_id, FormLink.dead_at.is_(None))
            .values(dead_at=now())
        )


async def resolve(url: str, token: str) -> tuple[LinkState, str | None, int]:
    """What `token` opens: (state, enrollment id, link version); unknown tokens reveal nothing."""
    if not token or len(token) > 128:
        return LinkState.unknown, None, 0
    async with transaction(url) as session:
        link = await session.get(FormLink, token_hash(token))
        if link is None:
            return LinkState.unknown, None, 0
        if link.dead_at is not None:
            return LinkState.dead, link.enrollment_id, link.version
        return LinkState.live, link.enrollment_id, link.version
