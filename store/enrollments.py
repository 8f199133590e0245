"""Reading and writing enrollments: the read model behind the Enrollments table, timelines and claims."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    ContactForm,
    EnrollmentStatus,
    EnrollmentView,
    MemberType,
    RecordEnrollment,
    TimelineEvent,
)
from domain.rules import organization_key
from domain.status import OPEN_STATUSES
from store.db import transaction
from store.tables import Account, Enrollment, OrganizationClaim, TimelineEntry

MAX_PAGE = 200


class OrganizationTaken(Exception):
    """Another open enrollment or live account already has this organization name."""

    def __init__(self, enrollment_id: str) -> None:
        super().__init__(f"organization already claimed by enrollment {enrollment_id}")
        self.enrollment_id = enrollment_id


class BadCursor(ValueError):
    pass


def now() -> datetime:
    return datetime.now(UTC)


async def find_claim(url: str, organization_name: str) -> str | None:
    """The enrollment that holds `organization_name`, if an open one or a live account does."""
    async with transaction(url) as session:
        claim = await session.get(OrganizationClaim, organization_key(organization_name))
        return claim.enrollment_id if claim else None


async def _claim(session: AsyncSession, key: str, enrollment_id: str) -> None:
    existing = await session.get(OrganizationClaim, key)
    if existing is not None:
        if existing.enrollment_id != enrollment_id:
            raise OrganizationTaken(existing.enrollment_id)
        return
    await session.execute(delete(OrganizationClaim).where(OrganizationClaim.enrollment_id == enrollment_id))
    session.add(OrganizationClaim(organization_key=key, enrollment_id=enrollment_id, claimed_at=now()))
    await session.flush()


async def record_enrollment(url: str, record: RecordEnrollment) -> None:
    """Upsert the enrollment row from the workflow's view and add the event once (keyed)."""
    view = record.view
    key = organization_key(view.organization_name)
    try:
        async with transaction(url) as session:
            if view.status in OPEN_STATUSES and not record.release_claim:
                await _claim(session, key, view.id)
            elif record.release_claim or view.status in (EnrollmentStatus.rejected, EnrollmentStatus.cancelled):
                await session.execute(delete(OrganizationClaim).where(OrganizationClaim.enrollment_id == view.id))
            row = await session.get(Enrollment, view.id)
            if row is None:
                row = Enrollment(id=view.id)
                session.add(row)
            row.status = view.status.value
            row.organization_name = view.organization_name
            row.organization_key = key
            row.member_type = view.member_type.value
            row.service_end_date = view.service_end_date
            row.display_users_purchased = view.display_users_purchased
            row.users_purchased = view.users_purchased
            row.corporate_contact_email = view.corporate_contact_email
            row.reseller_account_id = view.reseller_account_id
            row.created_by = view.created_by
            row.created_at = view.created_at
            row.expires_at = view.expires_at
            row.reminders_sent = view.reminders_sent
            row.invitation_sent_at = view.invitation_sent_at
            row.account_id = view.account_id
            row.link_version = view.link_version
            row.bounced = view.bounced
            row.bounce_reason = view.bounce_reason
            row.form = view.form.model_dump(mode="json") if view.form else None
            row.updated_at = now()
            seen = await session.scalar(select(TimelineEntry.id).where(TimelineEntry.key == record.event_key))
            if seen is None:
                session.add(
                    TimelineEntry(
                        key=record.event_key,
                        enrollment_id=view.id,
                        account_id=view.account_id,
                        at=record.event.at,
                        event=record.event.event,
                        actor=record.event.actor,
                        note=record.event.note,
                        source=record.event.source,
                    )
                )
    except IntegrityError as exc:
        # Two writers raced for the same claim: whoever holds it now is the answer.
        holder = await find_claim(url, view.organization_name)
        if holder and holder != view.id:
            raise OrganizationTaken(holder) from exc
        raise


def _view(row: Enrollment, timeline: list[TimelineEvent]) -> EnrollmentView:
    return EnrollmentView(
        id=row.id,
        status=EnrollmentStatus(row.status),
        service_end_date=row.service_end_date,
        member_type=MemberType(row.member_type),
        display_users_purchased=row.display_users_purchased,
        users_purchased=row.users_purchased,
        organization_name=row.organization_name,
        corporate_contact_email=row.corporate_contact_email,
        reseller_account_id=row.reseller_account_id,
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


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(row_id, str):
            raise ValueError
        return parsed, row_id
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise BadCursor("cursor is not one this API returned") from exc


Row = TypeVar("Row", Enrollment, Account)


async def newest_first(
    url: str, query: Select[Row], table: type[Row], *, limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """One page of `query`, newest first, keyset-paginated on (created_at, id): deep pages cost what page 1 does."""
    if cursor:
        at, row_id = decode_cursor(cursor)
        query = query.where(or_(table.created_at < at, and_(table.created_at == at, table.id < row_id)))
    limit = max(1, min(limit, MAX_PAGE))
    query = query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    async with transaction(url) as session:
        rows = list(await session.scalars(query))
    page = rows[:limit]
    return page, encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_enrollments(
    url: str,
    *,
    status: EnrollmentStatus | None = None,
    member_type: str | None = None,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[EnrollmentView], str | None]:
    """Newest first, keyset-paginated on (created_at, id) so deep pages stay as fast as the first."""
    query = select(Enrollment)
    if status is not None:
        query = query.where(Enrollment.status == status.value)
    if member_type is not None:
        query = query.where(Enrollment.member_type == member_type)
    if q:
        pattern = f"%{escape_like(organization_key(q))}%"
        query = query.where(Enrollment.organization_key.like(pattern, escape="\\"))
    page, next_cursor = await newest_first(url, query, Enrollment, limit=limit, cursor=cursor)
    return [_view(row, []) for row in page], next_cursor
