"""Apply the Alembic migrations; every role runs this at start, so a fresh database just works.

Roles started at once (`enroll worker` and `enroll api`, two workers) would otherwise race: both find no
`alembic_version`, both run 0001, and one dies on `table accounts already exists`. So each migration run
holds a lock the others wait for: a PostgreSQL advisory lock, or an exclusive `flock` on a file beside the
SQLite database. Whoever comes second finds the schema at head and has nothing left to do.

The wait is bounded (LOCK_WAIT): a role that cannot get the lock in time fails with MigrationLockTimeout, which
says what holds it (on PostgreSQL the session's pid, application and address), rather than hang at start
forever behind a stuck migration.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

_HERE = Path(__file__).parent
MIGRATION_LOCK = 0x656E_726F_6C6C
"""The advisory lock key of our migrations on PostgreSQL ("enroll" in ASCII): fixed, so every role agrees."""
LOCK_WAIT = 60.0
"""Seconds a role waits for another's migration before it gives up (a migration takes seconds; a build of the
trigram index on a large table, longer: raise it with `upgrade_to_head(..., lock_wait=...)` if need be)."""
_POLL = 0.25
# Who holds a bigint advisory lock: pg_locks splits the key into classid (high 32 bits) and objid (low), objsubid 1.
_HOLDER = text(
    "SELECT a.pid, a.application_name, a.client_addr, a.backend_start, a.state FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.classid = :high AND l.objid = :low AND l.objsubid = 1 AND l.database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock for longer than this one would wait."""

    def __init__(self, waited: float, holder: str) -> None:
        super().__init__(
            f"another process is migrating the database; waited {waited:g} s for its migration lock ({holder}). "
            "If that process is gone or stuck, stop it and start this one again."
        )


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / "alembic"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str, *, lock_wait: float = LOCK_WAIT) -> None:
    """Bring the database at `database_url` up to the newest schema (creating the SQLite file if needed),
    one process at a time: MigrationLockTimeout when another has held the lock for `lock_wait` seconds."""

    def upgrade() -> None:
        command.upgrade(alembic_config(database_url), "head")

    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1].split("?", 1)[0]
        if not path or path == ":memory:":
            upgrade()  # a database of this process alone: nobody to race
            return
        with _file_lock(Path(path).with_name(Path(path).name + ".migrate.lock"), lock_wait):
            upgrade()
    else:
        _run_coroutine(_holding_advisory_lock(database_url, upgrade, lock_wait))


@contextmanager
def _file_lock(lock_path: Path, lock_wait: float = LOCK_WAIT) -> Iterator[None]:
    """An exclusive lock on `lock_path` (created with its folder), waited for at most `lock_wait` seconds: the
    kernel releases it if the holder dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        deadline = time.monotonic() + lock_wait
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(lock_wait, f"a lock on {lock_path}") from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


async def _holding_advisory_lock(database_url: str, work: Callable[[], None], lock_wait: float = LOCK_WAIT) -> None:
    """Run `work` (on a thread: Alembic runs its own event loop) while this session holds MIGRATION_LOCK,
    waited for at most `lock_wait` seconds (polled with pg_try_advisory_lock, so a wait never blocks a server
    backend without end). The lock belongs to the session, so it is released if this process dies."""
    engine = create_async_engine(database_url, poolclass=NullPool, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            deadline = time.monotonic() + lock_wait
            try_lock = text("SELECT pg_try_advisory_lock(:key)")
            while not await autocommit.scalar(try_lock, {"key": MIGRATION_LOCK}):
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(lock_wait, await _advisory_lock_holder(autocommit))
                await asyncio.sleep(_POLL)
            try:
                await asyncio.to_thread(work)
            finally:
                await autocommit.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        await engine.dispose()


async def _advisory_lock_holder(connection: AsyncConnection) -> str:
    """Who holds MIGRATION_LOCK, as an operator can find and stop it."""
    key = {"high": MIGRATION_LOCK >> 32, "low": MIGRATION_LOCK & 0xFFFF_FFFF}
    row = (await connection.execute(_HOLDER, key)).first()
    if row is None:
        return f"advisory lock {MIGRATION_LOCK}, just released"
    pid, application, address, started, state = row
    who = f"PostgreSQL backend pid {pid}"
    if application:
        who += f", application {application!r}"
    if address:
        who += f", from {address}"
    return f"{who}, connected since {started:%Y-%m-%d %H:%M:%S %Z}, {state}; advisory lock {MIGRATION_LOCK}"


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
