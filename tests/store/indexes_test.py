"""The migrated schema has an index for every lookup the API and portal make by a foreign id, on both stores."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from store.db import engine_for


def indexed_columns(connection: Connection, table: str) -> set[tuple[str, ...]]:
    return {tuple(str(c) for c in index["column_names"]) for index in inspect(connection).get_indexes(table)}


async def test_enrollments_and_emails_are_indexed_by_the_ids_they_are_found_by(database_url: str) -> None:
    async with engine_for(database_url).connect() as connection:
        enrollments = await connection.run_sync(indexed_columns, "enrollments")
        outbox = await connection.run_sync(indexed_columns, "outbox")
    assert ("reseller_account_id",) in enrollments, "a reseller's customers are listed by it"
    assert ("message_id",) in outbox, "a provider's late bounce is matched by it"
