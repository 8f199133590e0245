"""Form links, stored only as the SHA-256 of their token."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from sqlalchemy import Connection, bindparam, insert, select, update

from store.db import run, transaction
from store.paging import now
from store.tables import Enrollment, FormLink


class LinkState(StrEnum):
    unknown = "unknown"
    dead = "dead"
    live = "live"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_KILL_EARLIER = (
    update(FormLink)
    .where(
        FormLink.enrollment_id == bindparam("b_enrollment_id"),
        FormLink.version < bindparam("b_version"),
        FormLink.dead_at.is_(None),
    )
    .values(dead_at=bindparam("b_at"))
)
"""Kill every link of the enrollment older than `version` (`open_link`, `open_current_link`)."""


async def open_link(url: str, *, token: str, enrollment_id: str, version: int) -> None:
    """Make `token` the live link of `enrollment_id` (idempotent) and kill every older version."""
    digest = token_hash(token)
    async with transaction(url) as session:
        if await session.get(FormLink, digest) is None:
            session.add(FormLink(token_hash=digest, enrollment_id=enrollment_id, version=version, created_at=now()))
        await session.execute(_KILL_EARLIER, {"b_enrollment_id": enrollment_id, "b_version": version, "b_at": now()})


_LOCK_ENROLLMENT = (
    select(Enrollment.status, Enrollment.link_version).where(Enrollment.id == bindparam("b_id")).with_for_update()
)
_LINK_DEAD_AT = select(FormLink.dead_at).where(FormLink.token_hash == bindparam("b_digest"))
_ADD_LINK = insert(FormLink)
"""`open_current_link`'s statements, built once: it is on every invitation's path."""


async def open_current_link(url: str, *, token: str, enrollment_id: str, version: int) -> bool:
    """Open `token` as `version`'s link only while that version is the enrollment's current one and the
    enrollment is New; False (nothing opened) once it was cancelled, submitted, expired or re-linked.

    The enrollment's row is locked while this runs, so a close that records the new status first and then
    kills the links can never leave a link opened here alive.
    """
    digest = token_hash(token)

    def open_it(conn: Connection) -> bool:  # plain statements: on every invitation's path
        row = conn.execute(_LOCK_ENROLLMENT, {"b_id": enrollment_id}).first()
        if row is None or row.status != "New" or row.link_version != version:
            return False
        existing = conn.execute(_LINK_DEAD_AT, {"b_digest": digest}).first()
        if existing is not None:
            return existing.dead_at is None
        at = now()
        conn.execute(
            _ADD_LINK, {"token_hash": digest, "enrollment_id": enrollment_id, "version": version, "created_at": at}
        )
        conn.execute(_KILL_EARLIER, {"b_enrollment_id": enrollment_id, "b_version": version, "b_at": at})
        return True

    return await run(url, open_it)


async def keep_link_for_reminder(url: str, *, token: str, enrollment_id: str, version: int) -> bool:
    """Whether `version`'s link is still live; if so, make sure `token` (the link a reminder carries, made
    with today's secret) opens it too. A secret rotated since the invitation then breaks neither link."""
    digest = token_hash(token)
    async with transaction(url) as session:
        live = await session.scalar(
            select(FormLink.token_hash)
            .where(FormLink.enrollment_id == enrollment_id, FormLink.version == version, FormLink.dead_at.is_(None))
            .limit(1)
        )
        if live is None:
            return False
        if await session.get(FormLink, digest) is None:
            session.add(FormLink(token_hash=digest, enrollment_id=enrollment_id, version=version, created_at=now()))
        return True


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


async def first_open(url: str, token: str) -> bool:
    """Mark the link opened; True only for the first open (one conditional UPDATE, so two racing opens
    cannot both see "first")."""
    async with transaction(url) as session:
        result = await session.execute(
            update(FormLink)
            .where(FormLink.token_hash == token_hash(token), FormLink.opened_at.is_(None))
            .values(opened_at=now())
        )
        return bool(getattr(result, "rowcount", 0))
