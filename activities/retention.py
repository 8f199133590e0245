"""The retention run's I/O: one activity per kind of row, each deleting in bounded batches (store/retention.py)
until a batch comes back short, heartbeating the count so far. Idempotent: a retry deletes what is left past
the same cut, and carries on the count from its last heartbeat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio import activity

from domain.models import RetentionCut, RetentionPruned
from domain.settings import Settings
from store import retention

Prune = Callable[[str, datetime, int], Awaitable[int]]


async def _prune_all(url: str, prune: Prune, cut: RetentionCut) -> RetentionPruned:
    details = activity.info().heartbeat_details
    deleted = int(details[0]) if details else 0
    while True:
        batch = await prune(url, cut.before, cut.batch)
        deleted += batch
        activity.heartbeat(deleted)
        if batch < cut.batch:
            return RetentionPruned(deleted=deleted)


class RetentionActivities:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.effective_database_url

    @activity.defn(name="prune_outbox")
    async def prune_outbox(self, cut: RetentionCut) -> RetentionPruned:
        """Emails that are over (never one still sending or retrying) with no news since the cut."""
        return await _prune_all(self.url, retention.prune_outbox, cut)

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
