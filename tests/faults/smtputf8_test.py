"""Mail the relay can never carry is a bounce, not relay trouble retried for ever.

The relay here (tests/faults/relay.py's, with aiosmtpd's SMTPUTF8 switched off) does not offer SMTPUTF8, so a
contact address with a non-ASCII local part (`josé@…`) can never be delivered through it: the enrollment is
marked Bounced with a reason saying so within seconds, the address is tried once, and mail health stays `ok`.
A 5xx at DATA naming the message (552 5.3.4, too big) is the same. `ENROLL_SMTP_UTF8=false` refuses such an
address when it is entered, naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from store import outbox
from tests.faults.conftest import FaultyStack, eventually, faulty_settings, running
from tests.faults.relay import Relay

JOSE = "josé@acme.example"


class AsciiRelay(Relay):
    """The switchable relay without the SMTPUTF8 extension (aiosmtpd's Controller offers it by default)."""

    def start(self) -> None:
        super().start()
        assert self._controller is not None
        self._controller.SMTP_kwargs["enable_SMTPUTF8"] = False  # read for every connection


@pytest.fixture
def relay() -> Iterator[Relay]:
    with AsciiRelay() as started:
        yield started


async def test_a_non_ascii_address_without_smtputf8_bounces_at_once(faulty_stack: FaultyStack) -> None:
    stack = faulty_stack
    enrollment_id = await stack.enroll(corporate_contact_email=JOSE)

    async def marked_bounced() -> None:
        body = await stack.detail(enrollment_id)
        assert body["status"] == "New", body["status"]
        assert body.get("bounced") is True, f"bounced is {body.get('bounced')!r}"
        reason = body.get("bounce_reason") or ""
        assert "non-ASCII" in reason and "SMTPUTF8" in reason, f"bounce_reason is {reason!r}"
        assert reason.startswith("553"), reason
        events = [e["event"] for e in body["timeline"]]
        assert "invitation_bounced" in events, events

    await eventually(marked_bounced, timeout=20, what="the enrollment marked bounced for the non-ASCII address")
    await asyncio.sleep(3)  # a retry, had there been one, would have come by now
    emails = await outbox.emails_of(stack.settings.effective_database_url, enrollment_id=enrollment_id)
    invitations = [e for e in emails if e.kind == "invitation"]
    assert len(invitations) == 1 and invitations[0].state == "bounced", [(e.kind, e.state) for e in emails]
    assert invitations[0].attempts == 1, f"tried {invitations[0].attempts} times"
    mail = (await stack.healthz()).json()["mail"]
    assert mail == "ok", f"/healthz mail is {mail!r}: an address the relay cannot carry is not relay trouble"
    await stack.assert_running(enrollment_id)


async def test_a_message_refused_for_its_size_bounces(faulty_stack: FaultyStack) -> None:
    stack = faulty_stack
    stack.relay.refuse_data("552 5.3.4 Message size exceeds fixed maximum message size")
    enrollment_id = await stack.enroll(corporate_contact_email="big@acme.example")

    async def marked_bounced() -> None:
        body = await stack.detail(enrollment_id)
        assert body.get("bounced") is True, f"bounced is {body.get('bounced')!r}"
        assert "552 5.3.4" in (body.get("bounce_reason") or ""), body.get("bounce_reason")

    await eventually(marked_bounced, timeout=20, what="the enrollment marked bounced for a message too big")
    assert (await stack.healthz()).json()["mail"] == "ok"
    refused = [r for r in stack.relay.refusals() if r.command == "DATA" and r.argument == "big@acme.example"]
    assert len(refused) == 1, "refused for good: not retried"


async def test_smtp_utf8_off_refuses_the_address_when_entered(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, relay: Relay, task_queue: str
) -> None:
    settings = faulty_settings(tmp_path, database_url, temporal, relay, task_queue, smtp_utf8=False)
    async with running(settings, temporal, relay) as stack:
        response = await stack.create(corporate_contact_email=JOSE)
        assert response.status_code == 422, response.text
        errors = response.json()["errors"]
        assert [e["field"] for e in errors] == ["corporate_contact_email"], errors
        assert "non-ASCII" in errors[0]["message"], errors
        assert (await stack.create(corporate_contact_email="jose@acme.example")).status_code == 201
