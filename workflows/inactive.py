"""InactiveAdministratorsWorkflow: the daily sweep of idle member administrators, and the Temporal Schedule that
starts it (`inactive-administrators`, visible in the Temporal UI), created by the worker at start."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.client import Client

with workflow.unsafe.imports_passed_through():
    from activities.administrators import AdministratorActivities
    from domain.models import InactiveSweep, InactiveSwept, InactiveWarning
    from domain.settings import Settings
    from workflows import schedules
    from workflows.common import EMAIL_TIMEOUT, RECORD_TIMEOUT, RETRY

SCHEDULE_ID = "inactive-administrators"
SWEEP_HOUR = 3
"""The sweep runs daily at 03:00 UTC."""


@workflow.defn
class InactiveAdministratorsWorkflow:
    """One day's sweep: disable the administrators idle for `days`, then warn, one email each, those a week
    short of it. A warning that fails for good is not retried tomorrow (the store marked it sent); the run
    still completes."""

    @workflow.run
    async def run(self, sweep: InactiveSweep) -> InactiveSwept:
        swept = await workflow.execute_activity_method(
            AdministratorActivities.sweep_inactive,
            sweep,
            activity_id="sweep",
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
        )
        workflow.set_current_details(f"{swept.disabled} disabled · {len(swept.warn)} to warn")
        results = await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    AdministratorActivities.send_inactive_warning,
                    InactiveWarning(user_id=user_id, days=sweep.days),
                    activity_id=f"warn-{user_id}",
                    start_to_close_timeout=EMAIL_TIMEOUT,
                    retry_policy=RETRY,
                )
                for user_id in swept.warn
            ),
            return_exceptions=True,
        )
        failed = sum(isinstance(result, BaseException) for result in results)
        workflow.set_current_details(
            f"{swept.disabled} disabled · {len(swept.warn) - failed} warned · {failed} warnings failed"
        )
        return swept


async def ensure_schedule(client: Client, settings: Settings) -> None:
    """Create the daily sweep's schedule, or bring an existing one up to the settings."""
    schedule = schedules.daily(
        InactiveAdministratorsWorkflow.run,
        InactiveSweep(days=settings.inactive_disable_days),
        schedule_id=SCHEDULE_ID,
        task_queue=settings.task_queue,
        hour=SWEEP_HOUR,
        summary=f"Inactive administrators: disable after {settings.inactive_disable_days} days",
    )
    await schedules.ensure(client, SCHEDULE_ID, schedule)
