"""Apply the Alembic migrations; every role runs this at start, so a fresh database just works.

Roles started at once (`enroll worker` and `enroll api`, two workers) would otherwise race: both find no
`alembic_version`, both run 0001, and one dies on `table accounts already exists`. So each migration run
holds a lock the others wait for: a PostgreSQL advisory lock, or an exclusive `flock` on a file beside the
SQLite database. Whoever comes second finds the schema at head and has nothing left to do.
"""

from __future__ import annotations

import asyncio
import fcntl
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

_HERE = Path(__file__).parent
MIGRATION_LOCK = 0x656E_726F_6C6C
"""The advisory lock key of our migrations on PostgreSQL ("enroll" in ASCII): fixed, so every role agrees."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / "alembic"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Bring the database at `database_url` up to the newest schema (creating the SQLite file if needed),
    one process at a time."""

    def upgrade() -> None:
        command.upgrade(alembic_config(database_url), "head")

    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1].split("?", 1)[0]
        if not path or path == ":memory:":
            upgrade()  # a database of this process alone: nobody to race
            return
        with _file_lock(Path(path).with_name(Path(path).name + ".migrate.lock")):
            upgrade()
    else:
        _run_coroutine(_holding_advisory_lock(database_url, upgrade))


@contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive lock on `lock_path` (created with its folder): the kernel releases it if the holder dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def _holding_advisory_lock(database_url: str, work: Callable[[], None]) -> None:
    """Run `work` (on a thread: Alembic runs its own event loop) while this session holds MIGRATION_LOCK.
    The lock belongs to the session, so it is released if this process dies."""
    engine = create_async_engine(database_url, poolclass=NullPool, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                await asyncio.to_thread(work)
            finally:
                await autocommit.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        await engine.dispose()


def _run_coroutine(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` to its end from synchronous code, also when called from inside an event loop (a test,
    or a role's start-up): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    runner.join()
    if failure:
        raise failure[0]
