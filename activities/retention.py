"""The retention run's I/O: one activity per kind of row, each deleting in bounded batches (store/retention.py)
until a batch comes back short, heartbeating the count so far. Idempotent: a retry deletes what is left past
the same cut, and carries on the count from its last heartbeat.

Events, webhook deliveries and webhook attempts are pruned by the outbox's activity, after the emails (they too are
what went out), at their own, shorter cut: `ENROLL_EVENTS_RETENTION` before the activity runs. So the daily
RetentionWorkflow, its schedule and every recorded history stay as they are. Their counts go to the activity's log,
not to the run's result (RetentionSwept has no field for them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import activity

from domain.models import RetentionCut, RetentionPruned
from domain.settings import Settings
from store import events, retention
from store.paging import now

Prune = Callable[[str, datetime, int], Awaitable[int]]


async def _drain(url: str, prune: Prune, before: datetime, batch: int, beat: Callable[[int], None]) -> int:
    """Batches of `prune` until one comes back short; `beat` heartbeats after each with the count so far."""
    deleted = 0
    while True:
        count = await prune(url, before, batch)
        deleted += count
        beat(deleted)
        if count < batch:
            return deleted


async def _prune_all(url: str, prune: Prune, cut: RetentionCut) -> RetentionPruned:
    details = activity.info().heartbeat_details
    before = int(details[0]) if details else 0
    deleted = await _drain(url, prune, cut.before, cut.batch, lambda n: activity.heartbeat(before + n))
    return RetentionPruned(deleted=before + deleted)


EVENT_PRUNES: tuple[tuple[str, Prune], ...] = (
    ("events", events.prune_events),
    ("webhook deliveries", retention.prune_webhook_deliveries),
    ("webhook attempts", retention.prune_webhook_attempts),
)


async def _prune_events(url: str, kept: timedelta, batch: int, reported: int) -> None:
    """Events, webhook deliveries and webhook attempts older than `kept`. Heartbeats carry `reported` (the
    outbox's count), so a retry after this point still answers the outbox's count."""
    before = now() - kept
    for label, prune in EVENT_PRUNES:
        deleted = await _drain(url, prune, before, batch, lambda _: activity.heartbeat(reported))
        activity.logger.info("retention: %d %s deleted", deleted, label)


class RetentionActivities:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url
        self.events_retention = settings.events_retention

    @activity.defn(name="prune_outbox")
    async def prune_outbox(self, cut: RetentionCut) -> RetentionPruned:
        """Emails that are over (never one still sending or retrying) with no news since the cut; then events and
        webhook deliveries and attempts past `ENROLL_EVENTS_RETENTION` (the module's docstring says why here)."""
        pruned = await _prune_all(self.url, retention.prune_outbox, cut)
        await _prune_events(self.url, self.events_retention, cut.batch, pruned.deleted)
        return pruned

    @activity.defn(name="prune_form_links")
    async def prune_form_links(self, cut: RetentionCut) -> RetentionPruned:
        """Form links dead since before the cut."""
        return await _prune_all(self.url, retention.prune_form_links, cut)

    @activity.defn(name="prune_user_links")
    async def prune_user_links(self, cut: RetentionCut) -> RetentionPruned:
        """Activation and reset links used, dead or expired since before the cut."""
        return await _prune_all(self.url, retention.prune_user_links, cut)

    @activity.defn(name="prune_sign_in_throttle")
    async def prune_sign_in_throttle(self, cut: RetentionCut) -> RetentionPruned:
        """Sign-in counters whose window and lock ended before the cut."""
        return await _prune_all(self.url, retention.prune_sign_in_throttle, cut)
