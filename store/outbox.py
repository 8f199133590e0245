"""The outbox: one row per email, keyed by workflow id + activity id, checked before every send."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from domain.models import EmailResult
from store.db import run, transaction
from store.paging import now
from store.tables import MailHealth, OutboxEmail


async def sent_result(url: str, key: str) -> EmailResult | None:
    """The earlier send under `key`, if one was recorded."""
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        if row is None or row.state != "sent" or row.sent_at is None:
            return None
        return EmailResult(sent_at=row.sent_at, message_id=row.message_id, refused=_lines(row.refused_to))


@dataclass(frozen=True)
class Settled:
    """The recipients of an email already settled by earlier attempts: the relay accepted it for `delivered`, and
    refused `refused` for good (`address: reply` each). A retry sends only to the others."""

    delivered: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    """Everyone the first attempt addressed, as recorded (empty before it): a retry sends to this set, even when
    the recipients it would work out now differ (a reseller's administrator added or disabled meanwhile)."""

    def owed(self, recipients: Sequence[str]) -> list[str]:
        """`recipients` less those settled, in their order."""
        done = {address.lower() for address in self.delivered}
        done |= {line.partition(": ")[0].lower() for line in self.refused}
        return [address for address in recipients if address.lower() not in done]


def _lines(text: str | None) -> list[str]:
    return [line for line in (text or "").split("\n") if line]


def _addresses(text: str | None) -> list[str]:
    """The recipients column (`a@x, b@y`) as a list."""
    return [address.strip() for address in (text or "").split(",") if address.strip()]


_SettledRow = Row[str, datetime | None, str, str | None, str | None, str]
"""`_SETTLED_COLUMNS` of a row."""
_SETTLED_COLUMNS = (
    OutboxEmail.state,
    OutboxEmail.sent_at,
    OutboxEmail.message_id,
    OutboxEmail.delivered_to,
    OutboxEmail.refused_to,
    OutboxEmail.recipients,
)
# The statements on every email's path, built once with bound parameters (docs/performance.md).
_SETTLED_BY_KEY = select(*_SETTLED_COLUMNS).where(OutboxEmail.key == bindparam("b_key"))
_ADD = insert(OutboxEmail)
_ATTEMPTS_BY_KEY = (
    select(OutboxEmail.attempts, OutboxEmail.delivered_to, OutboxEmail.refused_to, OutboxEmail.state)
    .where(OutboxEmail.key == bindparam("b_key"))
    .with_for_update()
)
_UPDATE_BY_KEY = update(OutboxEmail).where(OutboxEmail.key == bindparam("b_key"))


def _settled(row: OutboxEmail | _SettledRow) -> Settled:
    return Settled(
        delivered=_lines(row.delivered_to), refused=_lines(row.refused_to), recipients=_addresses(row.recipients)
    )


def _merged(text: str | None, more: Sequence[str]) -> str | None:
    lines = _lines(text)
    lines += [line for line in more if line not in lines]
    return "\n".join(lines) or None


async def begin_attempt(
    url: str,
    *,
    key: str,
    kind: str,
    enrollment_id: str | None,
    account_id: str | None,
    recipients: list[str],
    subject: str,
    message_id: str,
) -> EmailResult | Settled:
    """The attempt about to send under `key`, in one transaction: the earlier send's result if one was recorded;
    else who earlier attempts already settled and whom the first one addressed (its row, at the first attempt,
    recording `recipients`)."""

    def begin(conn: Connection) -> EmailResult | Settled:  # plain statements: on every email's path
        row = conn.execute(_SETTLED_BY_KEY, {"b_key": key}).first()
        if row is None:
            conn.execute(
                _ADD,
                {
                    "key": key,
                    "kind": kind,
                    "enrollment_id": enrollment_id,
                    "account_id": account_id,
                    "recipients": ", ".join(recipients),
                    "subject": subject,
                    "message_id": message_id,
                    "state": "sending",
                    "created_at": now(),
                    "attempts": 0,
                },
            )
            return Settled()
        if row.state == "sent" and row.sent_at is not None:
            return EmailResult(sent_at=row.sent_at, message_id=row.message_id, refused=_lines(row.refused_to))
        return _settled(row)

    return await run(url, begin)


async def settled(url: str, key: str) -> Settled:
    """Who already has the email under `key`, or was refused it for good (nobody, before its first attempt)."""
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        if row is None:
            return Settled()
        return _settled(row)


async def record_outcome(
    url: str,
    key: str,
    *,
    sent_at: datetime | None,
    error: str | None,
    state: str = "failed",
    delivered: Sequence[str] = (),
    refused: Sequence[str] = (),
    mail_flowing: bool = False,
) -> None:
    """One attempt's outcome: sent, or `state` (retrying, bounced, failed, dropped) with the relay's reply; the
    recipients it reached (`delivered`) and those refused for good (`refused`, `address: reply`) are added to the
    ones earlier attempts settled. With `mail_flowing`, a send also does what `mail_accepted` does, in the same
    transaction."""

    def record(conn: Connection) -> None:
        row = conn.execute(_ATTEMPTS_BY_KEY, {"b_key": key}).first()
        if row is None:
            return
        if sent_at is not None and mail_flowing:
            _mail_flowing(conn)
        values: dict[str, Any] = {
            "attempts": (row.attempts or 0) + 1,
            "delivered_to": _merged(row.delivered_to, delivered),
            "refused_to": _merged(row.refused_to, refused),
        }
        if sent_at is not None:
            values.update(state="sent", sent_at=sent_at, error=None)
        else:
            values.update(state="dropped" if row.state == "dropped" else state, error=error)
        conn.execute(_UPDATE_BY_KEY, {"b_key": key, **values})

    await run(url, record)


async def by_message_id(url: str, message_id: str) -> OutboxEmail | None:
    """The email a provider reports on, by its Message-ID (with or without the angle brackets)."""
    wanted = message_id.strip()
    if not wanted.startswith("<"):
        wanted = f"<{wanted}>"
    async with transaction(url) as session:
        return await session.scalar(select(OutboxEmail).where(OutboxEmail.message_id == wanted).limit(1))


async def record_event(url: str, key: str, state: str, reason: str | None) -> None:
    """A provider's late report on a sent email: delivered, bounced or complained."""
    async with transaction(url) as session:
        row = await session.get(OutboxEmail, key)
        if row is None:
            return
        if not (row.state == "bounced" and state == "delivered"):
            row.state = state
        if reason:
            row.error = reason
        row.event_at = now()


async def mail_failing(url: str, reply: str) -> None:
    """The relay did not accept a message: failing since the first such attempt, with its latest reply."""
    at = now()
    async with transaction(url) as session:
        row = await session.get(MailHealth, 1)
        if row is None:
            session.add(MailHealth(id=1, failing_since=at, last_reply=reply, last_attempt_at=at))
            return
        row.failing_since = row.failing_since or at
        row.last_reply, row.last_attempt_at = reply, at


async def mail_accepted(url: str) -> None:
    """The relay answered for good (it took the message, or refused a recipient): mail is flowing again."""
    await run(url, _mail_flowing)


_FLOWING = (
    update(MailHealth)
    .where(MailHealth.id == 1, MailHealth.failing_since.is_not(None))
    .values(failing_since=None, last_sent_at=bindparam("b_at"))
)


def _mail_flowing(conn: Connection) -> None:
    conn.execute(_FLOWING, {"b_at": now()})


async def mail_trouble(url: str) -> tuple[datetime, str] | None:
    """(failing since, last reply) while the relay is not accepting mail; None while it is."""
    async with transaction(url) as session:
        row = await session.get(MailHealth, 1)
        if row is None or row.failing_since is None:
            return None
        return row.failing_since, row.last_reply or ""


async def emails_of(url: str, *, enrollment_id: str) -> list[OutboxEmail]:
    async with transaction(url) as session:
        rows = await session.scalars(
            select(OutboxEmail).where(OutboxEmail.enrollment_id == enrollment_id).order_by(OutboxEmail.created_at)
        )
        return list(rows)


async def drop_link_emails(url: str, enrollment_id: str) -> None:
    """The enrollment's links died: its invitations and reminders still waiting to go never will."""
    async with transaction(url) as session:
        await session.execute(
            update(OutboxEmail)
            .where(
                OutboxEmail.enrollment_id == enrollment_id,
                OutboxEmail.kind.in_(("invitation", "reminder")),
                OutboxEmail.state.in_(("sending", "retrying")),
            )
            .values(state="dropped")
        )


UNSENT_STATES = ("sending", "retrying")


async def unsent(url: str) -> tuple[int, datetime | None]:
    """How many emails wait to go out (their first attempt running, or retrying), and since when the oldest."""
    async with transaction(url) as session:
        query = select(func.count(), func.min(OutboxEmail.created_at)).where(OutboxEmail.state.in_(UNSENT_STATES))
        count, oldest = (await session.execute(query)).one()
        return int(count), oldest
