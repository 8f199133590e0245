"""PostgreSQL goes away across both reminder times and comes back: both reminders go out once each, the store
catches up, and the contact can still submit the form."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.faults.conftest import SETTLE, FaultyStack, eventually
from tests.faults.pgcluster import PrivateCluster
from tests.integration.lifecycle_test import FORM

CONTACT = "pat@acme.example"
OUTAGE = 8.0
FIRST_REMINDER = 3.0


async def events(stack: FaultyStack, enrollment_id: str) -> list[str]:
    return [e["event"] for e in (await stack.detail(enrollment_id))["timeline"]]


async def test_reminders_survive_a_postgres_restart(pg_faulty_stack: tuple[FaultyStack, PrivateCluster]) -> None:
    """Reminders at 3 s and 6 s fall while PostgreSQL is stopped for 8 s: afterwards reminders_sent == 2 with
    two `reminded` events, the contact got 1 invitation and 2 reminders, the run is RUNNING, the form submits."""
    stack, cluster = pg_faulty_stack
    enrollment_id = await stack.enroll(corporate_contact_email=CONTACT)
    await eventually(lambda: stack.invitations_to(CONTACT), timeout=30, what="the invitation")

    async def invited() -> None:
        assert "invited" in await events(stack, enrollment_id)

    await eventually(invited, timeout=15, what="the invited event in the store")
    assert not stack.reminders_to(CONTACT), "the outage must start before the first reminder"

    invited_at = stack.invitations_to(CONTACT)[0].received_at
    await cluster.stop()
    stopped_at = time.monotonic()
    assert stopped_at < invited_at + FIRST_REMINDER, "the outage must cover the reminder times (machine too busy?)"
    await asyncio.sleep(OUTAGE)
    await cluster.start()
    print(f"PostgreSQL down from +{stopped_at - invited_at:.1f} s to +{time.monotonic() - invited_at:.1f} s")

    async def reminded_twice() -> None:
        response = await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)
        assert response.status_code == 200, f"GET answered {response.status_code}"  # the pool may still reconnect
        body: dict[str, Any] = response.json()
        assert body["reminders_sent"] == 2, f"reminders_sent is {body['reminders_sent']}"
        assert [e["event"] for e in body["timeline"]].count("reminded") == 2

    await eventually(reminded_twice, timeout=60, what="both reminders recorded in the store")
    await eventually(lambda: len(stack.reminders_to(CONTACT)) >= 2, timeout=15, what="both reminders delivered")
    await stack.assert_running(enrollment_id)

    # Submit now: the deadline of the short clock (30 s after the invitation) is not far off.
    submitted = await stack.submit_form(stack.latest_link(CONTACT), FORM)
    assert submitted.status_code == 303, submitted.text
    assert (await stack.detail(enrollment_id))["status"] == "Pending Review"

    await asyncio.sleep(SETTLE)
    print("reminders at", [f"+{m.received_at - invited_at:.1f} s" for m in stack.reminders_to(CONTACT)])
    assert len(stack.invitations_to(CONTACT)) == 1, f"{len(stack.invitations_to(CONTACT))} invitations"
    assert len(stack.reminders_to(CONTACT)) == 2, f"{len(stack.reminders_to(CONTACT))} reminders"
    timeline = await events(stack, enrollment_id)
    assert timeline.count("reminded") == 2 and "submitted" in timeline, timeline
    await stack.assert_running(enrollment_id)
    stack.assert_nothing_twice()
