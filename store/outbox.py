"""The outbox: one row per email, keyed by workflow id + activity id, checked before every send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from domain.models import EmailResult
from store.db import transaction
from store.enrollments import now
from store.tables import OutboxEmail


async def sent_result(url: str, key: str) -> EmailResult | None:
    """The earlier send under `key`, if one was recorded."""
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        if row is None or row.state != "sent" or row.sent_at is None:
            return None
        return EmailResult(sent_at=row.sent_at, message_id=row.message_id)


async def record_attempt(
    url: str,
    *,
    key: str,
    kind: str,
    enrollment_id: str | None,
    account_id: str | None,
    recipients: list[str],
    subject: str,
    message_id: str,
) -> None:
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        if row is None:
            session.add(
                OutboxEmail(
                    key=key,
                    kind=kind,
                    enrollment_id=enrollment_id,
                    account_id=account_id,
                    recipients=", ".join(recipients),
                    subject=subject,
                    message_id=message_id,
                    state="sending",
                    created_at=now(),
                )
            )


async def record_outcome(url: str, key: str, *, sent_at: datetime | None, error: str | None) -> None:
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        if row is None:
            return
        if sent_at is not None:
            row.state, row.sent_at, row.error = "sent", sent_at, None
        else:
            row.state, row.error = "failed", error


async def emails_of(url: str, *, enrollment_id: str) -> list[OutboxEmail]:
    async with transaction(url) as session:
        rows = await session.scalars(
            select(OutboxEmail).where(OutboxEmail.enrollment_id == enrollment_id).order_by(OutboxEmail.created_at)
        )
        return list(rows)
