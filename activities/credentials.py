"""The credential import's I/O (CredentialImportWorkflow): read a batch's file once and stage its keys, import
them chunk by chunk, end the batch. Every argument and result is an id or a count: the file, its decryption
input and the secrets stay in the store, sealed, and never reach a payload or a log line."""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from credentials.pskc import BatchRejected, read_keys
from credentials.sealing import SecretsKeys
from domain.models import (
    CredentialBatchPrepared,
    CredentialBatchStatus,
    CredentialChunk,
    CredentialChunkImported,
    CredentialImportProgress,
)
from domain.settings import Settings
from store import credentials as store

log = logging.getLogger(__name__)
READING_HEARTBEAT = 5.0
"""Seconds between the heartbeats of `prepare_batch` while python-pskc reads the file (a thread)."""
NO_SECRETS_KEY = "NoSecretsKey"


def secrets_keys(settings: Settings) -> SecretsKeys:
    """The keys of `ENROLL_SECRETS_KEY` (the dev stack's own without it); a retryable `NoSecretsKey` error while
    this worker has none (an operator sets it and restarts the worker: the import carries on)."""
    keys = settings.secrets_keys
    if keys is None:
        raise ApplicationError(
            "ENROLL_SECRETS_KEY is not set on this worker: it cannot open the credential batches", type=NO_SECRETS_KEY
        )
    return keys


class CredentialActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url

    @activity.defn(name="prepare_batch")
    async def prepare_batch(self, batch_id: str) -> CredentialBatchPrepared:
        """Read the batch's file once (python-pskc: decryption, MACs, the signature, the policies) and stage its
        keys, sealed. A file-level problem rejects the batch with its reason (in the store, not in the answer).
        Answers the number of keys. Safe to run again: a batch staged already answers its count."""
        batch = await store.get_batch(self.url, batch_id)
        if batch is None:
            raise ApplicationError(f"no credential batch {batch_id}", type="UnknownBatch", non_retryable=True)
        if batch.status != CredentialBatchStatus.importing or batch.total is not None:
            return CredentialBatchPrepared(status=batch.status, total=batch.total or 0)
        keys = secrets_keys(self.settings)
        given = await store.import_input(self.url, keys, batch_id)
        if given is None:
            batch = await store.get_batch(self.url, batch_id)
            assert batch is not None
            return CredentialBatchPrepared(status=batch.status, total=batch.total or 0)
        try:
            async with heartbeating(READING_HEARTBEAT):
                entries = await asyncio.to_thread(
                    read_keys,
                    given.data,
                    preshared_key=given.preshared_key,
                    passphrase=given.passphrase,
                    max_bytes=self.settings.pskc_max_bytes,
                )
        except BatchRejected as rejected:
            await store.reject_batch(self.url, batch_id, rejected.reason)
            log.info("credential batch %s rejected as a whole", batch_id)
            return CredentialBatchPrepared(status=CredentialBatchStatus.rejected)
        del given
        total = await store.stage_keys(self.url, keys, batch_id, entries, progress=activity.heartbeat)
        log.info("credential batch %s: %d keys read and staged", batch_id, total)
        return CredentialBatchPrepared(status=CredentialBatchStatus.importing, total=total)

    @activity.defn(name="import_chunk")
    async def import_chunk(self, chunk: CredentialChunk) -> CredentialChunkImported:
        """Import the staged keys [start, start + count): one transaction, idempotent (a retry imports nothing
        twice)."""
        activity.heartbeat(chunk.start)
        done = await store.import_chunk(self.url, chunk.batch_id, chunk.start, chunk.count)
        activity.heartbeat(done.processed)
        return CredentialChunkImported(processed=done.processed, accepted=done.accepted)

    @activity.defn(name="finish_batch")
    async def finish_batch(self, batch_id: str) -> CredentialImportProgress:
        """End the batch (Imported unless rejected as a whole); delete its file, decryption input and staged keys."""
        view = await store.finish_batch(self.url, batch_id)
        log.info(
            "credential batch %s %s: %d of %s keys imported, %d rejected",
            batch_id,
            view.status.value.lower(),
            view.accepted,
            view.total,
            view.rejected,
        )
        return CredentialImportProgress(processed=view.processed, total=view.total, status=view.status)
