"""No form-link token reaches a log line, even the web server's access log."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from observability.logs import Redact, redact

TOKEN = "kWNNd3tWVgFWkwa6JPIZ3ggS3FIYdqzdNFAjCpRBKdQ"


def test_redact_hides_tokens_but_not_the_thank_you_page() -> None:
    assert redact(f'"GET /enroll/{TOKEN} HTTP/1.1" 200') == '"GET /enroll/<redacted> HTTP/1.1" 200'
    assert redact("GET /enroll/thanks") == "GET /enroll/thanks"


def test_the_filter_rewrites_arguments_and_message() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s %s", ("GET", f"/enroll/{TOKEN}"), None)
    Redact().filter(record)
    assert TOKEN not in record.getMessage()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_running_api_logs_no_token(tmp_path: Path, temporal: WorkflowEnvironment) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")},
        "ENROLL_DATA_DIR": str(tmp_path),
        "ENROLL_SECRET_KEY": "test-secret",
        "ENROLL_API_PORT": str(port),
        "ENROLL_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "api",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    response = await client.get(f"/enroll/{TOKEN}")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert response.status_code == 404
    finally:
        process.terminate()
        output, _ = await process.communicate()
    log = output.decode()
    assert "/enroll/<redacted>" in log
    assert TOKEN not in log
