"""`enroll users …` and `enroll tokens …`: the people who sign in, and their API tokens."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from domain.models import Actor, Role
from domain.settings import Settings, parse_duration
from starter.cli.common import console
from starter.cli.common import fail as _fail
from starter.cli.common import run as _run
from store import second_factor as second_factor_store
from store import users as user_store

users_app = typer.Typer(help="Manage the people who sign in.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API bearer tokens.", no_args_is_help=True)


def operator() -> Actor:
    """Who runs the command, for the audit trail: the operating-system user, on this machine."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor(kind=f"command line ({name})", source="local")


@users_app.command("add")
def users_add(
    email: str,
    role: Annotated[Role, typer.Option(help="admin, csm, sales, reviewer, reseller or customer")],
    account: Annotated[str | None, typer.Option(help="member account id (reseller and customer users)")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
) -> None:
    """Add a user who can sign in to the portal and get API tokens."""
    if not password_stdin:
        raise _fail("pass the password on standard input with --password-stdin", 2)
    password = sys.stdin.readline().rstrip("\r\n")

    async def add(settings: Settings) -> None:
        user = await user_store.add_user(
            settings.effective_database_url,
            email=email,
            role=role,
            password=password,
            account_id=account,
            by=operator(),
        )
        console.print(f"added {user.email} ({user.role})", highlight=False)

    try:
        _run(add)
    except user_store.UserError as exc:
        raise _fail(str(exc), 2) from exc


@users_app.command("list")
def users_list() -> None:
    """Every user: email, role, member account, whether disabled."""

    async def job(settings: Settings) -> list[Any]:
        return await user_store.list_users(settings.effective_database_url)

    table = Table("Email", "Role", "Account", "Disabled", "Created")
    for user in _run(job):
        table.add_row(
            user.email, user.role, user.account_id or "", "yes" if user.disabled else "", f"{user.created_at:%Y-%m-%d}"
        )
    console.print(table)


@users_app.command("disable")
def users_disable(email: str) -> None:
    """Stop a user from signing in; their API tokens stop working too."""
    _set_disabled(email, True)


@users_app.command("enable")
def users_enable(email: str) -> None:
    """Let a disabled user sign in again."""
    _set_disabled(email, False)


def _set_disabled(email: str, disabled: bool) -> None:
    async def job(settings: Settings) -> None:
        await user_store.set_disabled(settings.effective_database_url, email, disabled, by=operator())

    try:
        _run(job)
    except user_store.UserError as exc:
        raise _fail(str(exc), 2) from exc
    console.print(f"{email} {'disabled' if disabled else 'enabled'}", highlight=False)


@users_app.command("reset-second-factor")
def users_reset_second_factor(email: str) -> None:
    """Take a user's second factor off (a lost phone and lost recovery codes): their sessions end, and they set
    up a new one at their next sign-in."""

    async def job(settings: Settings) -> None:
        url = settings.effective_database_url
        user = await user_store.user_by_email(url, email)
        if user is None:
            raise user_store.UserError(f"no user with the email {email}")
        await second_factor_store.reset(url, user.id, by=operator())

    try:
        _run(job)
    except user_store.UserError as exc:
        raise _fail(str(exc), 2) from exc
    console.print(f"{email}: second factor reset; they set up a new one at their next sign-in", highlight=False)


@tokens_app.command("create")
def tokens_create(
    email: str,
    expires_in: Annotated[str | None, typer.Option(help="lifetime such as 90d or 12h (default: no expiry)")] = None,
) -> None:
    """Create an API bearer token for a user; the token is printed alone on the last line, once."""
    try:
        expires_at = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    except ValueError as exc:
        raise _fail(f"--expires-in: {exc}", 2) from exc

    async def create(settings: Settings) -> str:
        url = settings.effective_database_url
        return await user_store.create_token(url, email, expires_at=expires_at, by=operator())

    try:
        token = _run(create)
    except user_store.UserError as exc:
        raise _fail(str(exc), 2) from exc
    console.print("Keep this token secret; it is not shown again.", highlight=False)
    print(token)


@tokens_app.command("list")
def tokens_list(email: Annotated[str | None, typer.Argument(help="only this user's tokens")] = None) -> None:
    """Tokens by id, owner and dates (the secret itself is never stored, so never shown)."""

    async def job(settings: Settings) -> list[Any]:
        return await user_store.list_tokens(settings.effective_database_url, email)

    def when(at: datetime | None) -> str:
        return f"{at:%Y-%m-%d %H:%M}" if at else ""

    table = Table("ID", "User", "Created", "Expires", "Revoked")
    for token, owner in _run(job):
        table.add_row(token.id, owner, when(token.created_at), when(token.expires_at), when(token.revoked_at))
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (from `enroll tokens list`); it stops working at once."""

    async def job(settings: Settings) -> None:
        await user_store.revoke_token(settings.effective_database_url, token_id, by=operator())

    try:
        _run(job)
    except user_store.UserError as exc:
        raise _fail(str(exc), 2) from exc
    console.print(f"token {token_id} revoked", highlight=False)
