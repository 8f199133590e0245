"""The relay and the faulty stack themselves: with no fault switched on, an invitation arrives once, live."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from tests.faults.conftest import FaultyStack, eventually
from tests.faults.relay import BOUNCED, RELAY_DENIED, TRY_LATER, Relay


async def test_an_invitation_arrives_once_with_a_live_link(faulty_stack: FaultyStack) -> None:
    """No fault: the contact gets one invitation, its link opens, the run is alive, nothing twice."""
    stack = faulty_stack
    enrollment_id = await stack.enroll(corporate_contact_email="pat@acme.example")
    await eventually(lambda: stack.invitations_to("pat@acme.example"), what="the invitation")
    await eventually(lambda: stack.relay.attempts("pat@acme.example") >= 1)
    [invitation] = stack.invitations_to("pat@acme.example")
    assert invitation.message_id and invitation.mail_from and "acme" in invitation.subject.lower()
    assert await stack.link_status(stack.latest_link("pat@acme.example")) == 200
    assert (await stack.detail(enrollment_id))["status"] == "New"
    await stack.assert_runs_alive()
    stack.assert_nothing_twice()


def _message(to: str) -> str:
    return f"From: a@relay.example\r\nTo: {to}\r\nSubject: hello\r\nMessage-ID: <m-{to}>\r\n\r\nbody\r\n"


async def test_the_relay_switches_between_its_behaviours(relay: Relay) -> None:
    """Bounce at RCPT, 554 and 451 at DATA, 451 at RCPT, stalls released: each answers as switched."""

    async def send(to: str) -> None:
        await aiosmtplib.send(_message(to), sender="a@relay.example", recipients=[to], port=relay.port, timeout=10)

    relay.bounce("gone@acme.example")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as bounced:
        await send("gone@acme.example")
    assert bounced.value.recipients[0].code == 550

    relay.refuse_data()
    with pytest.raises(aiosmtplib.SMTPDataError) as denied:
        await send("ok@acme.example")
    assert denied.value.code == 554

    relay.accept()
    relay.defer("DATA")
    with pytest.raises(aiosmtplib.SMTPDataError) as later:
        await send("ok@acme.example")
    assert later.value.code == 451
    relay.defer("RCPT")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as later_rcpt:
        await send("ok@acme.example")
    assert later_rcpt.value.recipients[0].code == 451

    relay.accept()
    relay.stall("greeting")
    greeting = asyncio.create_task(send("early@acme.example"))
    await eventually(lambda: relay.stalled_now == 1, what="the stall holding the greeting")
    relay.release()
    await asyncio.wait_for(greeting, timeout=10)

    relay.stall("DATA")
    sending = asyncio.create_task(send("held@acme.example"))
    await eventually(lambda: relay.stalled_now == 1, what="the stall holding the send")
    await asyncio.sleep(0.5)
    assert not sending.done() and not relay.messages_to("held@acme.example")
    relay.release()
    await asyncio.wait_for(sending, timeout=10)
    await send("ok@acme.example")

    assert [m.rcpt_tos for m in relay.messages()] == [
        ("early@acme.example",),
        ("held@acme.example",),
        ("ok@acme.example",),
    ]
    assert relay.messages()[1].message_id == "<m-held@acme.example>"
    assert relay.attempts("ok@acme.example") == 4 and relay.attempts("gone@acme.example") == 1
    assert [r.reply for r in relay.refusals()] == [BOUNCED, RELAY_DENIED, TRY_LATER, TRY_LATER]
    assert relay.stalled_now == 0 and relay.stalled_total == 2
