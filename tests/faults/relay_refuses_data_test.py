"""A misconfigured relay (554 5.7.1 at DATA for every message) is the relay's fault, not the contacts': the
invitations wait and go out once when it accepts again, and /healthz says mail is failing meanwhile."""

from __future__ import annotations

import asyncio

from tests.faults.conftest import SETTLE, FaultyStack, eventually

CONTACTS = [f"contact{n}@refused{n}.example" for n in range(5)]


async def test_invitations_wait_out_a_relay_that_refuses_everything(faulty_stack: FaultyStack) -> None:
    """554 at DATA for all: /healthz mail "failing since … 554" (still 200); once accepting, each of 5 contacts
    gets exactly one live invitation, all New and not bounced, every run RUNNING, mail "ok"."""
    stack = faulty_stack
    stack.relay.refuse_data()
    ids = [
        await stack.enroll(organization_name=f"Refused Relay {n} Ltd", corporate_contact_email=contact)
        for n, contact in enumerate(CONTACTS)
    ]

    async def mail_failing() -> None:
        response = await stack.healthz()
        assert response.status_code == 200, f"/healthz answered {response.status_code}: {response.text}"
        mail = str(response.json().get("mail", ""))
        assert mail.startswith("failing since") and "554" in mail, f"/healthz mail is {mail!r}"

    await eventually(mail_failing, timeout=30, what="/healthz reporting the failing relay")
    await asyncio.sleep(5)  # the relay keeps refusing a while
    assert not stack.relay.messages(), "nothing is accepted while the relay refuses"
    assert stack.relay.refusals(), "the product tried to send while the relay refused"
    for enrollment_id in ids:
        assert (await stack.detail(enrollment_id)).get("bounced") is not True, "a relay refusal is not a bounce"
    await stack.assert_runs_alive()

    stack.relay.accept()

    def all_invited() -> None:
        waiting = [contact for contact in CONTACTS if not stack.invitations_to(contact)]
        assert not waiting, f"not invited yet: {waiting}"

    # The activity's retry backs off to a minute, so the first accepted attempt may come that much later.
    await eventually(all_invited, timeout=120, what="an invitation to each contact")
    await asyncio.sleep(SETTLE)
    for contact in CONTACTS:
        invitations = stack.invitations_to(contact)
        assert len(invitations) == 1, f"{contact} got {len(invitations)} invitations"
        assert await stack.link_status(invitations[0].form_links[-1]) == 200, f"{contact}'s link is not live"
    for enrollment_id in ids:
        body = await stack.detail(enrollment_id)
        assert body["status"] == "New", body["status"]
        assert body.get("bounced") is False, f"bounced is {body.get('bounced')!r}"
        await stack.assert_running(enrollment_id)

    async def mail_ok() -> None:
        response = await stack.healthz()
        assert response.status_code == 200
        assert response.json().get("mail") == "ok", f"/healthz mail is {response.json().get('mail')!r}"

    await eventually(mail_ok, timeout=30, what="/healthz mail back to ok")
    stack.assert_nothing_twice()
