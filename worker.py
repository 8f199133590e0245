"""The worker: runs EnrollmentWorkflow and MemberAccountWorkflow and their activities on the task queue
(`ENROLL_TASK_QUEUE`; `workflows.names.TASK_QUEUE`, `enrollment`, by default)."""

from __future__ import annotations

import asyncio
import compileall
import inspect
import logging
import signal
from datetime import timedelta
from pathlib import Path

import pydantic
from temporalio.worker import Worker

from activities.enrollment import EnrollmentActivities
from domain.settings import Settings
from store.migrate import upgrade_to_head
from workflows.account import MemberAccountWorkflow
from workflows.client import connect
from workflows.enrollment import EnrollmentWorkflow

# A payload that does not fit its model (say, an activity result) fails the run at once instead of retrying
# the workflow task forever. (A start input that does not decode never reaches workflow code; the API and
# CLI check every field before they start a run.)
WORKFLOW_FAILURE_TYPES: list[type[BaseException]] = [pydantic.ValidationError]
WORKFLOW_CACHE = 250
"""Runs the worker keeps in memory between their workflow tasks (the sticky cache; the SDK's default is 1,000).
A sandboxed run costs about 0.3 MB here; with 400 the worker reached 293 MB at 10,000 waiting, so 250 keep it
well inside 300 MB however many enrollments wait (`bench/worker_memory.py`). A waiting enrollment wakes days
apart, and one not cached replays its short history on the next task; a create's runs stay cached for the few
seconds they are busy."""


def compile_workflow_modules() -> None:
    """The workflow sandbox imports the workflow modules afresh for every run it starts or brings back into its
    cache. Without their bytecode on disk (an editable install, PYTHONDONTWRITEBYTECODE) each of those imports
    compiles the source again: a fifth of the worker's CPU per create (docs/performance.md). Write it once at
    start; a read-only install (which pip compiled already) is skipped quietly."""
    compileall.compile_dir(Path(inspect.getfile(EnrollmentWorkflow)).parent, quiet=2, maxlevels=0)


async def build_worker(settings: Settings) -> Worker:
    compile_workflow_modules()
    client = await connect(settings)
    enrollment = EnrollmentActivities(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[EnrollmentWorkflow, MemberAccountWorkflow],
        activities=[
            enrollment.validate,
            enrollment.persist,
            enrollment.record,
            enrollment.send_invitation,
            enrollment.send_email,
            enrollment.close_form_links,
            enrollment.record_account,
        ],
        workflow_failure_exception_types=WORKFLOW_FAILURE_TYPES,
        max_cached_workflows=WORKFLOW_CACHE,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(settings: Settings) -> None:
    upgrade_to_head(settings.effective_database_url)
    worker = await build_worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logging.getLogger(__name__).info("worker polling task queue %s", settings.task_queue)
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(Settings()))
