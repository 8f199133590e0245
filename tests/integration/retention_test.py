"""The retention Schedule on the real Temporal dev server: created once and kept (paused stays paused), and a
triggered run prunes exactly the rows past the retention, through a real worker, on the store."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from domain.models import RetentionSweep, RetentionSwept
from store import retention
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.integration.conftest import eventually
from tests.store.retention_test import remaining, seed, timeline_kept
from tests.support import make_settings
from worker import build_worker
from workflows.retention import SCHEDULE_ID, RetentionWorkflow, ensure_schedule


async def test_the_retention_schedule_is_created_once_and_prunes_what_is_past_it(
    temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    settings = make_settings(
        tmp_path,
        database_url=url,
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=1,
        task_queue="retention-test",
    )
    upgrade_to_head(url)
    kept = await seed(url)
    client = temporal.client
    handle = client.get_schedule_handle(SCHEDULE_ID)
    try:
        # Created once, then brought up to the settings at the next start, keeping an operator's pause.
        await ensure_schedule(client, settings.model_copy(update={"retention_days": 30}))
        created = (await handle.describe()).info.created_at
        await handle.pause(note="paused by an operator")
        await ensure_schedule(client, settings)
        described = await handle.describe()
        assert described.info.created_at == created
        assert described.schedule.state.paused
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == "RetentionWorkflow"
        (sweep,) = await client.data_converter.decode(action.args, [RetentionSweep])
        assert sweep == RetentionSweep(days=400)

        async def listed_once() -> bool:
            return [s.id async for s in await client.list_schedules()].count(SCHEDULE_ID) == 1

        await eventually(listed_once)

        await handle.unpause()
        async with await build_worker(settings):
            await handle.trigger()

            async def started() -> bool:
                return bool((await handle.describe()).info.recent_actions)

            await eventually(started)
            execution = (await handle.describe()).info.recent_actions[-1].action
            assert isinstance(execution, ScheduleActionExecutionStartWorkflow)
            run = client.get_workflow_handle_for(
                RetentionWorkflow.run, execution.workflow_id, run_id=execution.first_execution_run_id
            )
            swept = await run.result()
            metadata = await run.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert metadata.current_details == "deleted: 6 emails · 1 form links · 3 user links · 2 sign-in counters"
        assert swept == RetentionSwept(
            outbox=len(retention.PRUNABLE_EMAIL_STATES), form_links=1, user_links=3, sign_in_throttle=2
        )
        assert await remaining(url) == kept
        assert await timeline_kept(url)
    finally:
        await handle.delete()
        await dispose_all()
