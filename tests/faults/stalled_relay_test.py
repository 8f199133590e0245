"""A relay that takes the message and then does not answer: the CSM's actions do not wait for it, and once it
answers again the current contact gets one invitation with a live link."""

from __future__ import annotations

import asyncio

from tests.faults.conftest import SETTLE, FaultyStack, answered_in_time, eventually

FIRST = "ana@stall-a.example"
FIRST_NOW = "bo@stall-a.example"
SECOND = "cy@stall-b.example"


async def test_actions_answer_while_the_relay_stalls(faulty_stack: FaultyStack) -> None:
    """Stall at DATA: DELETE one enrollment and PATCH the other's contact answer 200 in time; after the release
    the new contact gets exactly one invitation, live, and every link the others got is dead."""
    stack = faulty_stack
    relay = stack.relay
    relay.stall("DATA")
    first = await stack.enroll(organization_name="Stall A Ltd", corporate_contact_email=FIRST)
    second = await stack.enroll(organization_name="Stall B Ltd", corporate_contact_email=SECOND)
    await eventually(lambda: relay.stalled_now >= 1, timeout=30, what="an invitation held by the stalled relay")

    deleted = await answered_in_time(stack.delete(second, "duplicate"), "DELETE while the relay stalls")
    assert deleted.status_code == 200, deleted.text
    patched = await answered_in_time(
        stack.patch(first, {"corporate_contact_email": FIRST_NOW, "audit_note": "Ana moved on"}),
        "PATCH while the relay stalls",
    )
    assert patched.status_code == 200, patched.text
    relay.release()

    checked: dict[str, int] = {}  # each link is opened once here: the form is rate-limited per address

    async def invited_live() -> None:
        for message in stack.invitations_to(FIRST_NOW):
            for link in message.form_links:
                if link not in checked:
                    checked[link] = await stack.link_status(link)
        assert 200 in checked.values(), f"{FIRST_NOW} has no live invitation yet ({len(checked)} links)"

    await eventually(invited_live, timeout=90, what="the invitation to the new contact")
    await asyncio.sleep(SETTLE)
    invitations = stack.invitations_to(FIRST_NOW)
    assert len(invitations) == 1, f"{FIRST_NOW} got {len(invitations)} invitations"
    assert await stack.link_status(invitations[0].form_links[-1]) == 200
    for address in (FIRST, SECOND):
        for link in set(stack.links_to(address)):
            assert await stack.link_status(link) in (404, 410), f"a link sent to {address} is still live"

    assert (await stack.detail(second))["status"] == "Cancelled"
    assert (await stack.detail(first))["status"] == "New"
    await stack.assert_runs_alive()
    await stack.assert_running(first)
    stack.assert_nothing_twice()
