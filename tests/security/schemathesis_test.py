"""Schemathesis over our OpenAPI, against the real API and worker processes: no request gets a 5xx."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from starter.dev.mailsink import MailSink
from store import users
from store.migrate import upgrade_to_head
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]


async def test_no_generated_request_gets_a_server_error(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    await users.add_user(url, email="admin@provider.example", role=Role.admin, password="a long enough password")
    token = await users.create_token(url, "admin@provider.example")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")},
        "ENROLL_DATA_DIR": str(tmp_path),
        "ENROLL_DATABASE_URL": url,
        "ENROLL_SECRET_KEY": "schemathesis-secret-key-0123456789abcdef",
        "ENROLL_API_PORT": str(port),
        "ENROLL_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "ENROLL_TASK_QUEUE": task_queue,
        "ENROLL_SMTP_HOST": "127.0.0.1",
        "ENROLL_SMTP_PORT": str(mail_sink.port),
    }
    roles = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            role,
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for role in ("worker", "api")
    ]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(150):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        st = shutil.which("st") or str(Path(sys.executable).parent / "st")
        run = await asyncio.create_subprocess_exec(
            st,
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "15",
            "--seed",
            "7",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--no-color",
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks", "PYTHONPATH": str(REPO)},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(run.communicate(), timeout=600)
        report = output.decode()
        assert run.returncode == 0, report[-6000:]
        assert "No issues found" in report or "passed" in report.lower(), report[-3000:]
    finally:
        for process in roles:
            process.terminate()
            await process.wait()
