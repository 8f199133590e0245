"""The portal's reads: the Member Account Enrollments table, sorted and keyset-paginated both ways.

Each sort walks an index in order (`ix_enrollments_created`, `ix_enrollments_status_created`,
`ix_enrollments_type_created`, `ix_enrollments_organization` and its status and type variants), and a page
continues from the last row it showed, so page 2,000 costs what page 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from domain.models import EnrollmentStatus, MemberType
from store.db import transaction
from store.paging import Position, decode_cursor, encode_cursor, instant, organization_search, page_size
from store.tables import Account, Enrollment


class Sort(StrEnum):
    newest = "newest"
    oldest = "oldest"
    organization = "organization"
    organization_desc = "organization_desc"


TIME_SORTS = (Sort.newest, Sort.oldest)
"""The sorts on (created_at, id); the others are on (organization_key, id)."""

SORT_LABELS = {
    Sort.newest: "Newest first",
    Sort.oldest: "Oldest first",
    Sort.organization: "Organization A–Z",
    Sort.organization_desc: "Organization Z–A",
}


PageQuery = Select[str, str, str, str, str, str, datetime, datetime | None, bool, str | None]
"""id, organization name and key, member type, status, contact email, created at, expires at, bounced, reseller
account id."""


@dataclass(frozen=True)
class EnrollmentRow:
    """One line of the table: only the columns it shows."""

    id: str
    organization_name: str
    member_type: MemberType
    status: EnrollmentStatus
    corporate_contact_email: str
    created_at: datetime
    expires_at: datetime | None
    bounced: bool = False
    reseller_account_id: str | None = None
    reseller_name: str | None = None
    """The organization name of the reseller a customer is sold through ("via <reseller>" in the table)."""


@dataclass(frozen=True)
class EnrollmentPage:
    rows: list[EnrollmentRow]
    next_cursor: str | None
    previous_cursor: str | None


def _key_column(sort: Sort) -> InstrumentedAttribute[Any]:
    return Enrollment.created_at if sort in TIME_SORTS else Enrollment.organization_key


def _descending(sort: Sort) -> bool:
    return sort in (Sort.newest, Sort.organization_desc)


def _key_of(row: Any, sort: Sort) -> datetime | str:
    return row.created_at if sort in TIME_SORTS else str(row.organization_key)


def _stop(cursor: str, sort: Sort) -> Position[datetime] | Position[str]:
    """Where `cursor`, a cursor of this table in `sort`, left off; BadCursor for any other."""
    if sort in TIME_SORTS:
        return decode_cursor(cursor, sort.value, instant, both_ways=True)
    return decode_cursor(cursor, sort.value, str, both_ways=True)


def _beyond(column: InstrumentedAttribute[Any], value: Any, row_id: str, *, forward: bool) -> ColumnElement[bool]:
    """Rows strictly past (value, id) in the walking direction, written so the index range is usable."""
    if forward:
        return and_(column >= value, or_(column > value, Enrollment.id > row_id))
    return and_(column <= value, or_(column < value, Enrollment.id < row_id))


def page_query(
    *,
    url: str = "",
    status: EnrollmentStatus | None = None,
    member_type: MemberType | None = None,
    q: str | None = None,
    sort: Sort = Sort.newest,
    limit: int = 50,
    cursor: str | None = None,
    reseller_account_id: str | None = None,
) -> tuple[PageQuery, bool]:
    """The SELECT of one page (limit + 1 rows, to tell whether there are more), and whether it walks backwards."""
    column = _key_column(sort)
    query = select(
        Enrollment.id,
        Enrollment.organization_name,
        Enrollment.organization_key,
        Enrollment.member_type,
        Enrollment.status,
        Enrollment.corporate_contact_email,
        Enrollment.created_at,
        Enrollment.expires_at,
        Enrollment.bounced,
        Enrollment.reseller_account_id,
    )
    if reseller_account_id is not None:
        query = query.where(Enrollment.reseller_account_id == reseller_account_id)
    if status is not None:
        query = query.where(Enrollment.status == status.value)
    if member_type is not None:
        query = query.where(Enrollment.member_type == member_type.value)
    if q and q.strip():
        query = query.where(organization_search(url, q))
    backwards = False
    if cursor:
        stop = _stop(cursor, sort)
        backwards = stop.before
        # Walking "before" a row runs the index the other way; the caller turns the rows back round.
        query = query.where(_beyond(column, stop.key, stop.row_id, forward=_descending(sort) == backwards))
    if _descending(sort) != backwards:
        query = query.order_by(column.desc(), Enrollment.id.desc())
    else:
        query = query.order_by(column.asc(), Enrollment.id.asc())
    return query.limit(page_size(limit) + 1), backwards


async def enrollment_page(
    url: str,
    *,
    status: EnrollmentStatus | None = None,
    member_type: MemberType | None = None,
    q: str | None = None,
    sort: Sort = Sort.newest,
    limit: int = 50,
    cursor: str | None = None,
    reseller_account_id: str | None = None,
) -> EnrollmentPage:
    """One page of the table; `cursor` is a `next_cursor` or `previous_cursor` of an earlier page;
    `reseller_account_id`: only the customers sold through that reseller (a partner's own table)."""
    limit = page_size(limit)
    query, backwards = page_query(
        url=url,
        status=status,
        member_type=member_type,
        q=q,
        sort=sort,
        limit=limit,
        cursor=cursor,
        reseller_account_id=reseller_account_id,
    )
    async with transaction(url) as session:
        found = list((await session.execute(query)).all())
        resellers = {r.reseller_account_id for r in found[:limit] if r.reseller_account_id}
        names: dict[str, str] = {}
        if resellers:
            named = await session.execute(
                select(Account.id, Account.organization_name).where(Account.id.in_(sorted(resellers)))
            )
            names = {account_id: name for account_id, name in named.all()}
    more = len(found) > limit
    found = found[:limit]
    if backwards:
        found.reverse()
    rows = [
        EnrollmentRow(
            id=r.id,
            organization_name=r.organization_name,
            member_type=MemberType(r.member_type),
            status=EnrollmentStatus(r.status),
            corporate_contact_email=r.corporate_contact_email,
            created_at=r.created_at,
            expires_at=r.expires_at,
            bounced=r.bounced,
            reseller_account_id=r.reseller_account_id,
            reseller_name=names.get(r.reseller_account_id) if r.reseller_account_id else None,
        )
        for r in found
    ]
    next_cursor = previous_cursor = None
    if found:
        first, last = found[0], found[-1]
        if more or backwards:
            next_cursor = encode_cursor(sort.value, _key_of(last, sort), last.id)
        if (more and backwards) or (cursor and not backwards):
            previous_cursor = encode_cursor(sort.value, _key_of(first, sort), first.id, before=True)
    return EnrollmentPage(rows=rows, next_cursor=next_cursor, previous_cursor=previous_cursor)
