"""What routes need, as `Annotated` aliases: settings, the Temporal client, the service, the current user."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from domain.access import Permission, allows, may_manage_administrators, may_see, refusal
from domain.models import AccountView, Actor
from domain.settings import Settings
from starter.security import request_source
from starter.services.accounts import AccountReader, AccountService
from starter.services.administrator_changes import AdministratorChanges
from starter.services.administrators import AdministratorService
from starter.services.credentials import CredentialService
from starter.services.enrollments import EnrollmentService
from starter.services.errors import NotFound
from starter.services.tokens import TokenService
from starter.services.webhooks import WebhookService
from store import users
from store.tables import User
from workflows.client import connect_for_requests

if TYPE_CHECKING:
    from starter.portal.ratelimit import RateLimit


async def get_settings(request: Request) -> Settings:
    """(The dependencies here are `async def` though they never wait: FastAPI runs a plain `def` dependency in its
    thread pool, a thread hop on every request for nothing.)"""
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


async def get_service(settings: SettingsDep, client: ClientDep) -> EnrollmentService:
    return EnrollmentService(settings, client)


ServiceDep = Annotated[EnrollmentService, Depends(get_service)]


async def get_account_service(settings: SettingsDep, client: ClientDep) -> AccountService:
    return AccountService(settings, client)


AccountServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_administrator_service(settings: SettingsDep, client: ClientDep) -> AdministratorService:
    return AdministratorService(settings, client)


AdministratorServiceDep = Annotated[AdministratorService, Depends(get_administrator_service)]

_bearer = HTTPBearer(auto_error=False)
TOKEN_REQUESTS_PER_MINUTE = 600
"""Requests one API token may make in a sliding minute (10 a second on average); over it, 429 with Retry-After.
Counted per API process, like the contact form's limits (`starter.portal.ratelimit`)."""


def token_limit(request: Request) -> RateLimit:
    """This app's per-token limit (one per API process), keyed by token id."""
    limit: RateLimit | None = getattr(request.app.state, "token_limit", None)
    if limit is None:
        # Here, not at the top: importing the portal package imports its routes, which import this module.
        from starter.portal.ratelimit import RateLimit

        limit = request.app.state.token_limit = RateLimit(TOKEN_REQUESTS_PER_MINUTE, 60)
    return limit


async def current_user(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user an API token authenticates as: the same row, role and member account as their portal sign-in,
    so every rule applies alike. Each token is throttled on its own (TOKEN_REQUESTS_PER_MINUTE)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Sign in: send an API token as 'Authorization: Bearer <token>' (create one at /me/tokens in the portal).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = await users.authenticate(settings.effective_database_url, credentials.credentials)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "The API token is unknown, revoked or expired.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token, user = found
    limit = token_limit(request)
    wait = limit.hit(token.id)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"This API token made {limit.limit} requests within a minute, its limit. Wait {wait} s and try again.",
            headers={"Retry-After": str(wait)},
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
CredentialReader = Annotated[User, require(Permission.credentials_read)]
"""Staff, a manufacturer's and a customer's administrators; which credentials: `domain.access.may_see_credential`."""
CredentialUploader = Annotated[User, require(Permission.credentials_upload)]
"""Staff creators (for any manufacturer) and a manufacturer's administrators (for their own account)."""
CredentialManager = Annotated[User, require(Permission.credentials_manage)]


async def get_credential_service(settings: SettingsDep, client: ClientDep) -> CredentialService:
    return CredentialService(settings, client)


CredentialServiceDep = Annotated[CredentialService, Depends(get_credential_service)]


async def get_token_service(settings: SettingsDep) -> TokenService:
    return TokenService(settings)


TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]


async def get_webhook_service(settings: SettingsDep, client: ClientDep) -> WebhookService:
    return WebhookService(settings, client)


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]
WebhookManager = Annotated[User, require(Permission.webhooks_manage)]
"""Admins (every event) and a reseller's administrators (its customers' events): `domain.access.event_scope`."""


async def get_account_reader(settings: SettingsDep) -> AccountReader:
    return AccountReader(settings)


AccountReaderDep = Annotated[AccountReader, Depends(get_account_reader)]


async def visible(reader: AccountReader, user: User, account_id: str) -> AccountView:
    """The account, if `user` may see it; otherwise the same 404 as for an account that does not exist."""
    account = await reader.get(account_id)
    if not may_see(user, account):
        raise NotFound(f"No member account has the id {account_id}.")
    return account


async def get_administrator_changes(settings: SettingsDep) -> AdministratorChanges:
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
