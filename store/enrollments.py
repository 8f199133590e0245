"""Reading and writing enrollments: the read model behind the Enrollments table, timelines and claims."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, CursorResult, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    AccountFieldsBase,
    ContactForm,
    EnrollmentStatus,
    EnrollmentView,
    RecordEnrollment,
    TimelineEvent,
)
from domain.rules import organization_key
from domain.status import OPEN_STATUSES
from store import events
from store.db import run, transaction
from store.paging import newest_first, now, organization_search
from store.tables import Enrollment, OrganizationClaim, TimelineEntry


class OrganizationTaken(Exception):
    """Another open enrollment or live account already has this organization name."""

    def __init__(self, enrollment_id: str) -> None:
        super().__init__(f"organization already claimed by enrollment {enrollment_id}")
        self.enrollment_id = enrollment_id


# The statements on every create's path, built once with bound parameters: SQLAlchemy builds, keys and looks up a
# statement made afresh at each call, about 50 µs of CPU each (docs/performance.md).
_HOLDER = select(OrganizationClaim.enrollment_id).where(OrganizationClaim.organization_key == bindparam("b_key"))
_RELEASE = delete(OrganizationClaim).where(OrganizationClaim.enrollment_id == bindparam("b_enrollment_id"))
_CLAIM = insert(OrganizationClaim)
_CLOSED = (
    select(TimelineEntry.id)
    .where(TimelineEntry.enrollment_id == bindparam("b_enrollment_id"), TimelineEntry.event == "closed")
    .limit(1)
)
_EXISTS = select(Enrollment.id).where(Enrollment.id == bindparam("b_id"))
_INSERT = insert(Enrollment)
_UPDATE = update(Enrollment).where(Enrollment.id == bindparam("b_id"))
_UPDATE_IF_NEWER = _UPDATE.where(
    or_(Enrollment.record_version.is_(None), Enrollment.record_version < bindparam("b_version"))
)
_ENTRY_SEEN = select(TimelineEntry.id).where(TimelineEntry.key == bindparam("b_key"))
_ADD_ENTRY = insert(TimelineEntry)


async def find_claim(url: str, organization_name: str) -> str | None:
    """The enrollment that holds `organization_name`, if an open one or a live account does."""
    key = organization_key(organization_name)
    return await run(url, lambda conn: _holder(conn, key))


def _holder(conn: Connection, key: str) -> str | None:
    holder: str | None = conn.scalar(_HOLDER, {"b_key": key})
    return holder


def _claim(conn: Connection, key: str, enrollment_id: str, *, new: bool = False) -> None:
    """Hold `key` for the enrollment (its earlier name's claim given up); `new`: the enrollment's first record,
    which holds no claim yet."""
    holder = _holder(conn, key)
    if holder is not None:
        if holder != enrollment_id:
            raise OrganizationTaken(holder)
        return
    if not new:
        conn.execute(_RELEASE, {"b_enrollment_id": enrollment_id})
    conn.execute(_CLAIM, {"organization_key": key, "enrollment_id": enrollment_id, "claimed_at": now()})


def record_version(event_key: str) -> int | None:
    """The workflow's event counter in `event_key` (`<workflow id>/event-<n>`), which only grows over the life of
    the enrollment or account (continue-as-new carries it on): the version of the view the record brings. None
    for a key without one, or keyed by run too (`<workflow id>/<run id>/event-<n>`: an account run from before
    the `carried-handover` patch, whose counter starts again in each run)."""
    head, _, counter = event_key.rpartition("/event-")
    return int(counter) if counter.isdigit() and "/" not in head else None


def _closed(conn: Connection, enrollment_id: str) -> bool:
    """Whether the enrollment was closed (expired past its revival window): its closing released its claim for
    good, so a later record (a mail event in the run's last moments) must not take the name again."""
    return conn.scalar(_CLOSED, {"b_enrollment_id": enrollment_id}) is not None


async def record_enrollment(url: str, record: RecordEnrollment) -> None:
    """Upsert the enrollment row from the workflow's view and add the event once (keyed), and with a new timeline
    event that other systems hear of, its event (store/events.py) in the same transaction.

    The row is written only by a record newer than the one it holds (by the event counter, compared in SQL): a
    timed-out attempt that is still running cannot bring back an older view, or its claim."""
    view = record.view
    key = organization_key(view.organization_name)
    version = record_version(record.event_key)
    columns: dict[str, Any] = {
        **account_columns(view),
        "status": view.status.value,
        "organization_key": key,
        "created_by": view.created_by,
        "created_at": view.created_at,
        "expires_at": view.expires_at,
        "reminders_sent": view.reminders_sent,
        "invitation_sent_at": view.invitation_sent_at,
        "account_id": view.account_id,
        "link_version": view.link_version,
        "bounced": view.bounced,
        "bounce_reason": view.bounce_reason,
        "form": view.form.model_dump(mode="json") if view.form else None,
        "updated_at": now(),
    }
    if version is not None:
        columns["record_version"] = version

    def write(conn: Connection) -> None:  # plain statements: two of these a create
        new = conn.scalar(_EXISTS, {"b_id": view.id}) is None  # the first record: nothing else of it is stored yet
        if new:
            conn.execute(_INSERT, {"id": view.id, **columns})
            current = True
        else:
            if version is None:
                result = conn.execute(_UPDATE, {"b_id": view.id, **columns})
            else:
                result = conn.execute(_UPDATE_IF_NEWER, {"b_id": view.id, "b_version": version, **columns})
            current = cast(CursorResult[Any], result).rowcount > 0
        if current:
            ended = view.status in (EnrollmentStatus.rejected, EnrollmentStatus.cancelled)
            closed = not new and view.status == EnrollmentStatus.expired and _closed(conn, view.id)
            if view.status in OPEN_STATUSES and not record.release_claim and not closed:
                _claim(conn, key, view.id, new=new)
            elif not new and (record.release_claim or ended or closed):
                conn.execute(_RELEASE, {"b_enrollment_id": view.id})
        # A retry finds its entry (the key is unique); a new enrollment has none.
        seen = None if new else conn.scalar(_ENTRY_SEEN, {"b_key": record.event_key})
        if seen is None:
            conn.execute(
                _ADD_ENTRY,
                {
                    "key": record.event_key,
                    "enrollment_id": view.id,
                    "account_id": view.account_id,
                    "at": record.event.at,
                    "event": record.event.event,
                    "actor": record.event.actor,
                    "note": record.event.note,
                    "source": record.event.source,
                },
            )
            kind = events.enrollment_event_type(record.event.event)
            if kind is not None:
                events.write_event(  # last: it takes the events' order lock (store/events.py)
                    conn,
                    key=record.event_key,
                    type=kind,
                    created_at=record.event.at,
                    data=events.enrollment_data(view),
                    account_id=view.account_id,
                    reseller_account_id=view.reseller_account_id,
                    fresh=True,  # its timeline entry was added just now, in this transaction
                )

    try:
        await run(url, write)
    except IntegrityError as exc:
        # Two writers raced for the same claim: whoever holds it now is the answer.
        holder = await find_claim(url, view.organization_name)
        if holder and holder != view.id:
            raise OrganizationTaken(holder) from exc
        raise


def account_columns(view: AccountFieldsBase) -> dict[str, Any]:
    """The account fields of `view` by name, as the columns of those names in `enrollments` and `accounts`
    hold them (the member type by its value)."""
    columns = {name: getattr(view, name) for name in AccountFieldsBase.model_fields}
    columns["member_type"] = view.member_type.value
    return columns


def _view(row: Enrollment, timeline: list[TimelineEvent]) -> EnrollmentView:
    return EnrollmentView(
        **{name: getattr(row, name) for name in AccountFieldsBase.model_fields},
        id=row.id,
        status=EnrollmentStatus(row.status),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        reminders_sent=row.reminders_sent,
        invitation_sent_at=row.invitation_sent_at,
        account_id=row.account_id,
        link_version=row.link_version,
        form=ContactForm.model_validate(row.form) if row.form else None,
        bounced=row.bounced,
        bounce_reason=row.bounce_reason,
        timeline=timeline,
    )


async def timeline_of(session: AsyncSession, *, enrollment_id: str) -> list[TimelineEvent]:
    rows = await session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.enrollment_id == enrollment_id)
        .order_by(TimelineEntry.at, TimelineEntry.id)
    )
    return [TimelineEvent(at=r.at, event=r.event, actor=r.actor, note=r.note, source=r.source) for r in rows]


async def get_enrollment(url: str, enrollment_id: str) -> EnrollmentView | None:
    async with transaction(url) as session:
        row = await session.get(Enrollment, enrollment_id)
        if row is None:
            return None
        return _view(row, await timeline_of(session, enrollment_id=enrollment_id))


async def list_enrollments(
    url: str,
    *,
    status: EnrollmentStatus | None = None,
    member_type: str | None = None,
    q: str | None = None,
    reseller_account_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[EnrollmentView], str | None]:
    """Newest first, keyset-paginated on (created_at, id) so deep pages stay as fast as the first;
    `reseller_account_id`: only the enrollments of customers sold through that reseller."""
    query = select(Enrollment)
    if reseller_account_id is not None:
        query = query.where(Enrollment.reseller_account_id == reseller_account_id)
    if status is not None:
        query = query.where(Enrollment.status == status.value)
    if member_type is not None:
        query = query.where(Enrollment.member_type == member_type)
    if q and q.strip():
        query = query.where(organization_search(url, q))
    page, next_cursor = await newest_first(url, query, Enrollment, limit=limit, cursor=cursor)
    return [_view(row, []) for row in page], next_cursor


async def count_by_status(url: str) -> dict[str, int]:
    """How many enrollments each status holds now (statuses with none are left out)."""
    async with transaction(url) as session:
        rows = await session.execute(select(Enrollment.status, func.count()).group_by(Enrollment.status))
        return {status: int(count) for status, count in rows.all()}
