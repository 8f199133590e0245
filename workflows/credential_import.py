"""CredentialImportWorkflow: one manufacturer's PSKC batch (`credential-batch-<id>`), from its file to its keys
in the inventory.

`prepare_batch` reads the file once and stages its keys (sealed, in the store), or rejects the whole batch; then
`import_chunk` imports `CHUNK` keys at a time, each chunk one idempotent activity (a worker killed mid-import
retries the chunk it had, which imports nothing twice); `finish_batch` ends the batch and deletes the file and
its decryption input. The `progress` query answers {processed, total, status}; the `CredentialBatchStatus`
search attribute says Importing, Imported or Rejected. Only ids and counts are in the history.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.credentials import CredentialActivities
    from domain.models import (
        CredentialBatchStatus,
        CredentialChunk,
        CredentialImport,
        CredentialImportProgress,
    )
    from workflows.common import RECORD_TIMEOUT, RETRY
    from workflows.names import CREDENTIAL_BATCH_STATUS, credential_batch_workflow_id

PROGRESS_QUERY = "progress"
CHUNK = 1000
"""Keys per `import_chunk` activity: one transaction of the store, about a second's work."""
PREPARE_TIMEOUT = timedelta(minutes=30)
"""Reading and staging a whole file (100,000 keys take about a minute)."""
PREPARE_HEARTBEAT = timedelta(minutes=1)
CHUNK_TIMEOUT = timedelta(minutes=5)
CHUNK_HEARTBEAT = timedelta(seconds=30)


@workflow.defn
class CredentialImportWorkflow:
    def __init__(self) -> None:
        self._progress = CredentialImportProgress()

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> CredentialImportProgress:
        return self._progress

    def _show(self, progress: CredentialImportProgress) -> None:
        self._progress = progress
        current = workflow.info().typed_search_attributes.get(CREDENTIAL_BATCH_STATUS)
        if current != progress.status.value:
            workflow.upsert_search_attributes([CREDENTIAL_BATCH_STATUS.value_set(progress.status.value)])
        total = "?" if progress.total is None else str(progress.total)
        workflow.set_current_details(f"{progress.status.value}: {progress.processed} of {total} keys")

    @workflow.run
    async def run(self, job: CredentialImport) -> CredentialImportProgress:
        total = job.total
        self._show(CredentialImportProgress(processed=job.start, total=total))
        if total is None:
            prepared = await workflow.execute_activity_method(
                CredentialActivities.prepare_batch,
                job.batch_id,
                activity_id="prepare",
                start_to_close_timeout=PREPARE_TIMEOUT,
                heartbeat_timeout=PREPARE_HEARTBEAT,
                retry_policy=RETRY,
            )
            if prepared.status != CredentialBatchStatus.importing:
                self._show(CredentialImportProgress(processed=0, total=prepared.total, status=prepared.status))
                return self._progress
            total = prepared.total
            self._show(CredentialImportProgress(processed=0, total=total))
        start = job.start
        while start < total:
            count = min(CHUNK, total - start)
            done = await workflow.execute_activity_method(
                CredentialActivities.import_chunk,
                CredentialChunk(batch_id=job.batch_id, start=start, count=count),
                activity_id=f"chunk-{start}",
                start_to_close_timeout=CHUNK_TIMEOUT,
                heartbeat_timeout=CHUNK_HEARTBEAT,
                retry_policy=RETRY,
            )
            start += count
            self._show(CredentialImportProgress(processed=max(done.processed, start), total=total))
            if start < total and workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(CredentialImport(batch_id=job.batch_id, total=total, start=start))
        finished = await workflow.execute_activity_method(
            CredentialActivities.finish_batch,
            job.batch_id,
            activity_id="finish",
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RETRY,
        )
        self._show(finished)
        return finished


async def start_import(
    client: Client, batch_id: str, task_queue: str
) -> WorkflowHandle[CredentialImportWorkflow, CredentialImportProgress]:
    """Start the batch's import, once: a run already open (or ended) for it is left as it is. Call it whenever a
    batch is Importing (a first upload, or the same file again after a crash between the store and the start)."""
    workflow_id = credential_batch_workflow_id(batch_id)
    try:
        return await client.start_workflow(
            CredentialImportWorkflow.run,
            CredentialImport(batch_id=batch_id),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(CREDENTIAL_BATCH_STATUS, CredentialBatchStatus.importing.value)]
            ),
            static_summary=f"Credential batch {batch_id}",
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(CredentialImportWorkflow.run, workflow_id)
