"""Real `enroll worker` processes for the fault tests that stop or kill one (SIGTERM, SIGKILL), and the stack
around them: the store on SQLite, the session's dev server, an API in process, and a CSM's token."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.settings import Settings
from starter.app import create_app
from store import users
from store.db import dispose_all
from store.migrate import upgrade_to_head
from tests.integration.worker_restart_test import worker_env
from tests.support import make_settings


class Workers:
    """`enroll worker` processes, one at a time, each logging to its own file."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "starter.cli", "worker"],
            cwd=self.tmp_path,
            env=worker_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def log(self, process: subprocess.Popen[bytes] | int) -> str:
        """The output of a worker started here (the process, or its index)."""
        index = process if isinstance(process, int) else self.started.index(process)
        return (self.tmp_path / f"worker-{index}.log").read_text()

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@contextlib.asynccontextmanager
async def worker_stack(
    tmp_path: Path, temporal: WorkflowEnvironment, smtp_port: int, task_queue: str, **extra: Any
) -> AsyncIterator[tuple[Workers, httpx.AsyncClient, dict[str, str]]]:
    """(the workers, the API, a CSM's bearer header); no worker is started yet, and every one is killed after."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    settings = make_settings(
        tmp_path,
        database_url=url,
        temporal_address=temporal.client.service_client.config.target_host,
        smtp_port=smtp_port,
        task_queue=task_queue,
        **extra,
    )
    await users.add_user(url, email="csm@provider.example", role=Role.csm, password="correct horse battery")
    auth = {"Authorization": f"Bearer {await users.create_token(url, 'csm@provider.example')}"}
    app = create_app(settings)
    app.state.temporal = temporal.client
    workers = Workers(settings, tmp_path)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
            yield workers, api, auth
    finally:
        workers.stop_all()
        await dispose_all()
