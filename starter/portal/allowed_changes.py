"""The changes a member account's page offers (add users purchased, display, end date, suspend, reactivate,
delete): which permission each needs and when the status machine refuses it."""

from __future__ import annotations

from dataclasses import dataclass

from domain.access import Permission, allows
from domain.models import AccountView, MemberType
from domain.status import AccountAction, account_refusal
from store.tables import User


@dataclass(frozen=True)
class Change:
    path: str
    label: str
    action: AccountAction
    permission: Permission


CHANGES = [
    Change("users-purchased", "Add users purchased", AccountAction.add_users, Permission.accounts_change),
    Change("display", "Display Users Purchased", AccountAction.edit, Permission.accounts_change),
    Change("end-date", "Change service end date", AccountAction.edit, Permission.accounts_change),
    Change("suspend", "Suspend", AccountAction.suspend, Permission.accounts_suspend),
    Change("reactivate", "Reactivate", AccountAction.reactivate, Permission.accounts_suspend),
    Change("delete", "Delete", AccountAction.delete, Permission.accounts_suspend),
]
BY_PATH = {change.path: change for change in CHANGES}


def refusal_of(view: AccountView, change: Change) -> str | None:
    """Why `change` cannot be made to this account now (the status machine first), or None."""
    reason = account_refusal(view.status, change.action)
    if reason is None and change.path == "users-purchased" and not view.display_users_purchased:
        reason = "This account does not display users purchased; switch Display Users Purchased on first."
    if reason is None and change.path == "display" and view.member_type != MemberType.customer:
        reason = "Display Users Purchased applies to customer accounts only."
    return reason


def actions_for(user: User, view: AccountView) -> list[Change]:
    """The changes this user may make to this account now: the account page offers these and no others."""
    return [c for c in CHANGES if allows(user.role, c.permission) and refusal_of(view, c) is None]
