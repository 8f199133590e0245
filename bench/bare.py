"""The bare leg `bench/pipeline.py` measures against: a workflow of three no-op activities, nothing else.

Kept apart and light: the workflow sandbox re-imports this module."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

BARE_TASK_QUEUE = "bench-bare"


@activity.defn(name="bench_noop")
async def noop(step: str) -> str:
    return step


@workflow.defn(name="BenchBareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        for step in ("validate", "persist", "invite"):
            await workflow.execute_activity(noop, step, activity_id=step, start_to_close_timeout=timedelta(seconds=30))
        return name
