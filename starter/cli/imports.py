"""`enroll import FILE.csv` (enrollments) and `enroll usage import FILE.csv` (existing users from metering).

Both are safe to re-run: an enrollment row's Idempotency-Key is derived from its content, so a row already
imported finds its enrollment instead of creating a second one (and the contact is not emailed twice);
a usage report older than the one an account has is ignored.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from domain.models import Actor, Role
from domain.rules import ACCOUNT_FIELDS
from domain.settings import Settings
from starter.cli.common import console, fail, run
from store import users as user_store

usage_app = typer.Typer(help="Existing users reported by the authentication service's metering.", no_args_is_help=True)
CONCURRENCY = 8


def read_rows(path: Path, required: set[str], known: set[str]) -> list[dict[str, str | None]]:
    """The CSV's rows with blank cells as None; a missing or unknown column is an error naming it."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            if missing := required - columns:
                raise fail(f"{path}: missing column(s) {', '.join(sorted(missing))}", 2)
            if unknown := columns - known:
                raise fail(f"{path}: unknown column(s) {', '.join(sorted(unknown))}", 2)
            return [{k: (v.strip() or None) if isinstance(v, str) else None for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise fail(f"{path}: cannot be read as a UTF-8 CSV file ({exc})", 2) from exc


def problem_of(exc: Any) -> str:
    """A refused row in one line: every bad field, or the refusal's sentence."""
    details = getattr(exc, "errors", None)
    return "; ".join(f"{e.field} {e.message}" for e in details) if details else str(exc.message)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


def report(outcomes: dict[int, str], failures: dict[int, str], labels: dict[str, str]) -> None:
    counts = {label: sum(1 for o in outcomes.values() if o == key) for key, label in labels.items()}
    console.print(", ".join(f"{n} {label}" for label, n in counts.items()) + f", {len(failures)} failed")
    if failures:
        table = Table("Row", "Problem")
        for row, problem in sorted(failures.items()):
            table.add_row(str(row), problem)
        console.print(table)
        raise typer.Exit(1)


def import_enrollments(
    file: Path,
    as_: Annotated[str, typer.Option("--as", help="email of the CSM, sales or admin user the rows are created by")],
) -> None:
    """Create an enrollment for each row of a CSV whose columns are the create fields (progress bar;
    safe to re-run: rows already imported are found, not created again)."""
    rows = read_rows(
        file, {"service_end_date", "member_type", "organization_name", "corporate_contact_email"}, set(ACCOUNT_FIELDS)
    )

    async def job(settings: Settings) -> tuple[dict[int, str], dict[int, str]]:
        from starter.services.enrollments import EnrollmentService
        from starter.services.errors import ServiceError
        from workflows.client import connect_for_requests

        user = await user_store.user_by_email(settings.effective_database_url, as_)
        if user is None or user.disabled or user.role not in (Role.admin, Role.csm, Role.sales):
            raise fail(f"--as {as_}: not an enabled admin, csm or sales user", 2)
        actor = Actor(user_id=user.id, email=user.email, kind=user.role)
        service = EnrollmentService(settings, await connect_for_requests(settings))
        outcomes: dict[int, str] = {}
        failures: dict[int, str] = {}
        gate = asyncio.Semaphore(CONCURRENCY)
        with progress() as bar:
            task = bar.add_task(f"Importing {file.name}", total=len(rows))

            async def one(number: int, row: dict[str, str | None]) -> None:
                raw: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
                key = "import:" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
                async with gate:
                    try:
                        _, created = await service.create(raw, actor, user_id=user.id, idempotency_key=key)
                        outcomes[number] = "created" if created else "existing"
                    except ServiceError as exc:
                        failures[number] = problem_of(exc)
                bar.advance(task)

            await asyncio.gather(*(one(number, row) for number, row in enumerate(rows, start=2)))
        return outcomes, failures

    outcomes, failures = run(job)
    report(outcomes, failures, {"created": "created", "existing": "already imported"})


@usage_app.command("import")
def import_usage(file: Path) -> None:
    """Record existing users from a CSV with columns account_id, users_existing and optionally reported_at
    (ISO 8601 with a time zone; default now)."""
    rows = read_rows(file, {"account_id", "users_existing"}, {"account_id", "users_existing", "reported_at"})

    async def job(settings: Settings) -> tuple[dict[int, str], dict[int, str]]:
        from starter.services.accounts import AccountService
        from starter.services.errors import ServiceError
        from workflows.client import connect_for_requests

        service = AccountService(settings, await connect_for_requests(settings))
        outcomes: dict[int, str] = {}
        failures: dict[int, str] = {}
        with progress() as bar:
            task = bar.add_task(f"Importing {file.name}", total=len(rows))
            for number, row in enumerate(rows, start=2):
                try:
                    await service.report_usage(row["account_id"] or "", row["users_existing"], row.get("reported_at"))
                    outcomes[number] = "recorded"
                except ServiceError as exc:
                    failures[number] = problem_of(exc)
                bar.advance(task)
        return outcomes, failures

    outcomes, failures = run(job)
    report(outcomes, failures, {"recorded": "recorded"})
