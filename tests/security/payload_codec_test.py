"""Personal data in Temporal is encrypted when ENROLL_PAYLOAD_KEY is set; old keys still decrypt."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from starter.app import create_app
from starter.dev.mailsink import MailSink, list_messages
from store import users
from tests.conftest import binary
from tests.integration.conftest import VALID, eventually, stack_settings
from worker import build_worker
from workflows.codec import EncryptionCodec, PayloadKeyError, new_key_text, parse_keys


def test_keys_are_parsed_and_named_errors_explain_bad_ones() -> None:
    keys = parse_keys(f"{new_key_text('k2')}, {new_key_text('k1')}")
    assert list(keys) == ["k2", "k1"]
    for bad, problem in [
        ("nokey", "id:base64key"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "16, 24 or 32 bytes"),
        (f"{new_key_text('k1')},{new_key_text('k1')}", "appears twice"),
        ("", "no key"),
    ]:
        with pytest.raises(PayloadKeyError, match=problem):
            parse_keys(bad)


async def test_rotation_keeps_old_payloads_readable_and_refuses_unknown_keys() -> None:
    old, new = new_key_text("2025"), new_key_text("2026")
    before = EncryptionCodec(parse_keys(old))
    sealed = await before.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"pat@acme.example"')])
    assert b"pat@acme.example" not in sealed[0].data
    after = EncryptionCodec(parse_keys(f"{new},{old}"))
    assert (await after.decode(sealed))[0].data == b'"pat@acme.example"'
    assert (await after.encode([Payload(data=b"x")]))[0].metadata["encryption-key-id"] == b"2026"
    with pytest.raises(PayloadKeyError, match="lacks"):
        await EncryptionCodec(parse_keys(new)).decode(sealed)


async def test_history_shows_no_contact_in_clear_and_the_codec_endpoint_reads_it(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    from store.migrate import upgrade_to_head

    upgrade_to_head(url)
    settings = stack_settings(tmp_path, url, temporal, mail_sink, task_queue, payload_key=new_key_text("k1"))
    await users.add_user(url, email="admin@provider.example", role=Role.admin, password="a long enough password")
    token = await users.create_token(url, "admin@provider.example")
    auth = {"Authorization": f"Bearer {token}"}
    app = create_app(settings)  # its own Temporal client, with the codec
    async with (
        await build_worker(settings),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api,
    ):
        created = await api.post("/api/enrollments", json=VALID, headers=auth)
        assert created.status_code == 201, created.text
        enrollment_id = created.json()["id"]
        await eventually(lambda: len(list_messages(mail_sink.mailbox_dir)) == 1)
        process = await asyncio.create_subprocess_exec(
            binary("temporal"),
            "workflow",
            "show",
            "--workflow-id",
            f"enrollment-{enrollment_id}",
            "--address",
            settings.effective_temporal_address,
            "--output",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err
        history = out.decode()
        assert "binary/encrypted" in base64.b64decode(_first_payload_encoding(history)).decode()
        for secret in ("pat@acme.example", "Acme Widgets", "csm@provider.example"):
            assert secret not in history
            assert base64.b64encode(secret.encode()).decode()[:12] not in history

        payload = json.loads(history)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]
        decoded = await api.post("/codec/decode", json=payload, headers=auth)
        assert decoded.status_code == 200, decoded.text
        plain = base64.b64decode(decoded.json()["payloads"][0]["data"]).decode()
        assert "pat@acme.example" in plain
        assert (await api.post("/codec/decode", json=payload)).status_code == 401


def _first_payload_encoding(history: str) -> str:
    started = json.loads(history)["events"][0]["workflowExecutionStartedEventAttributes"]
    encoding: str = started["input"]["payloads"][0]["metadata"]["encoding"]
    return encoding
