"""The store's shared utilities: its clock, LIKE escaping, and keyset paging with its one cursor encoding.

Every list the store pages — the API's enrollments, accounts and roll-ups, and the portal's table in each of its
sorts — continues from the last row a page showed, so deep pages cost what the first does. The cursor handed
out for that is opaque: the URL-safe base64 (unpadded) of the JSON list `[order, direction, key, id]`, where
`order` names the walk (`newest`, `organization`, …), `direction` is `after` or `before` that row, `key` is the
row's sort key (an ISO 8601 instant with its offset for the time orders) and `id` the row's id. Anything else,
or a cursor of another order, is refused with `BadCursor`, which the API answers with a 422 on `cursor`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, column, or_, select, table

from domain.rules import organization_key
from store.db import transaction
from store.tables import Account, Enrollment

ENROLLMENTS_SEARCH = table("enrollments_search", column("organization_key"), column("id"))
"""SQLite's FTS5 trigram table over enrollments.organization_key (migration 0004; triggers keep it in step)."""

MAX_PAGE = 200
"""The most rows one page holds, whatever limit is asked."""

NEWEST = "newest"
"""The order of the API's lists: newest first, on (created_at, id)."""

_DIRECTIONS = ("after", "before")


class BadCursor(ValueError):
    """A cursor the store did not hand out for this list."""


def now() -> datetime:
    return datetime.now(UTC)


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def escape_glob(text: str) -> str:
    """`text` as a literal inside a GLOB pattern: `*`, `?` and `[` each in a class of their own."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def organization_search(url: str, q: str) -> ColumnElement[bool]:
    """Enrollments whose organization name contains `q` (compared as organization keys: case, accents'
    composition and spacing aside), by index: on PostgreSQL the LIKE reads the pg_trgm GIN index; on SQLite the
    FTS5 trigram table answers the GLOB. A `q` of one or two characters is shorter than a trigram and scans."""
    key = organization_key(q)
    if url.startswith("sqlite") and len(key) >= 3:
        matches = select(ENROLLMENTS_SEARCH.c.id).where(
            ENROLLMENTS_SEARCH.c.organization_key.op("GLOB")(f"*{escape_glob(key)}*")
        )
        return Enrollment.id.in_(matches)
    # The pattern is a bound parameter, never part of the statement's text: what someone typed reaches neither
    # the SQL (no quoting to get right) nor, through the engines' `hide_parameters`, an error's log line. The
    # trigram index serves `organization_key LIKE $1` with the value bound, in a custom plan and in a generic one
    # (tests/store/search_bind_test.py checks both plans on PostgreSQL).
    pattern = bindparam("organization_pattern", f"%{escape_like(key)}%", type_=String(), unique=True)
    return Enrollment.organization_key.like(pattern, escape="\\")


def page_size(limit: int) -> int:
    """The rows a page asked for `limit` holds: at least 1, at most MAX_PAGE."""
    return max(1, min(limit, MAX_PAGE))


Key = TypeVar("Key", datetime, str)


@dataclass(frozen=True)
class Position(Generic[Key]):
    """Where a page stopped, as a cursor carries it: the sort key and id of a row, and which way to walk on."""

    key: Key
    row_id: str
    before: bool = False
    """Walk to the rows before this one (a previous page) rather than after it."""


def encode_cursor(order: str, key: datetime | str, row_id: str, *, before: bool = False) -> str:
    """The cursor of the rows after (or `before`) the row (`key`, `row_id`) in `order`."""
    text = key.isoformat() if isinstance(key, datetime) else key
    direction = "before" if before else "after"
    raw = json.dumps([order, direction, text, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def instant(text: str) -> datetime:
    """The ISO 8601 instant `text`, which must carry its offset: the key of the time orders."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return parsed


def decode_cursor(cursor: str, order: str, key: Callable[[str], Key], *, both_ways: bool = False) -> Position[Key]:
    """The position `encode_cursor` put in `cursor` for `order`, its key read by `key` (`instant` or `str`);
    one walking `before` only when `both_ways`. BadCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or len(parts) != 4 or not all(isinstance(p, str) for p in parts):
            raise ValueError
        cursor_order, direction, text, row_id = parts
        if cursor_order != order or direction not in (_DIRECTIONS if both_ways else _DIRECTIONS[:1]):
            raise ValueError
        return Position(key=key(text), row_id=row_id, before=direction == "before")
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadCursor("cursor is not one this API returned") from exc


Row = TypeVar("Row", Enrollment, Account)


async def newest_first(
    url: str, query: Select[Row], table: type[Row], *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of `query`, newest first, keyset-paginated on (created_at, id): deep pages cost what page 1 does."""
    if cursor:
        stop = decode_cursor(cursor, NEWEST, instant)
        query = query.where(
            or_(table.created_at < stop.key, and_(table.created_at == stop.key, table.id < stop.row_id))
        )
    limit = page_size(limit)
    query = query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    async with transaction(url) as session:
        rows = list(await session.scalars(query))
    page = rows[:limit]
    return page, encode_cursor(NEWEST, page[-1].created_at, page[-1].id) if len(rows) > limit else None
