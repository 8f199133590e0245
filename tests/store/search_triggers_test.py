"""SQLite's name search (the FTS5 table enrollments_search) stays in step with enrollments through triggers that
find the row they change by the FTS rowid, never by scanning the table (migration 0007); and search still finds
renamed rows by their new name only and forgets deleted ones."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import text

from domain.rules import organization_key
from store.db import dispose_all, engine_for, transaction
from store.enrollments import record_enrollment
from store.migrate import alembic_config, upgrade_to_head
from tests.store.enrollments_test import T0, found_names, record, seed_names, view

_ROW = re.compile(r"\b(old|new)\.(\w+)")


async def trigger_statements(url: str, name: str) -> list[str]:
    """The statements of trigger `name`, with `old.x` / `new.x` made parameters `:old_x` / `:new_x`."""
    async with transaction(url) as session:
        sql = await session.scalar(
            text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"), {"n": name}
        )
    assert sql, f"no trigger {name}"
    body = sql[sql.upper().index("BEGIN") + 5 : sql.upper().rindex("END")]
    return [_ROW.sub(r":\1_\2", statement.strip()) for statement in body.split(";") if statement.strip()]


async def plan(url: str, statement: str) -> list[str]:
    names = {f"{side}_{column}": "x" for side, column in re.findall(r":(old|new)_(\w+)", statement)}
    async with engine_for(url).connect() as connection:
        rows = await connection.execute(text(f"EXPLAIN QUERY PLAN {statement}"), names)
        return [str(row[-1]) for row in rows]


async def test_the_update_and_delete_triggers_look_the_row_up_by_rowid(sqlite_url: str) -> None:
    await seed_names(sqlite_url, "p", [f"Company {i} Ltd" for i in range(20)])
    for trigger in ("enrollments_search_update", "enrollments_search_delete"):
        statements = await trigger_statements(sqlite_url, trigger)
        touching_search = [s for s in statements if re.search(r"\benrollments_search\b", s)]
        assert touching_search, statements
        for statement in statements:
            steps = await plan(sqlite_url, statement)
            # A full scan of the FTS5 table shows as "INDEX 0:" with no constraint after the colon.
            assert not [step for step in steps if re.fullmatch(r"SCAN \w+( VIRTUAL TABLE INDEX \d+:)?", step)], (
                trigger,
                statement,
                steps,
            )
        for statement in touching_search:
            steps = await plan(sqlite_url, statement)
            assert any(re.fullmatch(r"SCAN enrollments_search VIRTUAL TABLE INDEX \d+:=", s) for s in steps), steps


async def test_search_finds_renamed_rows_by_their_new_name_and_forgets_deleted_ones(sqlite_url: str) -> None:
    await seed_names(sqlite_url, "r", ["Starlight Power Ltd", "Sunrise Foods Ltd", "Starfish Tools Ltd"])
    assert await found_names(sqlite_url, "star") == ["Starfish Tools Ltd", "Starlight Power Ltd"]

    renamed = view("r0", "Moonlight Power Ltd", created_at=T0)
    await record_enrollment(sqlite_url, record(renamed, "r0/rename"))
    assert await found_names(sqlite_url, "starlight") == []
    assert await found_names(sqlite_url, "moonlight") == ["Moonlight Power Ltd"]
    assert await found_names(sqlite_url, "star") == ["Starfish Tools Ltd"]

    async with transaction(sqlite_url) as session:
        await session.execute(text("DELETE FROM enrollments WHERE id = 'r2'"))
    assert await found_names(sqlite_url, "star") == []
    assert await found_names(sqlite_url, "tools") == []
    assert await found_names(sqlite_url, "ltd") == ["Moonlight Power Ltd", "Sunrise Foods Ltd"]

    # New rows after a delete get rows of their own (the FTS rowids are not reused wrongly).
    await record_enrollment(
        sqlite_url, record(view("r3", "Starboard Marine Ltd", created_at=T0 + timedelta(minutes=5)), "r3")
    )
    assert await found_names(sqlite_url, "star") == ["Starboard Marine Ltd"]
    async with transaction(sqlite_url) as session:
        fts = await session.scalar(text("SELECT count(*) FROM enrollments_search"))
        rows = await session.scalar(text("SELECT count(*) FROM enrollments"))
        mapped = await session.scalar(text("SELECT count(*) FROM enrollments_search_map"))
    assert fts == rows == mapped == 3


async def seed_as_0006(url: str, prefix: str, names: list[str]) -> None:
    """Rows written as the code of 0006 wrote them (its columns only: later migrations add more)."""
    async with transaction(url) as session:
        for n, name in enumerate(names):
            await session.execute(
                text(
                    "INSERT INTO enrollments (id, status, organization_name, organization_key, member_type, "
                    "service_end_date, display_users_purchased, corporate_contact_email, created_at, bounced, "
                    "reminders_sent, link_version, updated_at) VALUES (:id, 'New', :name, :key, 'customer', "
                    "'2030-01-01', 0, 'pat@acme.example', :at, 0, 0, 1, :at)"
                ),
                {"id": f"{prefix}{n}", "name": name, "key": organization_key(name), "at": T0 + timedelta(seconds=n)},
            )


async def test_rows_indexed_before_0007_are_still_renamed_and_deleted(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0006")
    try:
        await seed_as_0006(url, "o", ["Starlight Power Ltd", "Starfish Tools Ltd"])
        await dispose_all()
        upgrade_to_head(url)
        await record_enrollment(url, record(view("o0", "Moonlight Power Ltd", created_at=T0), "o0/rename"))
        async with transaction(url) as session:
            await session.execute(text("DELETE FROM enrollments WHERE id = 'o1'"))
        assert await found_names(url, "star") == []
        assert await found_names(url, "moonlight") == ["Moonlight Power Ltd"]
        async with transaction(url) as session:
            assert await session.scalar(text("SELECT count(*) FROM enrollments_search")) == 1
            assert await session.scalar(text("SELECT count(*) FROM enrollments_search_map")) == 1
    finally:
        await dispose_all()
