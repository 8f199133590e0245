"""`enroll`: the roles (`worker`, `api`), users and tokens, and enrollments from the terminal.

`enroll up` (the embedded stack) is added by `starter.dev.cli`, the console script's entry point."""

from __future__ import annotations

import runpy
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from domain.models import EnrollmentStatus, EnrollmentView, MemberType, Role
from domain.settings import Settings
from starter.cli.admin import tokens_app, users_app
from starter.cli.common import T, console, errors
from starter.cli.common import fail as _fail
from starter.cli.common import run as _run
from starter.cli.credentials import credentials_app
from starter.cli.imports import import_enrollments, usage_app
from store import users as user_store
from store.migrate import upgrade_to_head

app = typer.Typer(help="Member Account Enrollment.", no_args_is_help=True, add_completion=False)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(usage_app, name="usage")
app.add_typer(credentials_app, name="credentials")
app.command("import")(import_enrollments)


def _production_settings() -> Settings:
    settings = Settings()
    if problem := settings.missing_secret():
        raise _fail(problem, 2)
    return settings


@app.command()
def worker() -> None:
    """Run the worker (workflows and activities) until Ctrl-C."""
    _production_settings()
    # Run as the program it is: the ways in never import the worker.
    runpy.run_module("worker", run_name="__main__")


@app.command()
def api() -> None:
    """Run the API and portal until Ctrl-C."""
    from observability import tracing
    from starter.app import create_app, serve

    settings = _production_settings()
    tracing.configure(settings, "enroll-api")  # before the app and its engines exist
    upgrade_to_head(settings.effective_database_url)
    serve(create_app(settings), settings)


def _with_service(job: Callable[[Any], Awaitable[T]]) -> T:
    async def make(settings: Settings) -> T:
        from starter.services.enrollments import EnrollmentService
        from workflows.client import connect_for_requests

        # Connected on first use: `list` and `show` read the store alone, and work while Temporal is down.
        return await job(EnrollmentService(settings, await connect_for_requests(settings)))

    return _run(make)


@app.command()
def create(
    as_: Annotated[str, typer.Option("--as", help="email of the CSM, sales or admin user creating it")],
    organization: Annotated[str, typer.Option(help="full legal name of the organization")],
    member_type: Annotated[MemberType, typer.Option("--type", help="customer, reseller or manufacturer")],
    contact: Annotated[str, typer.Option(help="the corporate contact's email")],
    end_date: Annotated[str, typer.Option(help="service end date, YYYY-MM-DD (after today)")],
    display_users_purchased: Annotated[bool, typer.Option(help="customers: show users purchased")] = False,
    users_purchased: Annotated[int | None, typer.Option(help="cumulative users purchased")] = None,
    reseller: Annotated[str | None, typer.Option(help="the reseller's member account id")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="same key → same enrollment")] = None,
) -> None:
    """Create a member account and start its enrollment (emails the corporate contact)."""
    from domain.models import Actor
    from starter.services.errors import ServiceError

    raw: dict[str, Any] = {
        "service_end_date": end_date,
        "member_type": member_type.value,
        "display_users_purchased": display_users_purchased,
        "users_purchased": users_purchased,
        "organization_name": organization,
        "corporate_contact_email": contact,
        "reseller_account_id": reseller,
    }

    async def job(service: Any) -> EnrollmentView:
        user = await user_store.user_by_email(service.url, as_)
        if user is None or user.disabled or user.role not in (Role.admin, Role.csm, Role.sales):
            raise _fail(f"--as {as_}: not an enabled admin, csm or sales user", 2)
        actor = Actor(user_id=user.id, email=user.email, kind=user.role)
        view, _ = await service.create(raw, actor, user_id=user.id, idempotency_key=idempotency_key)
        return view  # type: ignore[no-any-return]

    try:
        view = _with_service(job)
    except ServiceError as exc:
        for line in getattr(exc, "errors", None) or []:
            errors.print(f"  {line.field}: {line.message}", highlight=False)
        raise _fail(exc.message, 2) from exc
    _show(view)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="New, Pending Review, In Review, Approved, ...")] = None,
    member_type: Annotated[MemberType | None, typer.Option("--type")] = None,
    q: Annotated[str | None, typer.Option(help="part of the organization name")] = None,
    limit: int = 50,
    cursor: str | None = None,
) -> None:
    """The Member Account Enrollments table, newest first."""
    try:
        wanted = EnrollmentStatus(status) if status else None
    except ValueError as exc:
        raise _fail(f"--status must be one of {', '.join(s.value for s in EnrollmentStatus)}", 2) from exc

    async def job(service: Any) -> tuple[list[EnrollmentView], str | None]:
        return await service.list(status=wanted, member_type=member_type, q=q, limit=limit, cursor=cursor)  # type: ignore[no-any-return]

    items, next_cursor = _with_service(job)
    table = Table("Organization", "Type", "Status", "Corporate contact", "Created", "Form due")
    table.add_column("ID", no_wrap=True)
    for v in items:
        table.add_row(
            v.organization_name,
            v.member_type.value,
            v.status.value,
            v.corporate_contact_email,
            f"{v.created_at:%Y-%m-%d %H:%M}",
            f"{v.expires_at:%Y-%m-%d %H:%M}" if v.expires_at and v.status == EnrollmentStatus.new else "",
            v.id,
        )
    console.print(table)
    if next_cursor:
        console.print(f"more: enroll list --cursor {next_cursor}", highlight=False)


@app.command()
def show(enrollment_id: str) -> None:
    """One enrollment with its timeline."""
    from starter.services.errors import ServiceError

    async def job(service: Any) -> EnrollmentView:
        return await service.get(enrollment_id)  # type: ignore[no-any-return]

    try:
        _show(_with_service(job))
    except ServiceError as exc:
        raise _fail(exc.message, 1) from exc


def _show(view: EnrollmentView) -> None:
    table = Table(show_header=False, box=None)
    for label, value in [
        ("id", view.id),
        ("status", view.status.value),
        ("organization", view.organization_name),
        ("member type", view.member_type.value),
        ("corporate contact", view.corporate_contact_email),
        ("service end date", view.service_end_date.isoformat()),
        ("users purchased", str(view.users_purchased) if view.display_users_purchased else "not displayed"),
        ("reseller account", view.reseller_account_id or ""),
        ("created", f"{view.created_at:%Y-%m-%d %H:%M:%S} UTC by {view.created_by or ''}"),
        ("form due", f"{view.expires_at:%Y-%m-%d %H:%M:%S} UTC" if view.expires_at else ""),
        ("reminders sent", str(view.reminders_sent)),
        ("account", view.account_id or ""),
    ]:
        table.add_row(f"[bold]{label}[/bold]", value)
    console.print(table)
    for event in view.timeline:
        note = f" — {event.note}" if event.note else ""
        console.print(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.event} ({event.actor}){note}", highlight=False)


if __name__ == "__main__":
    app()
