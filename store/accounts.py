"""Reading and writing member accounts: the read model of each MemberAccountWorkflow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.models import (
    AccountFieldsBase,
    AccountStatus,
    AccountView,
    ContactForm,
    EnrollmentStatus,
    FieldError,
    MemberType,
    RecordAccount,
    Role,
    TimelineEvent,
)
from domain.rules import organization_key
from store import events
from store.db import transaction
from store.enrollments import account_columns, record_version
from store.paging import MAX_PAGE, escape_like, newest_first, now
from store.tables import Account, Enrollment, OrganizationClaim, TimelineEntry, User

PENDING = (EnrollmentStatus.new, EnrollmentStatus.pending_review, EnrollmentStatus.in_review)
"""Enrollments on their way to becoming an account (an Expired one is not, until it is resent)."""

IN_CONTACTS = "corporate_contact_email"
"""The one account field that is not a column of `accounts`: its row keeps it in the `contacts` JSON."""


async def record_account(url: str, record: RecordAccount) -> None:
    """Upsert the account row from the workflow's view and add the event once (keyed).

    The row is written only by a record newer than the one it holds (by the event counter): a timed-out attempt
    that is still running cannot bring back an older view."""
    view = record.view
    version = record_version(record.event_key)
    async with transaction(url) as session:
        row = await session.get(Account, view.id, with_for_update=True)
        if row is None:
            row = Account(id=view.id, created_at=view.created_at)
            session.add(row)
        elif version is not None and row.record_version is not None and row.record_version >= version:
            await _add_event(session, record)
            return
        if version is not None:
            row.record_version = version
        row.enrollment_id = view.enrollment_id
        row.status = view.status.value
        columns = account_columns(view)
        corporate = columns.pop(IN_CONTACTS)
        for name, value in columns.items():
            setattr(row, name, value)
        row.organization_key = organization_key(view.organization_name)
        row.service_start_date = view.service_start_date
        row.users_existing = view.users_existing
        row.users_reported_at = view.users_reported_at
        row.contacts = {
            IN_CONTACTS: corporate,
            "created_by": view.created_by,
            **(view.contacts.model_dump(mode="json") if view.contacts else {}),
        }
        row.updated_at = now()
        if record.release_claim:
            await session.execute(
                delete(OrganizationClaim).where(OrganizationClaim.enrollment_id == view.enrollment_id)
            )
        await _add_event(session, record)


async def _add_event(session: AsyncSession, record: RecordAccount) -> None:
    """The record's timeline event, once (by its key); and with a new one that other systems hear of, its event
    (store/events.py), last in the transaction."""
    if record.event is None:
        return
    seen = await session.scalar(select(TimelineEntry.id).where(TimelineEntry.key == record.event_key))
    if seen is None:
        session.add(
            TimelineEntry(
                key=record.event_key,
                enrollment_id=None,
                account_id=record.view.id,
                at=record.event.at,
                event=record.event.event,
                actor=record.event.actor,
                note=record.event.note,
                source=record.event.source,
            )
        )
        kind = events.account_event_type(record.event.event, record.view.status)
        if kind is not None:
            await events.add_event(
                session,
                key=record.event_key,
                type=kind,
                created_at=record.event.at,
                data=events.account_data(record.view),
                account_id=record.view.id,
                reseller_account_id=record.view.reseller_account_id,
            )


def _view(row: Account, timeline: list[TimelineEntry]) -> AccountView:
    contacts = dict(row.contacts or {})
    corporate = str(contacts.pop(IN_CONTACTS, ""))
    created_by = contacts.pop("created_by", None)

    return AccountView(
        **{name: getattr(row, name) for name in AccountFieldsBase.model_fields if name != IN_CONTACTS},
        corporate_contact_email=corporate,
        id=row.id,
        enrollment_id=row.enrollment_id,
        status=AccountStatus(row.status),
        service_start_date=row.service_start_date,
        users_existing=row.users_existing,
        users_reported_at=row.users_reported_at,
        contacts=ContactForm.model_validate(contacts) if contacts else None,
        created_by=created_by,
        created_at=row.created_at,
        timeline=[TimelineEvent(at=t.at, event=t.event, actor=t.actor, note=t.note, source=t.source) for t in timeline],
    )


RESELLER_PROBLEM = "must be the id of an Active reseller member account"


async def reseller_problem(url: str, reseller_account_id: str | None) -> FieldError | None:
    """The one check of a customer's reseller: none named, or an Active reseller account; else the error."""
    if reseller_account_id is None:
        return None
    async with transaction(url) as session:
        row = await session.get(Account, reseller_account_id)
        if row is not None and row.member_type == MemberType.reseller and row.status == AccountStatus.active:
            return None
    return FieldError(field="reseller_account_id", message=RESELLER_PROBLEM)


async def get_account(url: str, account_id: str) -> AccountView | None:
    async with transaction(url) as session:
        row = await session.get(Account, account_id)
        if row is None:
            return None
        events = await session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.account_id == account_id, TimelineEntry.enrollment_id.is_(None))
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
        return _view(row, list(events))


async def list_accounts(
    url: str,
    *,
    q: str | None = None,
    status: AccountStatus | None = None,
    member_type: MemberType | None = None,
    reseller_account_id: str | None = None,
    ends_after: date | None = None,
    ends_before: date | None = None,
    exclude_deleted: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AccountView], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(Account)
    if exclude_deleted:
        query = query.where(Account.status != AccountStatus.deleted.value)
    if q:
        query = query.where(Account.organization_key.like(f"%{escape_like(organization_key(q))}%", escape="\\"))
    if status is not None:
        query = query.where(Account.status == status.value)
    if member_type is not None:
        query = query.where(Account.member_type == member_type.value)
    if reseller_account_id is not None:
        query = query.where(Account.reseller_account_id == reseller_account_id)
    if ends_after is not None:
        query = query.where(Account.service_end_date >= ends_after)
    if ends_before is not None:
        query = query.where(Account.service_end_date <= ends_before)
    page, next_cursor = await newest_first(url, query, Account, limit=limit, cursor=cursor)
    return [_view(row, []) for row in page], next_cursor


@dataclass(frozen=True)
class ResellerCounts:
    customers_enrolled: int
    pending: int
    expiring: int


async def reseller_counts(url: str, reseller_account_id: str, today: date, expiring_by: date) -> ResellerCounts:
    """A reseller's roll-up: its customers' accounts (not Deleted), the open enrollments that name it, and
    its Active or Suspended customers whose service ends after today and by `expiring_by`."""
    customers = select(func.count()).where(
        Account.reseller_account_id == reseller_account_id, Account.status != AccountStatus.deleted.value
    )
    pending = select(func.count()).where(
        Enrollment.reseller_account_id == reseller_account_id,
        Enrollment.status.in_([s.value for s in PENDING]),
    )
    expiring = select(func.count()).where(
        Account.reseller_account_id == reseller_account_id,
        Account.status.in_([AccountStatus.active.value, AccountStatus.suspended.value]),
        Account.service_end_date > today,
        Account.service_end_date <= expiring_by,
    )
    async with transaction(url) as session:
        return ResellerCounts(
            customers_enrolled=int(await session.scalar(customers) or 0),
            pending=int(await session.scalar(pending) or 0),
            expiring=int(await session.scalar(expiring) or 0),
        )


async def reseller_choices(url: str, limit: int = MAX_PAGE) -> list[tuple[str, str]]:
    """(id, organization name) of the reseller accounts that are not Deleted, by name: a filter's options."""
    query = (
        select(Account.id, Account.organization_name)
        .where(Account.member_type == MemberType.reseller.value, Account.status != AccountStatus.deleted.value)
        .order_by(Account.organization_key, Account.id)
        .limit(limit)
    )
    async with transaction(url) as session:
        return [(row.id, row.organization_name) for row in await session.execute(query)]


@dataclass(frozen=True)
class CustomerUsage:
    """Users across a reseller's customers (not Deleted), added up by the database, never row by row.

    `users_purchased` and `users_available` count only the customers that display users purchased (a
    pay-as-you-go customer has no purchased figure): available is each one's purchased less existing, never
    below 0, and `users_over` what the others use beyond what they bought. `users_existing` counts every customer;
    one that never reported usage counts 0 and is in `customers_not_reported`."""

    customers: int
    customers_displaying_purchased: int
    customers_not_reported: int
    users_purchased: int
    users_existing: int
    users_available: int
    users_over: int


async def customer_usage(url: str, reseller_account_id: str) -> CustomerUsage:
    """The reseller's customers' users, totalled in one query (index on `reseller_account_id`)."""
    displayed = Account.display_users_purchased.is_(True)
    purchased = func.coalesce(Account.users_purchased, 0)
    existing = func.coalesce(Account.users_existing, 0)
    query = select(
        func.count(),
        func.sum(case((displayed, 1), else_=0)),
        func.sum(case((Account.users_existing.is_(None), 1), else_=0)),
        func.sum(case((displayed, purchased), else_=0)),
        func.sum(existing),
        func.sum(case((and_(displayed, purchased > existing), purchased - existing), else_=0)),
        func.sum(case((and_(displayed, existing > purchased), existing - purchased), else_=0)),
    ).where(Account.reseller_account_id == reseller_account_id, Account.status != AccountStatus.deleted.value)
    async with transaction(url) as session:
        row = (await session.execute(query)).one()
    return CustomerUsage(*(int(value or 0) for value in row))


async def reseller_recipients(url: str, reseller_account_id: str) -> list[str]:
    """The emails of a reseller account's active administrators (role `reseller`: activated, or made by the CLI
    or an admin, and not disabled), by address; none once the account is Deleted or is no reseller's."""
    query = (
        select(User.email)
        .join(Account, Account.id == User.account_id)
        .where(
            User.account_id == reseller_account_id,
            User.role == Role.reseller.value,
            User.disabled.is_(False),
            User.password_hash != "",
            or_(User.invitation.is_(None), User.invitation == "activated"),
            Account.member_type == MemberType.reseller.value,
            Account.status != AccountStatus.deleted.value,
        )
        .order_by(User.email)
    )
    async with transaction(url) as session:
        return list(await session.scalars(query))
