"""Temporal stopped while webhooks are in use: registering an endpoint answers 503 in time and leaves no endpoint
behind (no row without its run); the endpoints are still listed from the store; once the server is back, the
endpoint registered before the outage delivers what comes next, and a new one registers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from starter.dev.mailsink import MailSink
from tests.faults.temporal_harness import outage_stack, until
from tests.webhooks.receiver import Receiver

WITHIN = 10.0


async def test_registering_during_an_outage_answers_503_and_leaves_nothing_half_written(
    tmp_path: Path, mail_sink: MailSink, task_queue: str
) -> None:
    receiver = await Receiver().start()
    async with outage_stack(tmp_path, mail_sink, task_queue, webhooks_allow_private=True) as stack:
        api, auth = stack.api, stack.auth
        made = await api.post("/api/webhook-endpoints", json={"url": receiver.url}, headers=auth)
        assert made.status_code == 201, made.text
        receiver.secrets.append(made.json()["secret"])

        await stack.dev.stop()
        started = time.monotonic()
        refused = await asyncio.wait_for(
            api.post("/api/webhook-endpoints", json={"url": receiver.url, "description": "later"}, headers=auth),
            timeout=WITHIN * 3,
        )
        assert refused.status_code == 503, refused.text
        assert time.monotonic() - started < WITHIN, "answered in time"
        listed = await api.get("/api/webhook-endpoints", headers=auth)
        assert listed.status_code == 200, "the store still answers"
        assert [e["id"] for e in listed.json()["items"]] == [made.json()["id"]], "no endpoint without its run"

        await stack.dev.start()
        again = await api.post("/api/webhook-endpoints", json={"url": receiver.url}, headers=auth)
        assert again.status_code == 201, again.text
        receiver.secrets.append(again.json()["secret"])
        await stack.enroll("After Outage Ltd", "pat@after.example")
        await until(lambda: receiver.types().count("enrollment.created") == 2, 90)  # each endpoint's
        assert receiver.received == receiver.verified()
    await receiver.stop()
