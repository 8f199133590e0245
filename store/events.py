"""Events: every state change as other systems see it (`GET /api/events`, webhook deliveries).

An event `{id, type, created_at, data}` is added by the writer of the change it describes, in that change's own
transaction (`add_event`), so there is never a change without its event nor an event without its change. Its id is
derived from the change's key (`event_id`): a retried write finds it there and adds nothing.

**Order.** `seq` orders events, and a reader relies on one guarantee: once it has seen the event of seq n it has
seen every event of a lower seq (a poller resumes after n, a webhook endpoint delivers in seq order, and neither
may skip one that commits late). A sequence alone does not give that: on PostgreSQL two transactions may take
seqs 5 and 6 and commit 6 first, and a reader in between sees 6 without 5, for good. So on PostgreSQL every
writer takes one transaction-scoped advisory lock (`ORDER_LOCK`) right before its insert and holds it until it
commits: seqs are then allocated and made visible in the same order. SQLite has one writer at a time already (the
transaction holds the database's write lock from its first write to its commit). The lock serialises only the
last moment of each writer, so the insert comes as late as possible in the writer's transaction (after its other
writes are flushed), and nothing after it takes another lock: a writer holding `ORDER_LOCK` only commits, so it
never waits on one that waits for it.

`data` is the record as the API shows it (`enrollment_data`, `account_data`, …): never a token, a secret or a form
link. Each event names the account it is about and that account's reseller, whose users (and webhook endpoints)
see it (`list_events`' `reseller_account_id`). Events are kept `ENROLL_EVENTS_RETENTION` (`prune_events`, in the
daily retention run).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Connection, bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from domain.models import AccountStatus, AccountView, EnrollmentView
from domain.webhooks import EventType
from store.db import transaction
from store.paging import BadCursor, decode_cursor, encode_cursor, page_size
from store.retention import BATCH, delete_batch
from store.tables import Event

ORDER_LOCK = 0x656E726F6C6C6576
"""The advisory lock key every event writer takes on PostgreSQL ("enrollev" in ASCII; the migrations' lock is
"enroll", store/migrate.py): fixed, so every process agrees."""
EVENTS_ORDER = "events"
"""The `order` of an events cursor (store/paging.py's encoding): the seq of the last event a page held."""
ID_PREFIX = "evt_"

ENROLLMENT_EVENTS: dict[str, EventType] = {
    "created": EventType.enrollment_created,
    "invited": EventType.enrollment_invited,
    "invitation_bounced": EventType.enrollment_bounced,
    "reminded": EventType.enrollment_reminded,
    "expired": EventType.enrollment_expired,
    "submitted": EventType.enrollment_submitted,
    "review started": EventType.enrollment_review_started,
    "approved": EventType.enrollment_approved,
    "rejected": EventType.enrollment_rejected,
    "cancelled": EventType.enrollment_cancelled,
    "closed": EventType.enrollment_deleted,
}
"""An enrollment's timeline event (workflows/enrollment.py) → the type other systems see. `closed` is an Expired
enrollment past its revival window, gone for good. The others (opened, resent, edited, link rotated, complained,
email_failed, old link bounced) are no change another system acts on: the invitation a resend or an edit sends
is its own `invited`."""

ACCOUNT_EVENTS: dict[str, EventType] = {
    "activated": EventType.account_activated,
    "edited": EventType.account_changed,
    "users purchased changed": EventType.account_users_purchased_changed,
    "service end warning": EventType.account_service_ending,
    "suspended": EventType.account_suspended,
    "reactivated": EventType.account_reactivated,
    "expired": EventType.account_expired,
    "deleted": EventType.account_deleted,
}
"""A member account's timeline event (workflows/account.py) → the type other systems see. Usage reports add no
timeline event and so no event; `service ended` (a Suspended account whose end date passes: it stays Suspended)
changes no status, and neither do the mail's and the administrators' entries."""


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    """The order key (`list_events`' `after`); the API hands it out only inside an opaque cursor."""
    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]
    account_id: str | None
    reseller_account_id: str | None


def event_id(key: str) -> str:
    """The event id of the change keyed `key`: `evt_` and 26 characters of base32 of its SHA-256 (130 bits), the
    same for every retry of the change's write, and telling nothing of the key."""
    digest = base64.b32encode(hashlib.sha256(key.encode()).digest()).decode().lower()
    return ID_PREFIX + digest[:26]


def enrollment_event_type(timeline_event: str) -> EventType | None:
    return ENROLLMENT_EVENTS.get(timeline_event)


def account_event_type(timeline_event: str, status: AccountStatus) -> EventType | None:
    """The type of an account's timeline event, by what the change led to: a reactivation after the service end
    date leaves the account Expired (not Active), which is what a system that stops service needs to hear."""
    if timeline_event == "reactivated" and status == AccountStatus.expired:
        return EventType.account_expired
    return ACCOUNT_EVENTS.get(timeline_event)


def enrollment_data(view: EnrollmentView) -> dict[str, Any]:
    """The enrollment as `GET /api/enrollments/{id}` shows it, without its timeline (whose notes are staff's):
    id and status first, as the API's JSON has them. Never its link version, let alone a link."""
    data = view.model_dump(mode="json", exclude={"timeline", "link_version"})
    return {"id": data.pop("id"), "status": data.pop("status"), **data}


def account_data(view: AccountView) -> dict[str, Any]:
    """The account as `GET /api/accounts/{id}` shows it, without its timeline."""
    return view.model_dump(mode="json", exclude={"timeline"})


class EventFields(TypedDict):
    """An event as its writer gives it (`add_event`, `write_event`)."""

    key: str
    type: EventType
    created_at: datetime
    data: dict[str, Any]
    account_id: str | None
    reseller_account_id: str | None


async def add_event(session: AsyncSession, **event: Unpack[EventFields]) -> None:
    """`write_event` in `session`'s transaction, which is the change's own, after its pending writes. Call it last
    in that transaction (`write_event` says why)."""
    await session.flush()  # the change's own writes first, outside the lock
    await session.run_sync(lambda sync_session: write_event(sync_session, **event))


_ORDER_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_SEEN = select(Event.seq).where(Event.id == bindparam("b_id"))
_ADD = insert(Event)
"""`write_event`'s statements, built once: it is on every create's path (`store.enrollments`)."""


def write_event(conn: Connection | Session, *, fresh: bool = False, **event: Unpack[EventFields]) -> None:
    """Add the event of the change keyed `key` (once: a retry finds it and adds nothing), in `conn`'s
    transaction, which is the change's own (`store.db.run`'s body, or `add_event`'s session, flushed). Call it last
    in that transaction: on PostgreSQL it takes `ORDER_LOCK`, held until the commit (the module's docstring says
    why). `fresh`: the caller inserted the change's own row under the same unique key in this transaction, so no
    event of it can exist (a concurrent retry fails on that row's key before it gets here), and the look for one
    is skipped."""
    dialect = conn.get_bind().dialect if isinstance(conn, Session) else conn.dialect
    if dialect.name == "postgresql":
        conn.execute(_ORDER_LOCK, {"key": ORDER_LOCK})
    identifier = event_id(event["key"])
    # Under the lock (PostgreSQL's statement sees every commit before it): a concurrent retry's event is seen here.
    if not fresh and conn.scalar(_SEEN, {"b_id": identifier}) is not None:
        return
    conn.execute(
        _ADD,
        {
            "id": identifier,
            "type": event["type"].value,
            "created_at": event["created_at"],
            "data": event["data"],
            "account_id": event["account_id"],
            "reseller_account_id": event["reseller_account_id"],
        },
    )


def encode_event_cursor(seq: int) -> str:
    """The opaque cursor of the events after `seq` (0: from the oldest kept)."""
    return encode_cursor(EVENTS_ORDER, str(seq), "")


def decode_event_cursor(cursor: str) -> int:
    """The seq in a cursor `encode_event_cursor` made; BadCursor for anything else."""
    position = decode_cursor(cursor, EVENTS_ORDER, str)
    if not position.key.isdigit() or position.row_id:
        raise BadCursor("cursor is not one this API returned")
    return int(position.key)


async def list_events(
    url: str,
    *,
    after: int | None,
    types: Sequence[str] | None,
    reseller_account_id: str | None,
    limit: int,
) -> tuple[list[StoredEvent], int]:
    """The events after seq `after` (None: from the oldest kept), oldest first, at most `limit` (capped at the
    store's page size); of `types` only, when given; of one reseller's customers when `reseller_account_id` is
    given ("" matches none; None: every event). Answers the page and the seq to resume after: its last event's,
    or `after` itself (0 for None) when it is empty, so a poller keeps asking with it."""
    start = after or 0
    if reseller_account_id == "" or (types is not None and not types):
        return [], start
    query = select(Event).where(Event.seq > start)
    if types is not None:
        query = query.where(Event.type.in_(list(types)))
    if reseller_account_id is not None:
        query = query.where(Event.reseller_account_id == reseller_account_id)
    query = query.order_by(Event.seq).limit(page_size(limit))
    async with transaction(url) as session:
        rows = list(await session.scalars(query))
    events = [
        StoredEvent(
            seq=row.seq,
            id=row.id,
            type=row.type,
            created_at=row.created_at,
            data=row.data,
            account_id=row.account_id,
            reseller_account_id=row.reseller_account_id,
        )
        for row in rows
    ]
    return events, events[-1].seq if events else start


async def latest_seq(url: str) -> int:
    """The seq of the newest event (0 when there is none): a new reader that starts after it sees only what comes
    next, and misses nothing that does."""
    async with transaction(url) as session:
        return int(await session.scalar(select(func.max(Event.seq))) or 0)


async def prune_events(url: str, before: datetime, limit: int = BATCH) -> int:
    """Events that happened before `before` (`ENROLL_EVENTS_RETENTION` ago), one bounded batch (store/retention.py).
    A seq is never reused after a prune (a sequence; AUTOINCREMENT on SQLite), so cursors stay good."""
    return await delete_batch(url, Event.seq, Event.created_at < before, limit)
