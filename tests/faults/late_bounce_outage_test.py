"""A provider's late bounce that arrives while Temporal is down: the webhook is answered 503, nothing is marked, and
the provider's retry once the server is back is delivered: the enrollment is marked Bounced, once."""

from __future__ import annotations

from pathlib import Path

from starter.dev.mailsink import MailSink, list_messages
from tests.faults.temporal_harness import outage_stack, until


async def test_a_bounce_reported_while_temporal_is_down_is_applied_when_the_provider_retries(
    tmp_path: Path, mail_sink: MailSink, task_queue: str
) -> None:
    async with outage_stack(tmp_path, mail_sink, task_queue) as stack:
        enrollment_id = await stack.enroll("Acme Widgets Ltd", "pat@acme.example")
        invitation = next(m for m in list_messages(stack.sink.mailbox_dir) if "pat@acme.example" in m.rcpt_tos)
        assert invitation.message_id
        body = {
            "message_id": invitation.message_id,
            "event": "bounced",
            "recipient": "pat@acme.example",
            "reason": "550 5.1.1 mailbox unavailable",
        }

        await stack.dev.stop()
        refused = await stack.api.post("/api/mail-events", json=body, headers=stack.auth)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]

        await stack.dev.start()
        retried = await stack.api.post("/api/mail-events", json=body, headers=stack.auth)
        assert retried.status_code == 200, retried.text
        assert retried.json()["applied"] is True, "the retry after the outage is delivered to the enrollment"

        async def bounced() -> bool:
            got = await stack.detail(enrollment_id)
            return bool(got["bounced"]) and got["bounce_reason"] == "550 5.1.1 mailbox unavailable"

        await until(bounced)
        again = await stack.api.post("/api/mail-events", json=body, headers=stack.auth)
        assert again.status_code == 200 and again.json()["applied"] is False, "a further retry changes nothing"
        timeline = (await stack.detail(enrollment_id))["timeline"]
        assert [e["event"] for e in timeline].count("invitation_bounced") == 1
