"""A worker killed in the middle of the pipeline: a new one finishes the enrollment, with one email."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.settings import Settings
from starter.app import create_app
from starter.dev.mailsink import MailSink, list_messages
from store import outbox, users
from tests.integration.conftest import VALID, eventually, stack_settings

REPO = Path(__file__).resolve().parents[2]


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")}
    env.update(
        ENROLL_DATA_DIR=str(settings.data_dir),
        ENROLL_DATABASE_URL=settings.effective_database_url,
        ENROLL_TEMPORAL_ADDRESS=settings.effective_temporal_address,
        ENROLL_TASK_QUEUE=settings.task_queue,
        ENROLL_SMTP_HOST="127.0.0.1",
        ENROLL_SMTP_PORT=str(settings.smtp_port),
        ENROLL_SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else "",
        ENROLL_PUBLIC_URL=settings.public_url,
        ENROLL_WEBHOOKS_ALLOW_PRIVATE=str(settings.webhooks_allow_private).lower(),
    )
    return env


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def test_a_killed_worker_is_replaced_and_the_contact_gets_one_invitation(
    tmp_path: Path,
    database_url: str,
    temporal: WorkflowEnvironment,
    task_queue: str,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    # The mail server is down at first, so the worker is stuck retrying the invitation when it is killed.
    sink = MailSink(tmp_path / "mailbox", port=0)
    sink.start()
    sink.stop()
    settings = stack_settings(tmp_path, database_url, temporal, sink, task_queue)

    def start_worker() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "starter.cli", "worker"],
            cwd=tmp_path,
            env=worker_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        workers.append(process)
        return process

    url = settings.effective_database_url
    await users.add_user(url, email="csm@provider.example", role=Role.csm, password="correct horse battery")
    token = await users.create_token(url, "csm@provider.example")
    first = start_worker()
    app = create_app(settings)
    app.state.temporal = temporal.client
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
        response = await api.post("/api/enrollments", json=VALID, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        enrollment_id = response.json()["id"]

        key = f"enrollment-{enrollment_id}/invite-1"

        async def attempt_failed() -> bool:
            rows = await outbox.emails_of(url, enrollment_id=enrollment_id)
            return any(row.key == key and row.state == "retrying" for row in rows)

        await eventually(attempt_failed, timeout=30)
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        restarted = MailSink(tmp_path / "mailbox", port=settings.smtp_port)
        restarted.start()
        try:
            start_worker()

            async def invited() -> bool:
                body = (
                    await api.get(f"/api/enrollments/{enrollment_id}", headers={"Authorization": f"Bearer {token}"})
                ).json()
                return bool(body["invitation_sent_at"])

            await eventually(invited, timeout=120)
            assert len(list_messages(restarted.mailbox_dir)) == 1
            assert (await outbox.sent_result(url, key)) is not None
        finally:
            restarted.stop()
