"""Form links (stored only as hashes) and the email outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select, text

from domain.models import EmailResult
from store.db import transaction
from store.links import LinkState, kill_links, open_link, resolve
from store.outbox import Settled, begin_attempt, emails_of, record_outcome, sent_result
from store.tables import FormLink


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def test_an_opened_link_is_live(database_url: str) -> None:
    token = new_token()
    await open_link(database_url, token=token, enrollment_id="e1", version=1)
    assert await resolve(database_url, token) == (LinkState.live, "e1", 1)


async def test_opening_the_same_link_twice_is_harmless(database_url: str) -> None:
    token = new_token()
    await open_link(database_url, token=token, enrollment_id="e1", version=1)
    await open_link(database_url, token=token, enrollment_id="e1", version=1)
    assert await resolve(database_url, token) == (LinkState.live, "e1", 1)
    async with transaction(database_url) as session:
        assert len(list(await session.scalars(select(FormLink)))) == 1


async def test_a_new_version_kills_the_old_link(database_url: str) -> None:
    first, second = new_token(), new_token()
    await open_link(database_url, token=first, enrollment_id="e1", version=1)
    await open_link(database_url, token=second, enrollment_id="e1", version=2)
    assert await resolve(database_url, first) == (LinkState.dead, "e1", 1)
    assert await resolve(database_url, second) == (LinkState.live, "e1", 2)
    # A retry of the older open does not bring it back.
    await open_link(database_url, token=first, enrollment_id="e1", version=1)
    assert (await resolve(database_url, first))[0] == LinkState.dead


async def test_links_of_other_enrollments_are_untouched(database_url: str) -> None:
    mine, theirs = new_token(), new_token()
    await open_link(database_url, token=theirs, enrollment_id="e2", version=1)
    await open_link(database_url, token=mine, enrollment_id="e1", version=1)
    await open_link(database_url, token=new_token(), enrollment_id="e1", version=2)
    await kill_links(database_url, "e1")
    assert await resolve(database_url, theirs) == (LinkState.live, "e2", 1)
    assert (await resolve(database_url, mine))[0] == LinkState.dead


async def test_kill_links_kills_every_link(database_url: str) -> None:
    tokens = [new_token() for _ in range(3)]
    for version, token in enumerate(tokens, start=1):
        await open_link(database_url, token=token, enrollment_id="e1", version=version)
    await kill_links(database_url, "e1")
    for version, token in enumerate(tokens, start=1):
        assert await resolve(database_url, token) == (LinkState.dead, "e1", version)
    await kill_links(database_url, "e1")  # again: still dead, no error
    await kill_links(database_url, "nobody")


async def test_unknown_tokens_reveal_nothing(database_url: str) -> None:
    token = new_token()
    await open_link(database_url, token=token, enrollment_id="e1", version=1)
    for other in [new_token(), "", token[:-1], token + "x", token.upper(), "x" * 500]:
        assert await resolve(database_url, other) == (LinkState.unknown, None, 0)


async def test_tokens_are_not_stored_in_plain_text(database_url: str) -> None:
    tokens = [new_token() for _ in range(3)]
    for version, token in enumerate(tokens, start=1):
        await open_link(database_url, token=token, enrollment_id="e1", version=version)
    async with transaction(database_url) as session:
        rows = (await session.execute(text("SELECT * FROM form_links"))).all()
    assert len(rows) == 3
    dump = repr([tuple(row) for row in rows])
    for token in tokens:
        assert token not in dump
        assert token[:16] not in dump


# -- the outbox ----------------------------------------------------------------------------------------------------

SENT_AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


async def attempt(
    url: str, key: str, *, enrollment_id: str = "e1", message_id: str = "<m1@enroll>"
) -> EmailResult | Settled:
    return await begin_attempt(
        url,
        key=key,
        kind="invitation",
        enrollment_id=enrollment_id,
        account_id=None,
        recipients=["pat@acme.example", "csm@provider.example"],
        subject="Complete your enrollment",
        message_id=message_id,
    )


async def test_an_attempt_answers_the_earlier_send_once_one_was_recorded(database_url: str) -> None:
    assert await attempt(database_url, "enrollment-e1/1") == Settled()
    assert await attempt(database_url, "enrollment-e1/1") == Settled(
        recipients=["pat@acme.example", "csm@provider.example"]
    )
    await record_outcome(database_url, "enrollment-e1/1", sent_at=SENT_AT, error=None)
    assert await attempt(database_url, "enrollment-e1/1") == EmailResult(sent_at=SENT_AT, message_id="<m1@enroll>")


async def test_nothing_is_sent_before_an_attempt(database_url: str) -> None:
    assert await sent_result(database_url, "enrollment-e1/1") is None


async def test_an_attempt_without_an_outcome_is_not_a_send(database_url: str) -> None:
    await attempt(database_url, "enrollment-e1/1")
    assert await sent_result(database_url, "enrollment-e1/1") is None


async def test_a_sent_email_is_remembered(database_url: str) -> None:
    await attempt(database_url, "enrollment-e1/1")
    await record_outcome(database_url, "enrollment-e1/1", sent_at=SENT_AT, error=None)
    assert await sent_result(database_url, "enrollment-e1/1") == EmailResult(sent_at=SENT_AT, message_id="<m1@enroll>")
    assert await sent_result(database_url, "enrollment-e1/2") is None


async def test_a_failed_email_is_not_a_sent_one(database_url: str) -> None:
    await attempt(database_url, "enrollment-e1/1")
    await record_outcome(database_url, "enrollment-e1/1", sent_at=None, error="550 mailbox unavailable")
    assert await sent_result(database_url, "enrollment-e1/1") is None
    [row] = await emails_of(database_url, enrollment_id="e1")
    assert row.state == "failed"
    assert row.error == "550 mailbox unavailable"


async def test_a_retry_after_a_failure_can_succeed(database_url: str) -> None:
    await attempt(database_url, "enrollment-e1/1")
    await record_outcome(database_url, "enrollment-e1/1", sent_at=None, error="421 try later")
    await attempt(database_url, "enrollment-e1/1", message_id="<m2@enroll>")
    await record_outcome(database_url, "enrollment-e1/1", sent_at=SENT_AT, error=None)
    result = await sent_result(database_url, "enrollment-e1/1")
    assert result is not None
    assert result.sent_at == SENT_AT
    # The retry keeps the first attempt's Message-ID, so a duplicate delivery is recognisable.
    assert result.message_id == "<m1@enroll>"
    [row] = await emails_of(database_url, enrollment_id="e1")
    assert row.error is None


async def test_a_new_attempt_after_a_send_keeps_the_sent_result(database_url: str) -> None:
    await attempt(database_url, "enrollment-e1/1")
    await record_outcome(database_url, "enrollment-e1/1", sent_at=SENT_AT, error=None)
    await attempt(database_url, "enrollment-e1/1", message_id="<m2@enroll>")
    assert await sent_result(database_url, "enrollment-e1/1") == EmailResult(sent_at=SENT_AT, message_id="<m1@enroll>")


async def test_an_outcome_for_an_unknown_key_is_ignored(database_url: str) -> None:
    await record_outcome(database_url, "nobody", sent_at=SENT_AT, error=None)
    assert await sent_result(database_url, "nobody") is None


async def test_emails_of_an_enrollment(database_url: str) -> None:
    await attempt(database_url, "enrollment-e1/1")
    await attempt(database_url, "enrollment-e1/2", message_id="<m2@enroll>")
    await attempt(database_url, "enrollment-e2/1", enrollment_id="e2")
    rows = await emails_of(database_url, enrollment_id="e1")
    assert [r.key for r in rows] == ["enrollment-e1/1", "enrollment-e1/2"]
    assert rows[0].recipients == "pat@acme.example, csm@provider.example"
    assert rows[0].state == "sending"
