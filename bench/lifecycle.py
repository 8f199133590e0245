"""How long an enrollment's history gets: `make bench` (`python -m bench.lifecycle --help`).

On `enroll up` with a clock of seconds (reminders at 2 s and 4 s, the form due at 6 s):

1. one full lifecycle — create → 2 reminders → expiry → resend → submit → review → approve — and the length
   and payload bytes of its history;
2. one enrollment whose contact is changed again and again (each change rotates the link and invites the new
   address), past the point where its run continues as new: the longest run stays near
   `EnrollmentInput.history_limit`, however long the enrollment lives.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import re
import secrets
import sys
import time
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.common import TEMPORAL_ADDRESS, Sink, Stack, enroll_up, payload_bytes, target
from domain.models import EnrollmentInput
from workflows.names import enrollment_workflow_id

FORM = {
    "corporate_contact_name": "Pat Jones",
    "corporate_contact_phone": "+44 20 7946 0000",
    "technical_contact_name": "Sam Lee",
    "technical_contact_email": "sam@bench.example",
    "technical_contact_phone": "+44 20 7946 0001",
    "billing_contact_name": "Alex Kim",
    "billing_contact_email": "billing@bench.example",
    "address_line1": "1 High Street",
    "city": "London",
    "postal_code": "EC1A 1AA",
    "country": "United Kingdom",
    "accept_terms": "yes",
}
LIMIT = EnrollmentInput.model_fields["history_limit"].default


def body(run: str, contact: str) -> dict[str, Any]:
    return {
        "organization_name": f"Lifecycle {run} Ltd",
        "member_type": "customer",
        "service_end_date": "2030-12-31",
        "display_users_purchased": False,
        "corporate_contact_email": contact,
    }


async def until(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def form_link(sink: Sink, address: str) -> str | None:
    for raw in reversed(sink.received.get(address, [])):
        message = email.message_from_bytes(raw)
        for part in message.walk():
            if part.get_content_type() == "text/plain":
                text = part.get_payload(decode=True)
                found = re.search(r"(/enroll/[A-Za-z0-9_-]+)", text.decode() if isinstance(text, bytes) else "")
                if found:
                    return found.group(1)
    return None


async def runs_of(client: Client, workflow_id: str) -> list[tuple[int, int]]:
    """(events, payload bytes) of every run of the workflow, oldest first."""
    runs = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        runs.append((execution.start_time, len(history.events), sum(payload_bytes(e) for e in history.events)))
    return [(events, size) for _, events, size in sorted(runs)]


async def full_lifecycle(stack: Stack, sink: Sink, client: Client, api: httpx.AsyncClient) -> bool:
    run = secrets.token_hex(3)
    contact = f"pat@{run}.example"
    created = await api.post("/api/enrollments", json=body(run, contact), headers=stack.auth)
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    url = f"/api/enrollments/{enrollment_id}"

    async def status(wanted: str) -> bool:
        return bool((await api.get(url, headers=stack.auth)).json()["status"] == wanted)

    await until(lambda: status("Expired"), "expiry", 30)
    assert (await api.post(f"{url}/resend", headers=stack.auth)).status_code == 200
    await until(lambda: status("New"), "the resend")
    # The invitation, two reminders, then the second invitation (the CSM is told of the expiry, not the contact).
    await until(lambda: asyncio.sleep(0, len(sink.received.get(contact, [])) >= 4), "the second invitation")
    link = form_link(sink, contact)
    assert link is not None, "no form link was mailed"
    submitted = await api.post(link, data=FORM)
    assert submitted.status_code in (200, 303), f"{link} answered {submitted.status_code}: {submitted.text[:600]}"
    review = {"Authorization": f"Bearer {stack.extra['reviewer']}"}
    note = {"audit_note": "bench"}
    assert (await api.post(f"{url}/review/start", json=note, headers=review)).status_code == 200
    assert (await api.post(f"{url}/review/approve", json=note, headers=review)).status_code == 200
    await until(lambda: status("Approved"), "approval")
    await asyncio.sleep(1)
    timeline = [e["event"] for e in (await api.get(url, headers=stack.auth)).json()["timeline"]]
    runs = await runs_of(client, enrollment_workflow_id(enrollment_id))
    events, size = runs[-1]
    print("\nOne full lifecycle: create → 2 reminders → expiry → resend → submit → review → approve")
    print(f"  timeline: {', '.join(timeline)}")
    print(f"  history: {events} events, {size / 1024:.1f} KiB of payloads, in {len(runs)} run(s)")
    before_expiry = timeline[: timeline.index("expired")] if "expired" in timeline else []
    ok = timeline[-1] == "approved" and before_expiry.count("reminded") == 2
    return target("the lifecycle ends Approved, 2 reminders before the expiry", timeline[-1], ok)


async def long_lived(stack: Stack, sink: Sink, client: Client, api: httpx.AsyncClient, edits: int) -> bool:
    run = secrets.token_hex(3)
    created = await api.post("/api/enrollments", json=body(run, f"c0@{run}.example"), headers=stack.auth)
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    for n in range(1, edits + 1):
        change = {"corporate_contact_email": f"c{n}@{run}.example", "audit_note": f"edit {n}"}
        edited = await api.patch(f"/api/enrollments/{enrollment_id}", json=change, headers=stack.auth)
        assert edited.status_code == 200, edited.text
    await until(lambda: asyncio.sleep(0, f"c{edits}@{run}.example" in sink.arrived), "the last invitation")
    await asyncio.sleep(2)
    runs = await runs_of(client, enrollment_workflow_id(enrollment_id))
    total = sum(events for events, _ in runs)
    longest = max(events for events, _ in runs)
    print(f"\nOne enrollment edited {edits} times (each edit re-links and invites the new contact)")
    print(f"  {total} history events in all, over {len(runs)} run(s): {', '.join(str(e) for e, _ in runs)}")
    bound = int(LIMIT * 1.05)
    ok = target(f"longest run ≤ {bound} events (continue-as-new at {LIMIT})", f"{longest}", longest <= bound)
    return ok & target("the enrollment continued as new at least once", f"{len(runs)} runs", len(runs) > 1)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--edits", type=int, default=300, help="contact changes of the long-lived enrollment")
    args = parser.parse_args()
    short_clock = {"ENROLL_REMINDERS": "2s,4s", "ENROLL_ENROLLMENT_TTL": "6s"}
    with Sink() as sink, enroll_up(sink.port, env=short_clock) as stack:
        sink.keep_messages = True
        stack.enroll("users", "add", "bench-rev@example.com", "--role", "reviewer", "--password-stdin", stdin="y" * 16)
        stack.extra["reviewer"] = stack.enroll("tokens", "create", "bench-rev@example.com").strip().splitlines()[-1]
        client = await Client.connect(TEMPORAL_ADDRESS, data_converter=pydantic_data_converter)
        async with httpx.AsyncClient(base_url=stack.api, timeout=60) as api:
            ok = await full_lifecycle(stack, sink, client, api)
            ok &= await long_lived(stack, sink, client, api, args.edits)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
