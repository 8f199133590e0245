"""What every way in does with a member account: read it, and change it through its workflow."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client

from domain.models import (
    AccountChange,
    AccountStatus,
    AccountView,
    Actor,
    AddUsersPurchased,
    EditAccount,
    FieldError,
    MemberType,
    UsageReport,
)
from domain.rules import check_service_end_date, parse_bool, parse_whole_number
from domain.settings import Settings
from domain.status import AccountAction, account_refusal
from starter.services.errors import Conflict, InvalidInput, NotFound, check_note
from starter.services.temporal import CheckedUpdates
from store import accounts as store
from workflows.account import MemberAccountWorkflow
from workflows.names import account_workflow_id

EXPIRING_SOON = timedelta(days=30)


class AccountSummary(BaseModel):
    """The Account Summary: users purchased / available only when the account displays them."""

    account_id: str
    organization_name: str
    member_type: MemberType
    status: AccountStatus
    service_start_date: date
    service_end_date: date
    display_users_purchased: bool
    users_purchased: int | None
    users_existing: int | None
    users_available: int | None
    users_over: int | None
    users_reported_at: datetime | None
    banner: str | None


def summarize(view: AccountView, warning_offsets: list[timedelta], today: date) -> AccountSummary:
    existing = view.users_existing or 0
    purchased = view.users_purchased or 0 if view.display_users_purchased else None
    banner = None
    warned = bool(warning_offsets) and view.service_end_date - max(warning_offsets) <= today
    if view.status == AccountStatus.expired:
        banner = f"Expired: the service ended on {view.service_end_date:%d %B %Y}; extend the date to re-enable it."
    elif warned and view.status != AccountStatus.deleted:
        banner = f"Service ends on {view.service_end_date:%d %B %Y}."
    return AccountSummary(
        account_id=view.id,
        organization_name=view.organization_name,
        member_type=view.member_type,
        status=view.status,
        service_start_date=view.service_start_date,
        service_end_date=view.service_end_date,
        display_users_purchased=view.display_users_purchased,
        users_purchased=purchased,
        users_existing=view.users_existing,
        users_available=max(0, purchased - existing) if purchased is not None else None,
        users_over=max(0, existing - purchased) if purchased is not None else None,
        users_reported_at=view.users_reported_at,
        banner=banner,
    )


def _note(note: object, errors: list[FieldError]) -> str:
    """The audit note, or its problem added to `errors` (so a form hears of every problem at once)."""
    try:
        return check_note(note)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return ""


def check_order(add: object, note: object) -> tuple[int, str]:
    """An order of users purchased: (the whole number to add, not 0, the audit note); every problem at once."""
    errors: list[FieldError] = []
    count = add if isinstance(add, int) and not isinstance(add, bool) else None
    if count is None or count == 0 or abs(count) > 1_000_000_000:
        errors.append(FieldError(field="add", message="must be a whole number other than 0"))
    audit_note = _note(note, errors)
    if errors or count is None:
        raise InvalidInput(errors)
    return count, audit_note


def check_usage(users_existing: object, reported_at: object = None) -> tuple[int, datetime | None]:
    """A usage report: (existing users, 0 or more; when they were counted, with a time zone, or None for now)."""
    count = parse_whole_number(users_existing)
    if count is None or count < 0:
        raise InvalidInput([FieldError(field="users_existing", message="must be a whole number, 0 or more")])
    if reported_at is None:
        return count, None
    try:
        when = datetime.fromisoformat(str(reported_at))
    except ValueError as exc:
        raise InvalidInput([FieldError(field="reported_at", message="must be an ISO 8601 time")]) from exc
    if when.tzinfo is None:
        raise InvalidInput([FieldError(field="reported_at", message="must include a time zone")])
    return count, when


def check_account_edit(body: Mapping[str, Any]) -> tuple[date | None, bool | None, str]:
    """A member account's edit: (the new service end date, Display Users Purchased, each None when not named;
    the audit note). Every problem is named at once."""
    changes = {name: value for name, value in body.items() if name != "audit_note"}
    errors: list[FieldError] = []
    end_date = display = None
    if not changes:
        errors.append(FieldError(field="body", message="must name service_end_date or display_users_purchased"))
    for name in sorted(set(changes) - {"service_end_date", "display_users_purchased"}):
        errors.append(FieldError(field=name, message="cannot be changed on a member account"))
    if "service_end_date" in changes:
        end_date, problem = check_service_end_date(changes["service_end_date"], datetime.now(UTC).date())
        if problem:
            errors.append(FieldError(field="service_end_date", message=problem))
    if "display_users_purchased" in changes:
        display = parse_bool(changes["display_users_purchased"])
        if display is None:
            errors.append(FieldError(field="display_users_purchased", message="must be yes or no"))
    note = _note(body.get("audit_note"), errors)
    if errors:
        raise InvalidInput(errors)
    return end_date, display, note


class Rollup(BaseModel):
    """A reseller's roll-up: its customers, the enrollments on their way, and who is expiring soon."""

    reseller_account_id: str
    organization_name: str
    customers_enrolled: int
    pending: int
    expiring_within_30_days: int
    customers: list[AccountSummary]
    next_cursor: str | None


class AccountReader:
    """Reads, from the store alone: pages that only show an account work while Temporal is down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url

    async def get(self, account_id: str) -> AccountView:
        view = await store.get_account(self.url, account_id)
        if view is None:
            raise NotFound(f"No member account has the id {account_id}.")
        return view

    async def resellers(self) -> list[tuple[str, str]]:
        """(id, organization name) of every reseller account not Deleted, by name."""
        return await store.reseller_choices(self.url)

    async def list(self, **filters: Any) -> tuple[list[AccountView], str | None]:
        return await store.list_accounts(self.url, **filters)

    async def summary(self, account_id: str) -> AccountSummary:
        return self.summary_of(await self.get(account_id))

    def summary_of(self, view: AccountView) -> AccountSummary:
        return summarize(view, self.settings.service_end_warnings, datetime.now(UTC).date())

    async def rollup(self, reseller_account_id: str, *, limit: int = 50, cursor: str | None = None) -> Rollup:
        """Customers newest first (not Deleted), keyset-paginated like the list."""
        reseller = await self.get(reseller_account_id)
        if reseller.member_type != MemberType.reseller:
            raise NotFound(f"No reseller account has the id {reseller_account_id}.")
        today = datetime.now(UTC).date()
        counts = await store.reseller_counts(self.url, reseller.id, today, today + EXPIRING_SOON)
        customers, next_cursor = await store.list_accounts(
            self.url, reseller_account_id=reseller.id, exclude_deleted=True, limit=limit, cursor=cursor
        )
        offsets = self.settings.service_end_warnings
        return Rollup(
            reseller_account_id=reseller.id,
            organization_name=reseller.organization_name,
            customers_enrolled=counts.customers_enrolled,
            pending=counts.pending,
            expiring_within_30_days=counts.expiring,
            customers=[summarize(customer, offsets, today) for customer in customers],
            next_cursor=next_cursor,
        )


class AccountService(AccountReader):
    """Reads, and changes through the account's MemberAccountWorkflow."""

    def __init__(self, settings: Settings, client: Client) -> None:
        super().__init__(settings)
        self.client = client
        self.updates = CheckedUpdates(client, self.get, account_refusal, account_workflow_id)

    async def suspend(self, account_id: str, actor: Actor, note: object) -> AccountView:
        change = AccountChange(actor=actor, audit_note=check_note(note))
        return await self.updates.run(account_id, AccountAction.suspend, MemberAccountWorkflow.suspend, change)

    async def reactivate(self, account_id: str, actor: Actor, note: object) -> AccountView:
        change = AccountChange(actor=actor, audit_note=check_note(note))
        return await self.updates.run(account_id, AccountAction.reactivate, MemberAccountWorkflow.reactivate, change)

    async def delete(self, account_id: str, actor: Actor, note: object) -> AccountView:
        change = AccountChange(actor=actor, audit_note=check_note(note))
        return await self.updates.run(account_id, AccountAction.delete, MemberAccountWorkflow.delete, change)

    async def add_users_purchased(self, account_id: str, actor: Actor, add: object, note: object) -> AccountView:
        count, audit_note = check_order(add, note)
        current = await self.get(account_id)
        if not current.display_users_purchased:
            raise Conflict("This account does not display users purchased; switch Display Users Purchased on first.")
        order = AddUsersPurchased(actor=actor, audit_note=audit_note, add=count)
        return await self.updates.run(
            account_id, AccountAction.add_users, MemberAccountWorkflow.add_users_purchased, order
        )

    async def report_usage(self, account_id: str, users_existing: object, reported_at: object = None) -> AccountView:
        count, when = check_usage(users_existing, reported_at)
        report = UsageReport(users_existing=count, reported_at=(when or datetime.now(UTC)).astimezone(UTC))
        return await self.updates.run(
            account_id, AccountAction.report_usage, MemberAccountWorkflow.report_usage, report
        )

    async def edit(self, account_id: str, actor: Actor, body: Mapping[str, Any]) -> AccountView:
        """Change the service end date and/or Display Users Purchased; every problem is named at once."""
        end_date, display, note = check_account_edit(body)
        edit = EditAccount(actor=actor, audit_note=note, service_end_date=end_date, display_users_purchased=display)
        return await self.updates.run(account_id, AccountAction.edit, MemberAccountWorkflow.edit, edit)
