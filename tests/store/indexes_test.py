"""The migrated schema has an index for every lookup the API and portal make by a foreign id, on both stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.engine import Connection

from store.db import dispose_all, engine_for
from store.migrate import upgrade_to_head
from tests.conftest import reset_postgres


def indexed_columns(connection: Connection, table: str) -> set[tuple[str, ...]]:
    return {tuple(str(c) for c in index["column_names"]) for index in inspect(connection).get_indexes(table)}


async def test_enrollments_and_emails_are_indexed_by_the_ids_they_are_found_by(database_url: str) -> None:
    async with engine_for(database_url).connect() as connection:
        enrollments = await connection.run_sync(indexed_columns, "enrollments")
        outbox = await connection.run_sync(indexed_columns, "outbox")
    assert ("reseller_account_id",) in enrollments, "a reseller's customers are listed by it"
    assert ("message_id",) in outbox, "a provider's late bounce is matched by it"


async def test_the_trigram_index_is_built_concurrently_and_valid_on_postgresql(database_url: str) -> None:
    """A plain CREATE INDEX locks enrollments against writes for the whole build; CONCURRENTLY does not."""
    if not database_url.startswith("postgresql"):
        return
    await reset_postgres(database_url)
    await dispose_all()
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        upgrade_to_head(database_url)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    builds = [s for s in sent if s.startswith("CREATE INDEX") and "ix_enrollments_organization_key_trgm" in s]
    assert builds and all(s.startswith("CREATE INDEX CONCURRENTLY") for s in builds), builds
    async with engine_for(database_url).connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'ix_enrollments_organization_key_trgm'"
                )
            )
        ).one()
    valid, definition = row[0], row[1]
    assert valid and "USING gin (organization_key gin_trgm_ops)" in definition, definition
