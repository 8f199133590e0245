"""What routes need, as `Annotated` aliases: settings, the Temporal client, the service, the current user."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from domain.access import Permission, allows, may_manage_administrators, may_see, may_see_rollup, refusal
from domain.models import AccountView, Actor
from domain.settings import Settings
from starter.security import request_source
from starter.services.accounts import AccountReader, AccountService, Rollup
from starter.services.administrator_changes import AdministratorChanges
from starter.services.administrators import AdministratorService
from starter.services.enrollments import EnrollmentService
from starter.services.errors import NotFound
from store import users
from store.tables import User
from workflows.client import connect_for_requests


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]

_client_lock = asyncio.Lock()


async def get_client(request: Request) -> Client:
    """The app's Temporal client. It connects on its first call, so pages that read only the store (and the
    contact's form) work while Temporal is down; a call that cannot reach it answers 503 (`Unavailable`)."""
    state = request.app.state
    if getattr(state, "temporal", None) is None:
        async with _client_lock:
            if getattr(state, "temporal", None) is None:
                state.temporal = await connect_for_requests(state.settings)
    client: Client = state.temporal
    return client


ClientDep = Annotated[Client, Depends(get_client)]


def get_service(settings: SettingsDep, client: ClientDep) -> EnrollmentService:
    return EnrollmentService(settings, client)


ServiceDep = Annotated[EnrollmentService, Depends(get_service)]


def get_account_service(settings: SettingsDep, client: ClientDep) -> AccountService:
    return AccountService(settings, client)


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


def get_administrator_service(settings: SettingsDep, client: ClientDep) -> AdministratorService:
    return AdministratorService(settings, client)


AdministratorServiceDep = Annotated[AdministratorService, Depends(get_administrator_service)]

_bearer = HTTPBearer(auto_error=False)


async def current_user(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Sign in: send an API token as 'Authorization: Bearer <token>' (enroll tokens create EMAIL).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = await users.user_for_token(settings.effective_database_url, credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "The API token is unknown, revoked or expired.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require(permission: Permission) -> object:
    """The signed-in API user, if the access table gives their role `permission`; else 403."""

    async def check(user: CurrentUser) -> User:
        if not allows(user.role, permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN, refusal(user.role, permission))
        return user

    return Depends(check)


def actor_of(user: User) -> Actor:
    """Who is acting, for the audit trail: the user, and the address the request came from."""
    return Actor(user_id=user.id, email=user.email, kind=user.role, source=request_source())


Creator = Annotated[User, require(Permission.enrollments_create)]
Staff = Annotated[User, require(Permission.enrollments_read)]
Reviewer = Annotated[User, require(Permission.enrollments_review)]
AccountManager = Annotated[User, require(Permission.accounts_suspend)]
AccountEditor = Annotated[User, require(Permission.accounts_change)]
Metering = Annotated[User, require(Permission.accounts_usage)]
AuditExporter = Annotated[User, require(Permission.audit_export)]
AdministratorManager = Annotated[User, require(Permission.administrators_manage)]


def get_account_reader(settings: SettingsDep) -> AccountReader:
    return AccountReader(settings)


AccountReaderDep = Annotated[AccountReader, Depends(get_account_reader)]


async def visible(reader: AccountReader, user: User, account_id: str) -> AccountView:
    """The account, if `user` may see it; otherwise the same 404 as for an account that does not exist."""
    account = await reader.get(account_id)
    if not may_see(user, account):
        raise NotFound(f"No member account has the id {account_id}.")
    return account


async def visible_rollup(
    reader: AccountReader, user: User, account_id: str, *, limit: int = 50, cursor: str | None = None
) -> Rollup:
    """A reseller's roll-up, if `user` may see it (a 404 otherwise, and for an account that is no reseller)."""
    if not may_see_rollup(user, account_id):
        raise NotFound(f"No reseller account has the id {account_id}.")
    return await reader.rollup(account_id, limit=limit, cursor=cursor)


def get_administrator_changes(settings: SettingsDep) -> AdministratorChanges:
    return AdministratorChanges(settings)


AdministratorChangesDep = Annotated[AdministratorChanges, Depends(get_administrator_changes)]


async def manageable(reader: AccountReader, user: User, account_id: str) -> AccountView:
    """The account, if `user` may manage its administrators (`may_manage_administrators`); otherwise the same
    404 as for an account that does not exist. A reseller sees its customers' accounts, but not this."""
    if not may_manage_administrators(user, account_id):
        raise NotFound(f"No member account has the id {account_id}.")
    return await reader.get(account_id)


async def managed_account(account_id: str, user: AdministratorManager, reader: AccountReaderDep) -> AccountView:
    """The API's account whose administrators are asked about: 403 for a role without
    `administrators.manage`, then 404 for an account one may not manage, before any body is read."""
    return await manageable(reader, user, account_id)


ManagedAccount = Annotated[AccountView, Depends(managed_account)]
