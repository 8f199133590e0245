"""POST /api/mail-events on the whole stack: a provider's late bounce marks the enrollment Bounced, tells the
CSM, and is idempotent; reports about unknown emails or recipients are refused; only admins and the
mail-events service user may report."""

from __future__ import annotations

from domain.models import Role
from tests.integration.conftest import Stack, eventually


async def invited(stack: Stack) -> tuple[str, str]:
    """A new enrollment and the Message-ID of its invitation, once it has gone."""
    created = await stack.create()
    assert created.status_code == 201
    enrollment_id = created.json()["id"]
    await eventually(lambda: bool(stack.mail_to("pat@acme.example")))
    message_id = stack.mail_to("pat@acme.example")[0].message_id
    assert message_id
    return enrollment_id, message_id


async def test_a_late_bounce_marks_the_enrollment_bounced_and_tells_the_csm(stack: Stack) -> None:
    enrollment_id, message_id = await invited(stack)
    token = await stack.token_for("hooks@provider.example", Role.mail_events)
    body = {"message_id": message_id, "event": "bounced", "recipient": "pat@acme.example", "reason": "550 5.1.1 gone"}
    reported = await stack.api.post("/api/mail-events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert reported.status_code == 200, reported.text
    assert reported.json()["applied"] is True and reported.json()["enrollment_id"] == enrollment_id

    async def bounced() -> bool:
        got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
        return bool(got["bounced"]) and got["status"] == "New"

    await eventually(bounced)
    got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
    assert got["bounce_reason"] == "550 5.1.1 gone"
    assert [e["event"] for e in got["timeline"]].count("invitation_bounced") == 1
    await eventually(lambda: any("bounced" in m.subject.lower() for m in stack.mail_to("csm@provider.example")))

    again = await stack.api.post("/api/mail-events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200 and again.json()["applied"] is False, "a webhook retried changes nothing"
    assert len([m for m in stack.mail_to("csm@provider.example") if "bounced" in m.subject.lower()]) == 1


async def test_reports_that_match_nothing_are_refused(stack: Stack) -> None:
    _, message_id = await invited(stack)
    admin = {"Authorization": f"Bearer {await stack.token_for('admin@provider.example', Role.admin)}"}
    unknown = {"message_id": "<nope@x>", "event": "bounced", "recipient": "pat@acme.example"}
    assert (await stack.api.post("/api/mail-events", json=unknown, headers=admin)).status_code == 404
    stranger = {"message_id": message_id, "event": "bounced", "recipient": "someone@else.example"}
    refused = await stack.api.post("/api/mail-events", json=stranger, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "recipient"
    odd = {"message_id": message_id, "event": "exploded", "recipient": "pat@acme.example"}
    assert (await stack.api.post("/api/mail-events", json=odd, headers=admin)).status_code == 422
    delivered = {"message_id": message_id, "event": "delivered", "recipient": "pat@acme.example"}
    assert (await stack.api.post("/api/mail-events", json=delivered, headers=stack.auth)).status_code == 403
    ok = await stack.api.post("/api/mail-events", json=delivered, headers=admin)
    assert ok.status_code == 200 and ok.json()["applied"] is False


async def test_a_late_bounce_of_a_replaced_invitation_is_recorded_and_leaves_the_current_one(stack: Stack) -> None:
    """The first invitation bounces after a resend has sent the second: before, it marked the second Bounced."""
    enrollment_id, first_id = await invited(stack)
    resent = await stack.api.post(f"/api/enrollments/{enrollment_id}/resend", headers=stack.auth)
    assert resent.status_code == 200, resent.text
    await eventually(lambda: len(stack.mail_to("pat@acme.example")) == 2)
    assert len({m.message_id for m in stack.mail_to("pat@acme.example")}) == 2, "a second invitation went"
    token = await stack.token_for("hooks@provider.example", Role.mail_events)
    body = {"message_id": first_id, "event": "bounced", "recipient": "pat@acme.example", "reason": "550 5.1.1 gone"}
    reported = await stack.api.post("/api/mail-events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert reported.status_code == 200 and reported.json()["applied"] is True, reported.text

    async def recorded() -> bool:
        got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
        return "old link bounced" in [e["event"] for e in got["timeline"]]

    await eventually(recorded)
    got = (await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)).json()
    assert got["bounced"] is False and got["bounce_reason"] is None
    assert not any("bounced" in m.subject.lower() for m in stack.mail_to("csm@provider.example"))
