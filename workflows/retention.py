"""RetentionWorkflow: the daily pruning of rows that would otherwise grow for ever (sent emails, dead form links,
used or dead user links, old sign-in counters), and the Temporal Schedule that starts it (`retention`, visible
in the Temporal UI), created by the worker at start. The audit trail is never pruned."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from domain.models import RetentionCut, RetentionPruned, RetentionSweep, RetentionSwept
    from domain.settings import Settings
    from workflows import schedules
    from workflows.common import RETRY

SCHEDULE_ID = "retention"
RETENTION_HOUR = 4
"""The run starts daily at 04:00 UTC (an hour after the inactive administrators' sweep)."""
THROTTLE_KEPT = timedelta(days=1)
"""Sign-in counters are counters, not records: one whose window and lock ended a day ago is dropped."""
PRUNE_TIMEOUT = timedelta(minutes=30)
"""One kind's whole prune, batch after batch; a retry carries on where it stopped."""
PRUNE_HEARTBEAT = timedelta(minutes=1)
"""A batch heartbeats as it ends: one stuck longer than this is retried."""


@workflow.defn
class RetentionWorkflow:
    """One day's prune: each kind in its own activity, one after the other (never two big deletes at once)."""

    @workflow.run
    async def run(self, sweep: RetentionSweep) -> RetentionSwept:
        now = workflow.now()
        kept = RetentionCut(before=now - timedelta(days=sweep.days))
        throttle = RetentionCut(before=now - THROTTLE_KEPT)
        counts: dict[str, int] = {}
        steps = (
            ("outbox", "emails", RetentionActivities.prune_outbox, kept),
            ("form_links", "form links", RetentionActivities.prune_form_links, kept),
            ("user_links", "user links", RetentionActivities.prune_user_links, kept),
            ("sign_in_throttle", "sign-in counters", RetentionActivities.prune_sign_in_throttle, throttle),
        )
        done: list[str] = []
        for kind, label, prune, cut in steps:
            pruned: RetentionPruned = await workflow.execute_activity_method(
                prune,
                cut,
                activity_id=f"prune-{kind.replace('_', '-')}",
                start_to_close_timeout=PRUNE_TIMEOUT,
                heartbeat_timeout=PRUNE_HEARTBEAT,
                retry_policy=RETRY,
            )
            counts[kind] = pruned.deleted
            done.append(f"{pruned.deleted} {label}")
            workflow.set_current_details(f"deleted: {' · '.join(done)}")
        return RetentionSwept(**counts)


async def ensure_schedule(client: Client, settings: Settings) -> None:
    """Create the daily retention schedule, or bring an existing one up to the settings."""
    schedule = schedules.daily(
        RetentionWorkflow.run,
        RetentionSweep(days=settings.retention_days),
        schedule_id=SCHEDULE_ID,
        task_queue=settings.task_queue,
        hour=RETENTION_HOUR,
        summary=f"Retention: prune what ended over {settings.retention_days} days ago",
    )
    await schedules.ensure(client, SCHEDULE_ID, schedule)
