"""A worker killed (SIGKILL) in the middle of a credential import, on the dev server with real `enroll worker`
processes: the next worker carries on from the chunk that was running, and the batch ends with exactly the file's
keys imported, each once (its rejected key once in the report), none lost.

A killed worker's attempt would be retried at the end of its heartbeat timeout; the test fails it at once, as
that timeout would (`hand_back`), so the retry comes within seconds."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from domain.models import Actor, CredentialBatchStatus
from store import credentials as store
from store.db import dispose_all, transaction
from store.migrate import upgrade_to_head
from store.tables import Credential, CredentialRejection
from tests.credential_batches import PASSPHRASE, keys_value, make_pskc, secret_forms, secrets_keys_of
from tests.faults.kill_duplicates_test import hand_back
from tests.integration.worker_restart_test import worker_env
from tests.store.credentials_test import MAKER, accounts
from tests.support import make_settings
from workflows.credential_import import start_import

KEYS = 12_000
"""Twelve chunks: long enough to be killed in, twice."""
KILLS = 2
WORKER_READY = 60.0


def start_worker(
    env: dict[str, str], tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"worker-{len(started)}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "starter.cli", "worker"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    started.append(process)
    return process


async def test_a_worker_killed_mid_import_resumes_and_imports_each_key_exactly_once(
    tmp_path: Path, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    await accounts(url)
    settings = make_settings(
        tmp_path,
        database_url=url,
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=1,
        task_queue=task_queue,
    )
    env = {**worker_env(settings), "ENROLL_SECRETS_KEY": f"k1:{keys_value('k1')}"}
    made = make_pskc(KEYS, repeat=(KEYS - 1,))
    batch, _ = await store.create_batch(
        url,
        secrets_keys_of("k1"),
        account_id=MAKER,
        data=made.data,
        filename="kill.pskcxml",
        preshared_key=None,
        passphrase=PASSPHRASE,
        by=Actor(kind="admin", email="staff@provider.example"),
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        worker = start_worker(env, tmp_path, started)
        handle = await start_import(temporal.client, batch.id, task_queue)
        killed_at: list[int] = []
        handed_back: list[int] = []
        for kill in range(KILLS):
            # Kill once the import is under way, and again a few chunks later: mid-import each time.
            floor = (kill + 1) * 3000
            deadline = time.monotonic() + WORKER_READY + 60
            while True:
                view = await store.get_batch(url, batch.id)
                assert view is not None
                if view.processed >= floor:
                    break
                assert time.monotonic() < deadline, f"kill {kill + 1}: the import never reached {floor} keys"
                assert worker.poll() is None, (tmp_path / f"worker-{len(started) - 1}.log").read_text()[-3000:]
                await asyncio.sleep(0.05)
            assert view.processed < KEYS, "the kill must land mid-import"
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            killed_at.append(view.processed)
            dead = worker
            worker = start_worker(env, tmp_path, started)
            handed_back.append(await hand_back(temporal.client, [handle.id], dead))

        result = await asyncio.wait_for(handle.result(), timeout=180)
        assert result.status == CredentialBatchStatus.imported
        assert (result.processed, result.total) == (KEYS, KEYS)

        view = await store.get_batch(url, batch.id)
        assert view is not None
        assert (view.accepted, view.rejected) == (KEYS - 1, 1)
        async with transaction(url) as session:
            imported = Counter(
                (await session.execute(select(Credential.serial).where(Credential.batch_id == batch.id))).scalars()
            )
            indexes = list(await session.scalars(select(Credential.key_index).where(Credential.batch_id == batch.id)))
            rejected = list(await session.scalars(select(CredentialRejection.key_index)))
        assert set(imported) == set(made.secrets), "exactly the file's keys"
        assert max(imported.values()) == 1, "none twice"
        assert sorted(indexes + rejected) == list(range(KEYS)), "every key of the file imported or rejected, once"
        page, _ = await store.list_credentials(url, batch_id=batch.id, q="SN00000042")
        assert await store.credential_secret(url, secrets_keys_of("k1"), page[0].id) == made.secrets["SN00000042"]

        history = b"".join(event.SerializeToString() for event in (await handle.fetch_history()).events)
        for secret in list(made.secrets.values())[:200]:
            assert not any(form in history for form in secret_forms(secret))
        assert PASSPHRASE.encode() not in history
        logs = "".join((tmp_path / f"worker-{n}.log").read_text() for n in range(len(started)))
        assert PASSPHRASE not in logs and made.secrets["SN00000042"].hex() not in logs.lower()
        print(f"killed at {killed_at} of {KEYS} keys; attempts handed back {handed_back}; {len(started)} workers")
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        await dispose_all()
