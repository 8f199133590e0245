"""The worker's daily Temporal Schedules (`inactive-administrators`, `retention`): one shape, created at worker start
idempotently."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)


def daily(
    run: Callable[[Any, Any], Awaitable[Any]],
    arg: Any,
    *,
    schedule_id: str,
    task_queue: str,
    hour: int,
    summary: str,
) -> Schedule:
    """A run of `run(arg)` every day at `hour`:00 UTC, its workflow id the schedule's; a run still going when the
    next is due makes it skip (a sweep that takes a day has nothing to gain from a second one beside it)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(run, arg, id=schedule_id, task_queue=task_queue, static_summary=summary),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(hour)], comment=f"daily at {hour:02d}:00 UTC")]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """Create the schedule, or bring an existing one up to `schedule` (its state stays: an operator may have
    paused it). Every worker calls this at start; whichever comes second updates to the same."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def updated(current: ScheduleUpdateInput) -> ScheduleUpdate:
            kept = current.description.schedule
            return ScheduleUpdate(
                schedule=dataclasses.replace(kept, action=schedule.action, spec=schedule.spec, policy=schedule.policy)
            )

        await client.get_schedule_handle(schedule_id).update(updated)
