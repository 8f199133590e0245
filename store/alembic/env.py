"""Alembic environment: runs the migrations on the async engine of the configured URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from store.tables import Base

target_metadata = Base.metadata
SEARCH_ONLY = ("enrollments_search", "ix_enrollments_organization_key_trgm")
"""What migration 0004 builds for the name search outside the tables' metadata: SQLite's FTS5 table (and the
shadow tables FTS5 makes, enrollments_search_*) and PostgreSQL's trigram index. Autogenerate leaves them be."""


def _include_object(obj: object, name: str | None, kind: str, reflected: bool, compare_to: object) -> bool:
    return not (reflected and compare_to is None and name is not None and name.startswith(SEARCH_ONLY))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def _run_in_thread() -> None:
    asyncio.run(_main())


try:
    asyncio.get_running_loop()
except RuntimeError:
    _run_in_thread()
else:
    # Called from inside an event loop (a test, the API's start-up): run on a thread of its own.
    import threading

    worker = threading.Thread(target=_run_in_thread)
    worker.start()
    worker.join()
