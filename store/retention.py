"""Retention: the rows that would otherwise grow for ever, pruned one bounded batch per transaction.

Each function deletes at most `limit` rows past the cut in its own short transaction and answers how many it
deleted; the caller (activities/retention.py) calls it again until a batch comes back short. A row another
transaction holds is skipped (PostgreSQL), so a prune never waits on a sign-in or a send, nor deadlocks with
one; the next day's run takes it. The audit trail (`timeline`) is append-only and is never pruned. Events
(`store.events.prune_events`), webhook deliveries and their attempts are kept `ENROLL_EVENTS_RETENTION`, a
shorter cut than the rest's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from domain.webhooks import DeliveryStatus
from store.db import transaction
from store.tables import FormLink, OutboxEmail, SignInThrottle, UserLink, WebhookAttempt, WebhookDelivery

BATCH = 1000
"""Rows deleted per transaction: a big table is never locked for long."""
PRUNABLE_EMAIL_STATES = ("sent", "delivered", "bounced", "complained", "failed", "dropped")
"""Emails that are over. `sending` and `retrying` are still on their way and are never pruned."""


async def delete_batch(url: str, key: InstrumentedAttribute[Any], past: ColumnElement[bool], limit: int) -> int:
    """Delete at most `limit` rows of `key`'s table that are `past`, skipping any another transaction holds."""
    batch = select(key).where(past).limit(limit).with_for_update(skip_locked=True)
    async with transaction(url) as session:
        result = await session.execute(delete(key.class_).where(key.in_(batch)))
        return int(result.rowcount)  # type: ignore[attr-defined]


async def prune_outbox(url: str, before: datetime, limit: int = BATCH) -> int:
    """Emails that are over and whose last news (created, sent, a provider's report) is older than `before`.

    The enrollment page's Emails tab lists what is left (an enrollment past the retention shows none); the
    timeline's entries about those emails (sent, bounced, complained) stay, in the audit trail.
    """
    past = and_(
        OutboxEmail.state.in_(PRUNABLE_EMAIL_STATES),
        OutboxEmail.created_at < before,
        or_(OutboxEmail.sent_at.is_(None), OutboxEmail.sent_at < before),
        or_(OutboxEmail.event_at.is_(None), OutboxEmail.event_at < before),
    )
    return await delete_batch(url, OutboxEmail.key, past, limit)


async def prune_form_links(url: str, before: datetime, limit: int = BATCH) -> int:
    """Form links that died before `before` (a live link is never pruned)."""
    return await delete_batch(url, FormLink.token_hash, FormLink.dead_at < before, limit)


async def prune_user_links(url: str, before: datetime, limit: int = BATCH) -> int:
    """Activation and reset links used, killed or expired before `before` (one still live is kept)."""
    past = or_(UserLink.used_at < before, UserLink.dead_at < before, UserLink.expires_at < before)
    return await delete_batch(url, UserLink.token_hash, past, limit)


async def prune_sign_in_throttle(url: str, before: datetime, limit: int = BATCH) -> int:
    """Sign-in counters whose window started, and whose lock (if any) ended, before `before`."""
    past = and_(
        SignInThrottle.window_started_at < before,
        or_(SignInThrottle.locked_until.is_(None), SignInThrottle.locked_until < before),
    )
    return await delete_batch(url, SignInThrottle.key, past, limit)


async def prune_webhook_deliveries(url: str, before: datetime, limit: int = BATCH) -> int:
    """Webhook deliveries made before `before` (`ENROLL_EVENTS_RETENTION` ago, as their events) that are over:
    one still Pending is on its way and is kept."""
    past = and_(WebhookDelivery.status != DeliveryStatus.pending.value, WebhookDelivery.created_at < before)
    return await delete_batch(url, WebhookDelivery.id, past, limit)


async def prune_webhook_attempts(url: str, before: datetime, limit: int = BATCH) -> int:
    """Webhook attempts made before `before` (`ENROLL_EVENTS_RETENTION` ago)."""
    return await delete_batch(url, WebhookAttempt.key, WebhookAttempt.at < before, limit)
