"""What someone types into the name search is a bound value, never text of the SQL sent, on either store; and on
PostgreSQL the trigram index still answers the bound pattern, in a custom plan and in a generic one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql

from store.db import engine_for
from store.paging import organization_search
from store.tables import Enrollment
from tests.store.enrollments_test import ORGANIZATION_BTREES

TYPED = ["zebracorn", "o'brien ltd", "ab", "x') or 1=1 --"]


def test_the_compiled_postgresql_statement_holds_no_typed_text() -> None:
    for typed in TYPED:
        query = select(Enrollment.id).where(organization_search("postgresql+asyncpg://db/enroll", typed))
        compiled = query.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
        assert typed not in compiled.string and "POSTCOMPILE" not in compiled.string, compiled.string
        assert "%" + typed + "%" in compiled.params.values()


async def test_the_statement_sent_holds_no_typed_text(database_url: str) -> None:
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    engine = engine_for(database_url)
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        for typed in TYPED:
            sent.clear()
            async with engine.connect() as connection:
                await connection.execute(select(Enrollment.id).where(organization_search(database_url, typed)))
            ((statement, parameters),) = sent
            assert typed not in statement and "zebra" not in statement, statement
            assert any(typed in str(value) for value in parameters), parameters
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)


async def test_the_bound_pattern_reads_the_trigram_index_on_postgresql(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        return  # SQLite's FTS5 table: tests/store/enrollments_test.py checks its plan
    query = select(Enrollment.id).where(organization_search(database_url, "acme widgets"))
    async with engine_for(database_url).connect() as connection:
        compiled = query.compile(dialect=connection.dialect)
        statement = compiled.string
        assert "$1" in statement and "acme" not in statement, statement
        # On a table this small the planner rightly prefers a scan or a btree; without them (rolled back below)
        # the trigram index must answer the bound pattern.
        for index in ORGANIZATION_BTREES:
            await connection.exec_driver_sql(f"DROP INDEX {index}")
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await connection.exec_driver_sql(f"PREPARE organization_search (text) AS {statement}")
        plans = {}
        for mode in ("force_custom_plan", "force_generic_plan"):
            await connection.exec_driver_sql(f"SET LOCAL plan_cache_mode = {mode}")
            rows = await connection.exec_driver_sql("EXPLAIN EXECUTE organization_search ('%acme widgets%')")
            plans[mode] = " ".join(str(row[0]) for row in rows)
        await connection.rollback()
    for mode, plan in plans.items():
        assert "Index Cond" in plan and "ix_enrollments_organization_key_trgm" in plan, (mode, plan)
    assert "$1" in plans["force_generic_plan"], plans["force_generic_plan"]
