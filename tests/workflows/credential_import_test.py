"""CredentialImportWorkflow on the time-skipping test server with its real activities against SQLite and files
made by python-pskc: a batch imported chunk by chunk with its key-level rejections, a batch rejected as a whole,
the `progress` query and the `CredentialBatchStatus` search attribute, and no secret anywhere in the history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.credentials import CredentialActivities
from domain.models import Actor, CredentialBatchStatus, CredentialImportProgress, CredentialState
from domain.settings import Settings
from store import credentials as store
from store.db import dispose_all, transaction
from store.migrate import upgrade_to_head
from store.tables import CredentialBatch
from tests.credential_batches import PASSPHRASE, PRESHARED, keys_value, make_pskc, secret_forms, secrets_keys_of
from tests.store.credentials_test import MAKER, accounts
from tests.support import make_settings
from workflows.credential_import import PROGRESS_QUERY, CredentialImportWorkflow, start_import
from workflows.names import CREDENTIAL_BATCH_STATUS, credential_batch_workflow_id

KEYS = secrets_keys_of("k1")
STAFF = Actor(kind="admin", email="staff@provider.example")


@pytest_asyncio.fixture
async def setup(tmp_path: Path, time_skipping: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Settings]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    await accounts(url)
    settings = make_settings(
        tmp_path,
        database_url=url,
        temporal_address="127.0.0.1:1",
        smtp_port=1,
        task_queue=task_queue,
        secrets_key=f"k1:{keys_value('k1')}",
    )
    activities = CredentialActivities(settings)
    async with Worker(
        time_skipping.client,
        task_queue=task_queue,
        workflows=[CredentialImportWorkflow],
        activities=[activities.prepare_batch, activities.import_chunk, activities.finish_batch],
    ):
        yield settings
    await dispose_all()


async def upload(settings: Settings, data: bytes, **decryption: object) -> store.BatchView:
    view, _ = await store.create_batch(
        settings.effective_database_url,
        KEYS,
        account_id=MAKER,
        data=data,
        filename="batch.pskcxml",
        preshared_key=decryption.get("preshared_key"),  # type: ignore[arg-type]
        passphrase=decryption.get("passphrase"),  # type: ignore[arg-type]
        by=STAFF,
    )
    return view


async def history_bytes(client: Client, workflow_id: str) -> bytes:
    """The whole history as the server keeps it (protobuf): every payload's bytes as they were sent."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


async def test_a_batch_imports_chunk_by_chunk_with_its_key_level_rejections_and_no_secret_in_its_history(
    setup: Settings, time_skipping: WorkflowEnvironment
) -> None:
    url = setup.effective_database_url
    made = make_pskc(2500, repeat=(2400,), short=(5,))  # three chunks; one serial repeated, one secret too short
    batch = await upload(setup, made.data, passphrase=PASSPHRASE)
    handle = await start_import(time_skipping.client, batch.id, setup.task_queue)
    assert handle.id == credential_batch_workflow_id(batch.id) == f"credential-batch-{batch.id}"
    again = await start_import(time_skipping.client, batch.id, setup.task_queue)
    assert again.id == handle.id
    result = await handle.result()

    assert result == CredentialImportProgress(processed=2500, total=2500, status=CredentialBatchStatus.imported)
    assert await handle.query(CredentialImportWorkflow.progress) == result
    assert (await handle.query(PROGRESS_QUERY))["processed"] == 2500, "by its name, as the API asks it"
    described = await handle.describe()
    assert described.typed_search_attributes.get(CREDENTIAL_BATCH_STATUS) == "Imported"
    assert (await start_import(time_skipping.client, batch.id, setup.task_queue)).id == handle.id, "ended: left be"

    view = await store.get_batch(url, batch.id)
    assert view is not None
    assert (view.status, view.total, view.processed, view.accepted, view.rejected) == (
        CredentialBatchStatus.imported,
        2500,
        2500,
        2498,
        2,
    )
    report = await store.batch_rejections(url, batch.id)
    assert [(r.key_index, r.serial) for r in report] == [(5, "SN00000005"), (2400, "SN00000000")]
    seen: set[str] = set()
    cursor = None
    while True:
        page, cursor = await store.list_credentials(url, batch_id=batch.id, limit=200, cursor=cursor)
        seen.update(c.serial for c in page)
        assert all(c.state == CredentialState.available for c in page)
        if cursor is None:
            break
    assert seen == set(made.secrets) - {"SN00000005"}
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch.id)
        assert row is not None and row.file_sealed is None and row.decryption_sealed is None

    history = await history_bytes(time_skipping.client, handle.id)
    assert b"chunk-2000" in history, "the history is the raw one, payloads and all"
    for serial, secret in made.secrets.items():
        for form in secret_forms(secret):
            assert form not in history, f"a form of {serial}'s secret is in the workflow history"
    assert PASSPHRASE.encode() not in history
    assert made.data[-400:] not in history and b"CipherValue" not in history


async def test_the_wrong_passphrase_rejects_the_whole_batch_with_its_reason(
    setup: Settings, time_skipping: WorkflowEnvironment
) -> None:
    url = setup.effective_database_url
    made = make_pskc(20)
    batch = await upload(setup, made.data, passphrase="not the passphrase")
    handle = await start_import(time_skipping.client, batch.id, setup.task_queue)
    result = await handle.result()
    assert result.status == CredentialBatchStatus.rejected
    assert (await handle.describe()).typed_search_attributes.get(CREDENTIAL_BATCH_STATUS) == "Rejected"
    view = await store.get_batch(url, batch.id)
    assert view is not None and view.status == CredentialBatchStatus.rejected and view.accepted == 0
    assert view.reason is not None and "passphrase" in view.reason
    assert (await store.list_credentials(url, account_id=MAKER))[0] == []
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch.id)
        assert row is not None and row.file_sealed is None and row.decryption_sealed is None
    history = await history_bytes(time_skipping.client, handle.id)
    assert b"not the passphrase" not in history and view.reason.encode() not in history


async def test_a_pre_shared_key_batch_imports_and_its_key_stays_out_of_the_history(
    setup: Settings, time_skipping: WorkflowEnvironment
) -> None:
    made = make_pskc(30, preshared_key=PRESHARED, prefix="PS")
    batch = await upload(setup, made.data, preshared_key=PRESHARED)
    handle = await start_import(time_skipping.client, batch.id, setup.task_queue)
    assert (await handle.result()).status == CredentialBatchStatus.imported
    view = await store.get_batch(setup.effective_database_url, batch.id)
    assert view is not None and view.accepted == 30
    history = await history_bytes(time_skipping.client, handle.id)
    assert not any(form in history for form in secret_forms(PRESHARED))
