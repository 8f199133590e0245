"""Production roles started at the same moment on a fresh data dir (`enroll worker` and two `enroll api`): each
migrates the new SQLite store at start, and all of them come up and stay up."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from starter.dev.mailsink import MailSink
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


async def healthy(port: int) -> bool:
    """Whether the API on `port` answers /healthz with 200 within 30 seconds."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    return False


async def test_a_worker_and_two_apis_started_at_once_on_a_fresh_store_all_run(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> None:
    data_dir = tmp_path / "fresh"  # no store yet: every role finds it unmigrated
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")},
        "PYTHONPATH": str(ROOT),
        "ENROLL_DATA_DIR": str(data_dir),
        "ENROLL_SECRET_KEY": "roles-start-together-secret-0123456789abcdef",
        "ENROLL_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "ENROLL_TASK_QUEUE": task_queue,
        "ENROLL_SMTP_HOST": "127.0.0.1",
        "ENROLL_SMTP_PORT": str(mail_sink.port),
    }
    ports = [free_port(), free_port()]
    launches = [("worker", None), ("api", ports[0]), ("api", ports[1])]
    roles = await asyncio.gather(
        *(
            asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "starter.cli",
                role,
                env={**env, **({"ENROLL_API_PORT": str(port)} if port else {})},
                cwd=tmp_path,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            for role, port in launches
        )
    )
    try:
        assert await asyncio.gather(*(healthy(port) for port in ports)) == [True, True]
        await asyncio.sleep(1)  # the worker has migrated and connected by now, or died trying
        assert [process.returncode for process in roles] == [None, None, None]
    finally:
        for process in roles:
            if process.returncode is None:
                process.terminate()
        for process, (role, _) in zip(roles, launches, strict=True):
            _, err = await process.communicate()
            assert b"already exists" not in err, f"{role}: {err.decode()[-2000:]}"
