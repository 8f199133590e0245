"""The audit trail: the timeline of every enrollment and account, plus the changes to users and API tokens.

Append-only: this module adds entries and reads them, nothing in the code changes or removes one, and on
PostgreSQL a trigger refuses UPDATE and DELETE (migration 0002). Enrollment and account events are written
with their read model (store.enrollments, store.accounts); user management writes here, in the transaction
of the change it records.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import Actor
from store.db import transaction
from store.paging import now
from store.tables import TimelineEntry


def append(
    session: AsyncSession, *, event: str, by: Actor, note: str, account_id: str | None = None, key: str | None = None
) -> None:
    """Add one user-management entry to the transaction of `session`: on a member account's timeline when it
    is about one of its administrators (`account_id`). `key` makes it idempotent (a retried activity)."""
    session.add(
        TimelineEntry(
            key=key or f"audit/{secrets.token_hex(12)}",
            enrollment_id=None,
            account_id=account_id,
            at=now(),
            event=event,
            actor=by.label[:254],
            note=note,
            source=by.source,
        )
    )


async def entries(url: str, *, after: int = 0, limit: int = 1000) -> list[TimelineEntry]:
    """The next `limit` entries in the order they were recorded, after the entry with id `after`."""
    query = select(TimelineEntry).where(TimelineEntry.id > after).order_by(TimelineEntry.id).limit(limit)
    async with transaction(url) as session:
        return list(await session.scalars(query))


async def user_entries(url: str, limit: int = 50) -> list[TimelineEntry]:
    """The newest entries of user management (users and tokens), newest first."""
    query = (
        select(TimelineEntry)
        .where(TimelineEntry.enrollment_id.is_(None), TimelineEntry.account_id.is_(None))
        .order_by(TimelineEntry.id.desc())
        .limit(limit)
    )
    async with transaction(url) as session:
        return list(await session.scalars(query))
