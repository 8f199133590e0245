"""Webhooks on the whole stack: the Temporal dev server, a worker, the API, SMTP, the store, and real receivers
that verify every signature with the reference `standardwebhooks` library.

Registered endpoints receive `enrollment.created` and `enrollment.invited`, signed; an endpoint that answers 500
for a while is retried and recovers; a 410 disables it at once and its owner is emailed; after a rotation both
secrets verify; any delivery can be replayed with its own `webhook-id`; private addresses are refused unless
allowed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.common import WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment

from domain.models import Role
from domain.webhooks import DISABLE_AFTER, EndpointStatus, WebhookEndpointInput
from starter.dev.mailsink import MailSink
from store import webhooks as store
from tests.integration.accounts_test import bearer
from tests.integration.conftest import Stack, eventually, running, stack_settings
from tests.integration.partner_lifecycle_test import CUSTOMER, reseller
from tests.webhooks.receiver import Receiver
from workflows.names import WEBHOOK_ENDPOINT_STATUS, webhook_endpoint_workflow_id
from workflows.webhook_endpoint import WebhookEndpointWorkflow, ensure_endpoint_runs


@pytest_asyncio.fixture
async def hooks(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Stack]:
    """The stack, letting endpoints on this machine receive (as the dev stack does)."""
    settings = stack_settings(tmp_path, database_url, temporal, mail_sink, task_queue, webhooks_allow_private=True)
    async with running(settings, temporal, mail_sink) as running_stack:
        yield running_stack


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = await Receiver().start()
    yield got
    await got.stop()


async def admin_headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {await stack.token_for('admin@provider.example', Role.admin)}"}


async def becomes(stack: Stack, admin: dict[str, str], endpoint_id: str, status: str) -> dict[str, Any]:
    """The endpoint as the API shows it, once its status is `status`."""
    shown: dict[str, Any] = {}

    async def reached() -> bool:
        shown.update((await stack.api.get(f"/api/webhook-endpoints/{endpoint_id}", headers=admin)).json())
        return bool(shown["status"] == status)

    await eventually(reached)
    return shown


async def restart_run(stack: Stack, endpoint_id: str, **carried: Any) -> str:
    """Terminate the endpoint's run and start one with `carried` in its input, as a handover would carry it; the
    new run's id."""
    stored = await store.get_endpoint(stack.settings.effective_database_url, endpoint_id)
    assert stored is not None
    workflow_id = webhook_endpoint_workflow_id(endpoint_id)
    await stack.temporal.client.get_workflow_handle(workflow_id).terminate("restarted by the test, state carried")
    started = await stack.temporal.client.start_workflow(
        WebhookEndpointWorkflow.run,
        WebhookEndpointInput(endpoint_id=endpoint_id, cursor=stored.start_after, **carried),
        id=workflow_id,
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    assert started.first_execution_run_id is not None
    return started.first_execution_run_id


async def register(stack: Stack, receiver: Receiver, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    made = await stack.api.post(
        "/api/webhook-endpoints", json={"url": receiver.url, "description": "CRM", **body}, headers=admin
    )
    assert made.status_code == 201, made.text
    endpoint: dict[str, Any] = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "Enabled"
    receiver.secrets.append(endpoint["secret"])
    return endpoint


async def test_an_enrollment_is_delivered_signed_to_every_endpoint(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin)
    listed = (await hooks.api.get("/api/webhook-endpoints", headers=admin)).json()["items"]
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0], "the secret is shown once"

    created = await hooks.create()
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    await eventually(lambda: {"enrollment.created", "enrollment.invited"} <= set(receiver.types()))
    assert receiver.received == receiver.verified(), "every delivery verifies with the reference library"
    first = next(r for r in receiver.verified() if r.event["type"] == "enrollment.created")
    assert first.event["data"]["id"] == enrollment_id and first.event["data"]["status"] == "New"
    assert first.webhook_id.startswith("msg_") and first.headers["webhook-timestamp"].isdigit()
    assert "/enroll/" not in first.body.decode(), "no form link in an event"

    deliveries = await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)
    assert deliveries.status_code == 200
    items = deliveries.json()["items"]
    assert {d["event_type"] for d in items} >= {"enrollment.created", "enrollment.invited"}
    assert all(d["status"] == "Succeeded" and d["attempt_log"][0]["status_code"] == 200 for d in items)
    assert items[0]["attempt_log"][0]["response"] == '{"ok": true}'


async def test_an_endpoint_that_fails_for_a_while_is_retried_and_recovers(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    receiver.answer = lambda _: 500
    assert (await hooks.create()).status_code == 201
    await eventually(lambda: len(receiver.received) >= 1)
    await becomes(hooks, admin, endpoint["id"], "Failing")
    handle = hooks.temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint["id"]))
    description = await handle.describe()
    assert description.typed_search_attributes.get(WEBHOOK_ENDPOINT_STATUS) == "Failing"
    page = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)).json()
    pending = page["items"][0]
    assert pending["status"] == "Pending" and pending["next_attempt_at"], "the next attempt is scheduled"
    assert pending["attempt_log"][0]["status_code"] == 500

    receiver.answer = lambda _: 200  # the receiver is fixed; the second attempt comes 5 s after the first
    await eventually(lambda: any(r for r in receiver.received[1:]), timeout=20)
    await becomes(hooks, admin, endpoint["id"], "Enabled")
    ids = {r.webhook_id for r in receiver.received}
    assert len(ids) == 1, "every attempt of one delivery carries the same webhook-id"
    page = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)).json()
    assert page["items"][0]["status"] == "Succeeded"
    assert [a["status_code"] for a in page["items"][0]["attempt_log"]] == [500, 200]


async def test_a_410_disables_the_endpoint_at_once_and_emails_its_owner(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    receiver.answer = lambda _: 410
    assert (await hooks.create()).status_code == 201
    await becomes(hooks, admin, endpoint["id"], "Disabled")
    got = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=admin)).json()
    assert "410" in got["status_reason"]
    await eventually(lambda: any("disabled" in m.subject.lower() for m in hooks.mail_to("admin@provider.example")))
    assert len(receiver.received) == 1, "no retry after a 410"
    assert await hooks.create(organization_name="Beta Widgets Ltd", corporate_contact_email="kim@beta.example")
    handle = hooks.temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint["id"]))
    assert (await handle.describe()).typed_search_attributes.get(WEBHOOK_ENDPOINT_STATUS) == "Disabled"

    # Enabled again, it carries on from where it stopped: the event recorded meanwhile arrives. The delivery that
    # was answered 410 is Failed (a replay sends it again).
    receiver.answer = lambda _: 200
    enabled = await hooks.api.patch(f"/api/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=admin)
    assert enabled.status_code == 200 and enabled.json()["status"] == "Enabled", enabled.text
    await eventually(lambda: len(receiver.verified()) == 2)
    names = [r.event["data"]["organization_name"] for r in receiver.verified()]
    assert names == ["Acme Widgets Ltd", "Beta Widgets Ltd"]
    page = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)).json()
    assert [(d["status"], d["last_status_code"]) for d in page["items"]] == [("Succeeded", 200), ("Failed", 410)]


async def test_after_a_rotation_both_secrets_verify(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    old = receiver.secrets[0]
    rotated = await hooks.api.post(f"/api/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old and rotated.json()["previous_secret_expires_at"]
    assert (await hooks.create()).status_code == 201
    await eventually(lambda: len(receiver.received) == 1)
    delivered = receiver.received[0]
    for secret in (old, new):
        alone = Receiver(secrets=[secret])
        assert alone._verify(delivered.headers, delivered.body), "each secret verifies during the overlap"
    assert len(delivered.headers["webhook-signature"].split(" ")) == 2


async def test_any_delivery_can_be_replayed_with_its_own_webhook_id(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    assert (await hooks.create()).status_code == 201
    await eventually(lambda: len(receiver.verified()) == 1)
    page = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)).json()
    delivery_id = page["items"][0]["id"]
    replayed = await hooks.api.post(f"/api/webhook-deliveries/{delivery_id}/replay", headers=admin)
    assert replayed.status_code == 202, replayed.text
    await eventually(lambda: len(receiver.verified()) == 2)
    assert receiver.received[1].webhook_id == receiver.received[0].webhook_id == delivery_id
    assert receiver.received[1].body == receiver.received[0].body

    async def logged() -> bool:
        got = (await hooks.api.get(f"/api/webhook-deliveries/{delivery_id}", headers=admin)).json()
        return [a["trigger"] for a in got["attempt_log"]] == ["scheduled", "replay"]

    await eventually(logged)


async def test_bad_endpoints_are_refused_naming_the_field(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    for body, field in (
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": receiver.url, "events": ["enrollment.exploded"]}, "events"),
        ({"url": receiver.url, "events": []}, "events"),
        ({"url": receiver.url, "colour": "red"}, "colour"),
    ):
        refused = await hooks.api.post("/api/webhook-endpoints", json=body, headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == field
    csm = await hooks.api.get("/api/webhook-endpoints", headers=hooks.auth)
    assert csm.status_code == 403, "a CSM manages no webhooks"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/hooks",
        "https://[::1]/hooks",
        "http://example.com/hooks",
    ],
)
async def test_private_addresses_are_refused_unless_allowed(stack: Stack, url: str) -> None:
    admin = await admin_headers(stack)
    refused = await stack.api.post("/api/webhook-endpoints", json={"url": url}, headers=admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "url"
    listed = (await stack.api.get("/api/webhook-endpoints", headers=admin)).json()["items"]
    assert listed == [], "nothing is written for a refused endpoint"


async def test_five_days_of_failures_disable_the_endpoint_and_email_its_owner(hooks: Stack, receiver: Receiver) -> None:
    """The endpoint's run as it would be five days into failing (what a handover carries): the next failure
    disables it, and its owner is emailed."""
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    carried = {"status": EndpointStatus.failing, "failing_since": datetime.now(UTC) - DISABLE_AFTER}
    await restart_run(hooks, endpoint["id"], **carried)
    receiver.answer = lambda _: 503
    assert (await hooks.create()).status_code == 201
    await becomes(hooks, admin, endpoint["id"], "Disabled")
    got = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}", headers=admin)).json()
    assert got["status_reason"].startswith("every attempt has failed since"), got
    await eventually(lambda: any("disabled" in m.subject.lower() for m in hooks.mail_to("admin@provider.example")))
    notice = next(m for m in hooks.mail_to("admin@provider.example") if "disabled" in m.subject.lower())
    assert receiver.url in (notice.text or "") and "enable it" in (notice.text or "")
    page = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)).json()
    assert page["items"][0]["status"] == "Pending", "disabled, the delivery waits for the endpoint to be enabled"


async def test_the_run_continues_as_new_and_carries_on_delivering(hooks: Stack, receiver: Receiver) -> None:
    """A run with a short history hands over (cursor, pending deliveries and update ids carried) and every event
    still arrives, once per webhook-id."""
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    started = await restart_run(hooks, endpoint["id"], history_limit=20)
    names = [f"Handover {n} Ltd" for n in range(6)]
    for n, name in enumerate(names):
        made = await hooks.create(organization_name=name, corporate_contact_email=f"pat{n}@h{n}.example")
        assert made.status_code == 201, made.text
        await asyncio.sleep(2.5)  # past the batch's quiet time: each comes back to the run, whose history grows
    await eventually(lambda: len(receiver.verified()) >= len(names), timeout=60)
    # (The terminated run's batch may bring one again, with its own webhook-id, before it is cancelled.)
    assert sorted({r.event["data"]["organization_name"] for r in receiver.verified()}) == sorted(names)
    assert len({r.webhook_id for r in receiver.received}) == len(names)
    latest = await hooks.temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint["id"])).describe()
    assert latest.run_id != started, "the run handed over to a fresh one"
    assert latest.status is not None and latest.status.name == "RUNNING"


async def test_a_reseller_receives_only_its_customers_events(hooks: Stack, receiver: Receiver) -> None:
    reviewer = bearer(await hooks.token_for("rev@provider.example", Role.reviewer))
    reseller_id, partner = await reseller(hooks, reviewer)
    made = await hooks.api.post("/api/webhook-endpoints", json={"url": receiver.url}, headers=partner)
    assert made.status_code == 201, made.text
    receiver.secrets.append(made.json()["secret"])
    admin = await admin_headers(hooks)
    assert [e["id"] for e in (await hooks.api.get("/api/webhook-endpoints", headers=admin)).json()["items"]] == [
        made.json()["id"]
    ], "an admin sees every endpoint"
    theirs = await hooks.api.get(f"/api/webhook-endpoints/{made.json()['id']}", headers=hooks.auth)
    assert theirs.status_code == 403, "a CSM manages no endpoints"

    ours = await hooks.create(organization_name="Provider Direct Ltd", corporate_contact_email="kim@direct.example")
    customer = await hooks.api.post("/api/enrollments", json=CUSTOMER, headers=partner)
    assert ours.status_code == 201 and customer.status_code == 201, customer.text
    await eventually(lambda: {"enrollment.created", "enrollment.invited"} <= set(receiver.types()))
    organizations = {r.event["data"]["organization_name"] for r in receiver.verified()}
    assert organizations == {"Newco Ltd"}, "the provider's own enrollment is not the reseller's to see"
    assert all(r.event["data"]["reseller_account_id"] == reseller_id for r in receiver.verified())


async def test_an_endpoint_is_changed_and_deleted(hooks: Stack, receiver: Receiver) -> None:
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.approved"])
    path = f"/api/webhook-endpoints/{endpoint['id']}"
    changed = await hooks.api.patch(
        path, json={"events": ["enrollment.created"], "description": "Billing"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["enrollment.created"] and changed.json()["description"] == "Billing"
    bad = await hooks.api.patch(path, json={"url": "ftp://example.com/x"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "url"
    assert (await hooks.create()).status_code == 201
    await eventually(lambda: receiver.types() == ["enrollment.created"])

    deleted = await hooks.api.delete(path, headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert (await hooks.api.get(path, headers=admin)).status_code == 404
    handle = hooks.temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint["id"]))
    await eventually(lambda: handle_completed(handle))
    assert (await hooks.create(organization_name="After Ltd", corporate_contact_email="kim@after.example")).status_code
    assert (await hooks.api.get("/api/webhook-endpoints", headers=admin)).json()["items"] == []


async def handle_completed(handle: Any) -> bool:
    description = await handle.describe()
    return bool(description.status is not None and description.status.name == "COMPLETED")


async def test_the_worker_starts_a_run_for_an_endpoint_left_without_one(hooks: Stack, receiver: Receiver) -> None:
    """An API killed between writing the endpoint and starting its run (or a run terminated by hand): the worker
    starts one at start, and what was delivered already is not delivered again."""
    admin = await admin_headers(hooks)
    endpoint = await register(hooks, receiver, admin, events=["enrollment.created"])
    assert (await hooks.create()).status_code == 201
    await eventually(lambda: len(receiver.verified()) == 1)

    async def recorded() -> bool:
        page = (await hooks.api.get(f"/api/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin)).json()
        return [d["status"] for d in page["items"]] == ["Succeeded"]

    await eventually(recorded)
    handle = hooks.temporal.client.get_workflow_handle(webhook_endpoint_workflow_id(endpoint["id"]))
    await handle.terminate("as if it had never been started")

    made = await hooks.create(organization_name="Meanwhile Ltd", corporate_contact_email="kim@meanwhile.example")
    assert made.status_code == 201
    url = hooks.settings.effective_database_url
    assert await ensure_endpoint_runs(hooks.temporal.client, url, hooks.settings.task_queue) == 1
    # The terminated run's batch may still be finishing on this worker and bring "Meanwhile" too: a duplicate with
    # the same webhook-id, which receivers drop. What was delivered before the run ended is not delivered again.
    await eventually(lambda: "Meanwhile Ltd" in [r.event["data"]["organization_name"] for r in receiver.verified()])
    names = [r.event["data"]["organization_name"] for r in receiver.verified()]
    assert names.count("Acme Widgets Ltd") == 1, names
    assert (
        len({r.webhook_id for r in receiver.received if r.event["data"]["organization_name"] != "Acme Widgets Ltd"})
        == 1
    )
    assert await ensure_endpoint_runs(hooks.temporal.client, url, hooks.settings.task_queue) == 0, "once"
