"""A contact address the relay refuses at RCPT (550 5.1.1): the enrollment is marked Bounced, not failed."""

from __future__ import annotations

import asyncio

from tests.faults.conftest import CSM, SETTLE, FaultyStack, answered_in_time, eventually

UNKNOWN = "nobody@acme.example"
FIXED = "pat@acme.example"


async def test_a_bounced_invitation_marks_the_enrollment_and_a_fixed_address_is_invited(
    faulty_stack: FaultyStack,
) -> None:
    """550 at RCPT: New + bounced with the reason, invitation_bounced in the timeline, the CSM told once, the
    run alive; fixing the address invites it once with a live link and clears the marker."""
    stack = faulty_stack
    stack.relay.bounce(UNKNOWN)
    enrollment_id = await stack.enroll(corporate_contact_email=UNKNOWN)

    async def marked_bounced() -> None:
        body = await stack.detail(enrollment_id)
        assert body["status"] == "New", body["status"]
        assert body.get("bounced") is True, f"bounced is {body.get('bounced')!r}"
        assert "550" in (body.get("bounce_reason") or ""), f"bounce_reason is {body.get('bounce_reason')!r}"
        notes = [e.get("note") or "" for e in body["timeline"] if e["event"] == "invitation_bounced"]
        assert notes, f"no invitation_bounced event in {[e['event'] for e in body['timeline']]}"
        assert any("550" in note for note in notes), f"invitation_bounced notes: {notes}"

    await eventually(marked_bounced, timeout=45, what="the enrollment marked bounced")

    def csm_told() -> bool:
        return any("bounced" in m.subject.lower() for m in stack.mail_to(CSM))

    await eventually(csm_told, timeout=30, what="the CSM's bounce email")
    await asyncio.sleep(SETTLE)
    told = [m.subject for m in stack.mail_to(CSM) if "bounced" in m.subject.lower()]
    assert len(told) == 1, f"the CSM got {len(told)} bounce emails: {told}"
    assert stack.relay.attempts(UNKNOWN) == 1, "a permanent 550 is not retried"
    await stack.assert_running(enrollment_id)

    response = await answered_in_time(
        stack.patch(enrollment_id, {"corporate_contact_email": FIXED, "audit_note": "typo fixed"}),
        "PATCH of the bounced contact",
    )
    assert response.status_code == 200, response.text

    await eventually(lambda: stack.invitations_to(FIXED), timeout=45, what="the invitation to the fixed address")
    await asyncio.sleep(SETTLE)
    invitations = stack.invitations_to(FIXED)
    assert len(invitations) == 1, f"{FIXED} got {len(invitations)} invitations"
    link = invitations[0].form_links[-1]
    assert f"http://testserver{link}" in invitations[0].text
    assert await stack.link_status(link) == 200

    async def cleared() -> None:
        body = await stack.detail(enrollment_id)
        assert body.get("bounced") is False, f"bounced is {body.get('bounced')!r}"
        assert body["status"] == "New"
        assert body["corporate_contact_email"] == FIXED

    await eventually(cleared, timeout=15, what="the Bounced marker cleared")
    assert not stack.mail_to(UNKNOWN), "nothing is ever accepted for the unknown address"
    await stack.assert_running(enrollment_id)
    stack.assert_nothing_twice()
