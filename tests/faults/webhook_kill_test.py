"""A worker killed (SIGKILL) in the middle of a webhook delivery, with real `enroll worker` processes, the dev
server and a real receiver: the next worker delivers it again with the same `webhook-id`, and every event reaches
the receiver, signed — none lost, and a duplicate only ever with the same `webhook-id`.

A killed worker's batch would be retried when its heartbeat stops (30 s); the test fails it at once,
as that timeout would (`hand_back`), so the retry comes within seconds. The endpoint's secret is in neither the
run's history nor a worker's log."""

from __future__ import annotations

import asyncio
import base64
import signal
from pathlib import Path

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from starter.dev.mailsink import MailSink
from store import users
from store.db import transaction
from store.tables import Event, WebhookDelivery
from tests.faults.kill_duplicates_test import hand_back
from tests.faults.worker_processes import worker_stack
from tests.integration.conftest import VALID, eventually
from tests.webhooks.receiver import Receiver
from workflows.names import webhook_endpoint_workflow_id


async def test_a_worker_killed_mid_delivery_loses_nothing(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> None:
    receiver = await Receiver(hold=asyncio.Event()).start()
    async with worker_stack(tmp_path, temporal, mail_sink.port, task_queue, webhooks_allow_private=True) as (
        workers,
        api,
        _,
    ):
        url = workers.settings.effective_database_url
        await users.add_user(url, email="admin@provider.example", role=Role.admin, password="a long enough password")
        admin = {"Authorization": f"Bearer {await users.create_token(url, 'admin@provider.example')}"}
        worker = workers.start()
        made = await api.post("/api/webhook-endpoints", json={"url": receiver.url}, headers=admin)
        assert made.status_code == 201, made.text
        endpoint_id, secret = made.json()["id"], made.json()["secret"]
        receiver.secrets.append(secret)

        for n in range(3):
            body = {**VALID, "organization_name": f"Kill {n} Ltd", "corporate_contact_email": f"pat{n}@k{n}.example"}
            created = await api.post("/api/enrollments", json=body, headers=admin)
            assert created.status_code == 201, created.text

        async def all_recorded() -> bool:
            async with transaction(url) as session:
                return len(list(await session.scalars(select(Event.id)))) == 6

        # Every event recorded (created and invited, for each of the three) while the attempts are held mid-delivery.
        await eventually(lambda: len(receiver.received) >= 1, timeout=60)
        await eventually(all_recorded, timeout=60)
        held = receiver.received[0].webhook_id

        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert receiver.hold is not None
        receiver.hold.set()
        receiver.hold = None
        workers.start()
        await hand_back(temporal.client, [webhook_endpoint_workflow_id(endpoint_id)], worker)

        events: set[str] = set()

        async def all_delivered() -> bool:
            """Every event (created and invited, for each of the three) reached the receiver, verified."""
            async with transaction(url) as session:
                events.update(await session.scalars(select(Event.id)))
                statuses = list(await session.scalars(select(WebhookDelivery.status)))
            got = {r.event["id"] for r in receiver.verified()}
            done = len(events) == 6 and got == events
            return done and len(statuses) == len(events) and set(statuses) == {"Succeeded"}

        await eventually(all_delivered, timeout=90)
        assert receiver.received == receiver.verified(), "every delivery verifies"
        again = [r.webhook_id for r in receiver.received if r.webhook_id == held]
        assert len(again) >= 2, "the delivery caught mid-flight came again, with its own webhook-id"
        by_id: dict[str, set[str]] = {}
        for r in receiver.received:
            by_id.setdefault(r.event["id"], set()).add(r.webhook_id)
        assert all(len(ids) == 1 for ids in by_id.values()), "a duplicate only ever with the same webhook-id"

        handle = temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint_id))
        history = b"".join(event.SerializeToString() for event in (await handle.fetch_history()).events)
        key = secret.removeprefix("whsec_")
        for form in (secret, key, base64.b64decode(key).hex()):
            assert form.encode() not in history, "the secret never enters the history"
        for n in range(len(workers.started)):
            assert key not in workers.log(n), "nor a worker's log"
        await receiver.stop()
