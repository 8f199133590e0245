"""No form-link token reaches a log line, even the web server's access log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from domain.settings import Settings
from observability.logs import Redact, formatter
from observability.redaction import redact
from tests.support import free_port

TOKEN = "kWNNd3tWVgFWkwa6JPIZ3ggS3FIYdqzdNFAjCpRBKdQ"


def test_redact_hides_tokens_but_not_the_thank_you_page() -> None:
    assert redact(f'"GET /enroll/{TOKEN} HTTP/1.1" 200') == '"GET /enroll/<redacted> HTTP/1.1" 200'
    assert redact("GET /enroll/thanks") == "GET /enroll/thanks"


def test_redact_hides_activation_and_reset_tokens() -> None:
    assert redact(f"POST /activate/{TOKEN} HTTP/1.1") == "POST /activate/<redacted> HTTP/1.1"
    assert redact(f"GET /reset/{TOKEN}?x=1") == "GET /reset/<redacted>?x=1"


def test_the_filter_rewrites_arguments_and_message() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s %s", ("GET", f"/enroll/{TOKEN}"), None)
    Redact().filter(record)
    assert TOKEN not in record.getMessage()


def test_addresses_are_redacted_wherever_they_appear() -> None:
    reply = "550 5.1.1 <pat.jones+x@acme.example>: Recipient address rejected"
    assert redact(reply) == "550 5.1.1 <<email>>: Recipient address rejected"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_the_running_api_logs_no_token(tmp_path: Path, temporal: WorkflowEnvironment, log_format: str) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENROLL_")},
        "ENROLL_DATA_DIR": str(tmp_path),
        "ENROLL_SECRET_KEY": "logs-test-secret-key-0123456789abcdef",
        "ENROLL_API_PORT": str(port),
        "ENROLL_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "ENROLL_LOG_FORMAT": log_format,
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
    if log_format == "json":  # every line, uvicorn's own included, is one JSON object
        lines = [json.loads(line) for line in log.splitlines() if line.strip()]
        access = [line for line in lines if line["logger"] == "uvicorn.access"]
        assert any("/enroll/<redacted>" in line["message"] for line in access), access


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_traceback_is_redacted_in_either_format(log_format: str) -> None:
    """A relay's reply in an exception quotes the address it refused; the SDK logs failed activities with theirs."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(formatter(Settings(_env_file=None, log_format=log_format)))
    handler.addFilter(Redact())
    log = logging.getLogger("tests.traceback")
    log.addHandler(handler)
    try:
        raise RuntimeError(f"550 5.1.1 <pat@acme.example> refused; form at /enroll/{TOKEN}?q=Acme%20Widgets")
    except RuntimeError:
        log.exception("email %s not accepted", "enrollment-1/invite-1", stack_info=True)
    finally:
        log.removeHandler(handler)
    written = lines.getvalue()
    assert "RuntimeError: 550 5.1.1 <<email>> refused" in written
    for private in ("pat@acme.example", TOKEN, "Acme"):
        assert private not in written
