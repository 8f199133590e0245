"""A storm of 451 4.3.0 (at RCPT, then at DATA): the CSM's actions answer at once, and when the storm ends
only the newest link reaches the current contact, live, once."""

from __future__ import annotations

import asyncio

from tests.faults.conftest import SETTLE, FaultyStack, answered_in_time, eventually

X_CONTACT = "x@storm-x.example"
Y_FIRST = "y1@storm-y.example"
Y_NOW = "y2@storm-y.example"


async def test_actions_answer_during_a_451_storm_and_only_the_newest_link_lives(faulty_stack: FaultyStack) -> None:
    """451 storm: DELETE X, PATCH Y's contact, resend Y each answer 200 in time; afterwards X's contact holds no
    live link, Y's current contact got the newest (live) link, every older Y link is 410, nothing twice."""
    stack = faulty_stack
    relay = stack.relay
    relay.defer("RCPT")
    x = await stack.enroll(organization_name="Storm X Ltd", corporate_contact_email=X_CONTACT)
    y = await stack.enroll(organization_name="Storm Y Ltd", corporate_contact_email=Y_FIRST)
    await eventually(
        lambda: relay.attempts(X_CONTACT) >= 1 and relay.attempts(Y_FIRST) >= 1,
        timeout=30,
        what="the invitations tried during the storm",
    )
    relay.defer("DATA")  # the storm moves on to DATA: both ways of answering 451 are seen

    deleted = await answered_in_time(stack.delete(x, "created by mistake"), "DELETE during the storm")
    assert deleted.status_code == 200, deleted.text
    patched = await answered_in_time(
        stack.patch(y, {"corporate_contact_email": Y_NOW, "audit_note": "new contact"}), "PATCH during the storm"
    )
    assert patched.status_code == 200, patched.text
    resent = await answered_in_time(stack.resend(y, "asked again"), "resend during the storm")
    assert resent.status_code == 200, resent.text
    await asyncio.sleep(2)
    relay.accept()

    checked: dict[str, int] = {}  # each link is opened once here: the form is rate-limited per address

    async def current_contact_has_a_live_link() -> None:
        for link in stack.links_to(Y_NOW):
            if link not in checked:
                checked[link] = await stack.link_status(link)
        assert 200 in checked.values(), f"{Y_NOW} has no live link yet ({len(checked)} received)"

    await eventually(current_contact_has_a_live_link, timeout=120, what="the newest invitation to Y's contact")
    await asyncio.sleep(SETTLE)

    x_links = set(stack.links_to(X_CONTACT))
    for link in x_links:
        assert await stack.link_status(link) in (404, 410), "X was deleted: no link sent to its contact may live"
    y_links = set(stack.links_to(Y_FIRST)) | set(stack.links_to(Y_NOW))
    statuses = {link: await stack.link_status(link) for link in y_links}
    live = [link for link, status in statuses.items() if status == 200]
    assert len(live) == 1, f"Y has {len(live)} live links: {sorted(statuses.values())}"
    assert live[0] in {link for m in stack.invitations_to(Y_NOW) for link in m.form_links}, (
        "the live link went to Y's current contact in an invitation"
    )
    assert all(status == 410 for link, status in statuses.items() if link != live[0]), (
        f"every older Y link is dead: {sorted(statuses.values())}"
    )

    assert (await stack.detail(x))["status"] == "Cancelled"
    y_now = await stack.detail(y)
    assert y_now["status"] == "New" and y_now["corporate_contact_email"] == Y_NOW
    await stack.assert_runs_alive()
    await stack.assert_running(y)
    stack.assert_nothing_twice()
