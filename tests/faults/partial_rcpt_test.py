"""One email, several recipients, and a relay that answers one of them `451 4.3.0` at RCPT while it takes the
message for the others: the email is not sent until every recipient has it (or was refused it for good), and
each retry sends the same message (same Message-ID) only to the recipients still owed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from domain.models import EmailKind, EmailRequest
from store import outbox
from tests.faults.relay import TRY_LATER, Refusal, Relay
from tests.integration.mail_activities_test import activities, env, persist, view

ALICE = "a@acme.example"
BOB = "b@acme.example"
CAROL = "c@acme.example"
KEY = "enrollment-e1/email-expired-1"


class PartlyDeferringRelay(Relay):
    """The relay of tests/faults, answering 451 4.3.0 at RCPT for the addresses `defer_only` names."""

    def __init__(self) -> None:
        super().__init__()
        self._deferred_only: set[str] = set()

    def defer_only(self, *addresses: str) -> None:
        with self._lock:
            self._deferred_only = {a.lower() for a in addresses}

    def _rcpt_reply(self, address: str) -> str | None:
        reply = super()._rcpt_reply(address)
        if reply is not None:
            return reply
        with self._lock:
            if address.lower() not in self._deferred_only:
                return None
            self._refusals.append(Refusal("RCPT", address, TRY_LATER))
            return TRY_LATER


@pytest.fixture
def partial_relay() -> Iterator[PartlyDeferringRelay]:
    with PartlyDeferringRelay() as started:
        yield started


def to_all(*recipients: str) -> EmailRequest:
    return EmailRequest(kind=EmailKind.expired, enrollment=view(), to=list(recipients))


async def test_a_recipient_deferred_at_rcpt_is_retried_alone_until_it_has_the_email(
    database_url: str, partial_relay: PartlyDeferringRelay, tmp_path: Path
) -> None:
    relay = partial_relay
    await persist(database_url, view(), 1)
    acts = activities(tmp_path, database_url, relay.port)
    relay.defer_only(BOB)

    for attempt in (1, 2):
        with pytest.raises(ApplicationError) as deferred:
            await env("email-expired-1").run(acts.send_email, to_all(ALICE, BOB))
        assert deferred.value.type == "SmtpDeferred", deferred.value.type
        assert not deferred.value.non_retryable, "a 4xx is retried"
        [row] = await outbox.emails_of(database_url, enrollment_id="e1")
        assert row.state == "retrying" and row.delivered_to == ALICE, (row.state, row.delivered_to)
        assert "451" in (row.error or "")
        assert await outbox.sent_result(database_url, KEY) is None, "not sent while Bob is owed it"
        assert relay.attempts(ALICE) == 1, f"attempt {attempt}: Alice already has it and is not sent it again"
        assert relay.attempts(BOB) == attempt
    assert [m.rcpt_tos for m in relay.messages()] == [(ALICE,)]

    relay.defer_only()
    result = await env("email-expired-1").run(acts.send_email, to_all(ALICE, BOB))
    assert result.sent_at is not None and result.refused == []
    first, second = relay.messages()
    assert second.rcpt_tos == (BOB,), "the retry goes to Bob alone"
    assert second.message_id == first.message_id == result.message_id, "the same message, the same Message-ID"
    assert await outbox.sent_result(database_url, KEY) is not None

    again = await env("email-expired-1").run(acts.send_email, to_all(ALICE, BOB))
    assert again.sent_at == result.sent_at
    assert len(relay.messages()) == 2, "a sent email is not sent again"


async def test_a_deferred_recipient_refused_for_good_later_is_reported_and_the_others_are_not_sent_it_again(
    database_url: str, partial_relay: PartlyDeferringRelay, tmp_path: Path
) -> None:
    relay = partial_relay
    await persist(database_url, view(), 1)
    acts = activities(tmp_path, database_url, relay.port)
    relay.bounce(BOB)
    relay.defer_only(CAROL)

    with pytest.raises(ApplicationError) as deferred:
        await env("email-expired-1").run(acts.send_email, to_all(ALICE, BOB, CAROL))
    assert deferred.value.type == "SmtpDeferred"
    assert [m.rcpt_tos for m in relay.messages()] == [(ALICE,)]

    relay.defer_only()
    relay.bounce(CAROL)  # Carol's mailbox is gone by the retry: refused for good
    result = await env("email-expired-1").run(acts.send_email, to_all(ALICE, BOB, CAROL))
    assert result.sent_at is not None, "Alice has it: the email is sent, with the refusals listed"
    assert [line.partition(":")[0] for line in result.refused] == [BOB, CAROL], result.refused
    assert all("550 5.1.1" in line for line in result.refused), result.refused
    assert relay.attempts(ALICE) == 1 and relay.attempts(BOB) == 1, (
        "neither Alice nor Bob (refused for good) is tried again"
    )
    assert relay.attempts(CAROL) == 2
    assert len(relay.messages()) == 1
    [row] = await outbox.emails_of(database_url, enrollment_id="e1")
    assert row.state == "sent"
