"""The worker: runs EnrollmentWorkflow, MemberAccountWorkflow, AdministratorWorkflow, CredentialImportWorkflow,
WebhookEndpointWorkflow and the daily InactiveAdministratorsWorkflow and RetentionWorkflow and their activities on
the task queue (`ENROLL_TASK_QUEUE`; `workflows.names.TASK_QUEUE`, `enrollment`, by default), and creates the daily
runs' Temporal Schedules at start."""

from __future__ import annotations

import asyncio
import compileall
import inspect
import logging
import signal
from datetime import timedelta
from pathlib import Path

import pydantic
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.administrators import AdministratorActivities
from activities.credentials import CredentialActivities
from activities.enrollment import EnrollmentActivities
from activities.retention import RetentionActivities
from activities.webhooks import WebhookActivities
from domain.settings import Settings
from observability import logs, tracing
from observability.metrics import worker_runtime, zero_worker_counters
from store.migrate import upgrade_to_head
from workflows.account import MemberAccountWorkflow
from workflows.administrator import AdministratorWorkflow
from workflows.client import connect
from workflows.credential_import import CredentialImportWorkflow
from workflows.enrollment import EnrollmentWorkflow
from workflows.inactive import InactiveAdministratorsWorkflow, ensure_schedule
from workflows.retention import RetentionWorkflow
from workflows.retention import ensure_schedule as ensure_retention_schedule
from workflows.webhook_endpoint import WebhookEndpointWorkflow, ensure_endpoint_runs

# A payload that does not fit its model (say, an activity result) fails the run at once instead of retrying
# the workflow task forever. (A start input that does not decode never reaches workflow code; the API and
# CLI check every field before they start a run.)
WORKFLOW_FAILURE_TYPES: list[type[BaseException]] = [pydantic.ValidationError]
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
"""After SIGTERM, how long running activities get to finish before they are cancelled and retried elsewhere
(a pod's termination grace period must be longer: deploy/k8s)."""
WORKFLOW_CACHE = 250
"""Runs the worker keeps in memory between their workflow tasks (the sticky cache; the SDK's default is 1,000).
A sandboxed run costs about 0.3 MB here; with 400 the worker reached 293 MB at 10,000 waiting, so 250 keep it
well inside 300 MB however many enrollments wait (`bench/worker_memory.py`). A waiting enrollment wakes days
apart, and one not cached replays its short history on the next task; a create's runs stay cached for the few
seconds they are busy."""
ACTIVITY_SLOTS = 300
"""Activities one worker runs at once (the SDK's default is 100). Each enabled webhook endpoint keeps one waiting for
its next event (`deliver_new_events`, an idle coroutine that costs nothing but the slot), so the default would leave
fewer for the work that sends and writes as endpoints are added. Store and SMTP work is bounded by their own pools."""

NEW_RUN_POLLS = 1.0
"""How many of the worker's workflow-task polls may wait on the task queue itself, against its sticky queue, as a
ratio (the SDK's `nonsticky_to_sticky_poll_ratio`; its default 0.2 lets one of five). A run's first workflow task
always comes from the task queue, and a create's API call waits for it (the update that records the enrollment);
every later task of a cached run comes from the sticky queue. With one poll on the first, new creates queued behind
the runs in flight: at 20 creates in flight the POST's p99 was 1.1–1.4 s against a p50 of 0.3–0.45 s; with 1.0 it is
0.5–0.7 s, and throughput rose (`bench/pipeline.py`, docs/performance.md)."""


SANDBOXED = False
"""Whether `build_worker` runs workflows in the SDK's sandbox. The worker of `enroll worker` and `enroll up` does
not: the sandbox cost 25 of the worker's 68 ms of CPU per create, and 20 even with every module passed through
(docs/performance.md). The sandbox is a development-time net: at each workflow task it refuses what would not
replay (the clock, randomness, I/O) and gives each run fresh module globals. The test suite keeps that net:
`tests/conftest.py` sets this to True, so every workflow test, in-process stack and recorded-history replay runs
sandboxed and fails on such a call; `tests/replay` also replays every history unsandboxed, as production runs
it. The workflow modules keep no mutable module state (`tests/replay/runner_test.py` checks)."""


def workflow_runner() -> WorkflowRunner:
    """The runner `build_worker` gives the worker: see SANDBOXED."""
    return SandboxedWorkflowRunner() if SANDBOXED else UnsandboxedWorkflowRunner()


def compile_workflow_modules() -> None:
    """With the sandbox (SANDBOXED), the workflow modules are imported afresh for every run it starts or brings
    back into its cache. Without their bytecode on disk (an editable install, PYTHONDONTWRITEBYTECODE) each of those
    imports compiles the source again: a fifth of the worker's CPU per create (docs/performance.md). Write it once
    at start; a read-only install (which pip compiled already) is skipped quietly."""
    compileall.compile_dir(Path(inspect.getfile(EnrollmentWorkflow)).parent, quiet=2, maxlevels=0)


async def build_worker(settings: Settings, runtime: Runtime | None = None) -> Worker:
    """The worker; on `runtime` (which serves the metrics) when given. The tracing interceptor comes with the
    client."""
    if SANDBOXED:
        compile_workflow_modules()
    client = await connect(settings, runtime)
    if runtime is not None:
        zero_worker_counters(
            runtime,
            namespace=settings.temporal_namespace,
            task_queue=settings.task_queue,
            workflow_type=EnrollmentWorkflow.__name__,  # @workflow.defn and @activity.defn keep the Python names
            link_activity=EnrollmentActivities.send_invitation.__name__,
            mail_activity=EnrollmentActivities.send_email.__name__,
        )
    enrollment = EnrollmentActivities(settings)
    administrators = AdministratorActivities(settings)
    retention = RetentionActivities(settings)
    credentials = CredentialActivities(settings)
    webhooks = WebhookActivities(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[
            EnrollmentWorkflow,
            MemberAccountWorkflow,
            AdministratorWorkflow,
            InactiveAdministratorsWorkflow,
            RetentionWorkflow,
            CredentialImportWorkflow,
            WebhookEndpointWorkflow,
        ],
        activities=[
            enrollment.validate,
            enrollment.persist,
            enrollment.record,
            enrollment.send_invitation,
            enrollment.send_email,
            enrollment.close_form_links,
            enrollment.record_account,
            administrators.create_administrators,
            administrators.notify_skipped,
            administrators.send_administrator_invitation,
            administrators.notify_bounced,
            administrators.record_invitation,
            administrators.invitation_outcome,
            administrators.expire_invitation,
            administrators.sweep_inactive,
            administrators.send_inactive_warning,
            retention.prune_outbox,
            retention.prune_form_links,
            retention.prune_user_links,
            retention.prune_sign_in_throttle,
            credentials.prepare_batch,
            credentials.import_chunk,
            credentials.finish_batch,
            webhooks.deliver_new_events,
            webhooks.attempt_delivery,
            webhooks.record_endpoint_status,
            webhooks.notify_endpoint_disabled,
            webhooks.reschedule_deliveries,
        ],
        workflow_failure_exception_types=WORKFLOW_FAILURE_TYPES,
        workflow_runner=workflow_runner(),
        max_cached_workflows=WORKFLOW_CACHE,
        max_concurrent_activities=ACTIVITY_SLOTS,
        nonsticky_to_sticky_poll_ratio=NEW_RUN_POLLS,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def run_worker(settings: Settings) -> None:
    upgrade_to_head(settings.effective_database_url)
    runtime = worker_runtime(settings)
    worker = await build_worker(settings, runtime)
    await ensure_schedule(worker.client, settings)
    await ensure_retention_schedule(worker.client, settings)
    await ensure_endpoint_runs(worker.client, settings.effective_database_url, settings.task_queue)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log = logging.getLogger(__name__)
    if settings.metrics_port is not None:
        log.info("worker metrics on port %d at /metrics", settings.metrics_port)
    log.info("worker polling task queue %s", settings.task_queue)
    async with worker:
        await stop.wait()
        # SIGTERM: stop polling, give running activities `graceful_shutdown_timeout` to finish, then cancel them
        # (their retries run on another worker); the workflows' tasks are handed back to the server.
        grace = worker.config().get("graceful_shutdown_timeout")
        log.info("worker stopping: no new tasks; running activities get %s to finish", grace)


if __name__ == "__main__":
    settings = Settings()
    logs.configure(settings)
    tracing.configure(settings, "enroll-worker")
    asyncio.run(run_worker(settings))
