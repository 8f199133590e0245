"""`/api/accounts/{id}/administrators`: a member account's administrators, listed, invited, resent, disabled,
enabled and unlocked, and their second factor reset (docs/access.md).

Staff holding `administrators.manage` (admin, csm, sales) manage any account's administrators; a reseller,
customer or manufacturer user only its own account's. Any other account answers 404, exactly like an id that
does not exist (`starter.deps.ManagedAccount`), before a body is read. Nothing answered carries a token or a key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from starter.api.body import JsonBodyRoute
from starter.api.responses import BODY_RESPONSES, CHANGE_RESPONSES
from starter.api.schemas import AdministratorInvite, AdministratorList, AdministratorOut, Detail
from starter.deps import (
    AdministratorChangesDep,
    AdministratorManager,
    AdministratorServiceDep,
    ManagedAccount,
    actor_of,
)
from starter.services.errors import Conflict
from store.users import UserError

router = APIRouter(prefix="/api/accounts", tags=["administrators"], route_class=JsonBodyRoute)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Detail}}
STORE_CHANGE: dict[int | str, dict[str, Any]] = {**NOT_FOUND, 409: {"model": Detail}}


def _out(administrator: object) -> AdministratorOut:
    return AdministratorOut.model_validate(administrator)


@router.get("/{account_id}/administrators", response_model=AdministratorList, responses=NOT_FOUND)
async def list_administrators(
    account: ManagedAccount, user: AdministratorManager, changes: AdministratorChangesDep
) -> AdministratorList:
    """Every administrator of the account, in the order they were added, with their status (`Invited`,
    `Active`, `Locked`, `Disabled`, `Expired`)."""
    return AdministratorList(items=[_out(a) for a in await changes.of_account(account.id)])


@router.post(
    "/{account_id}/administrators",
    status_code=status.HTTP_201_CREATED,
    response_model=AdministratorOut,
    responses={**BODY_RESPONSES, **CHANGE_RESPONSES, **NOT_FOUND},
)
async def invite_administrator(
    body: AdministratorInvite, account: ManagedAccount, user: AdministratorManager, service: AdministratorServiceDep
) -> AdministratorOut:
    """Invite another administrator (`{"email": ...}`): they are emailed an activation link. 409 for an
    address that already belongs to a user."""
    try:
        return _out(await service.invite(account, body.email, actor_of(user)))
    except UserError as exc:
        raise Conflict(str(exc)) from exc


@router.post(
    "/{account_id}/administrators/{user_id}/resend",
    response_model=AdministratorOut,
    responses={**CHANGE_RESPONSES, **NOT_FOUND},
)
async def resend_invitation(
    user_id: str, account: ManagedAccount, user: AdministratorManager, service: AdministratorServiceDep
) -> AdministratorOut:
    """A new activation link (the old one dies) with a fresh deadline, for an Invited or Expired administrator."""
    return _out(await service.resend(account.id, user_id, actor_of(user)))


@router.post("/{account_id}/administrators/{user_id}/disable", response_model=AdministratorOut, responses=STORE_CHANGE)
async def disable_administrator(
    user_id: str, account: ManagedAccount, user: AdministratorManager, changes: AdministratorChangesDep
) -> AdministratorOut:
    """Disabled: their sessions and API tokens stop working. The account's last active administrator cannot be
    disabled (409)."""
    return _out(await changes.set_disabled(account.id, user_id, True, actor_of(user)))


@router.post("/{account_id}/administrators/{user_id}/enable", response_model=AdministratorOut, responses=NOT_FOUND)
async def enable_administrator(
    user_id: str, account: ManagedAccount, user: AdministratorManager, changes: AdministratorChangesDep
) -> AdministratorOut:
    return _out(await changes.set_disabled(account.id, user_id, False, actor_of(user)))


@router.post("/{account_id}/administrators/{user_id}/unlock", response_model=AdministratorOut, responses=NOT_FOUND)
async def unlock_administrator(
    user_id: str, account: ManagedAccount, user: AdministratorManager, changes: AdministratorChangesDep
) -> AdministratorOut:
    """Lift a sign-in lock (after too many failed attempts) on the administrator's email."""
    return _out(await changes.unlock(account.id, user_id, actor_of(user)))


@router.post(
    "/{account_id}/administrators/{user_id}/reset-second-factor",
    response_model=AdministratorOut,
    responses=STORE_CHANGE,
)
async def reset_second_factor(
    user_id: str, account: ManagedAccount, user: AdministratorManager, changes: AdministratorChangesDep
) -> AdministratorOut:
    """Take the administrator's second factor off: they set up a new one at their next sign-in. 409 when they
    have none."""
    return _out(await changes.reset_second_factor(account.id, user_id, actor_of(user)))
