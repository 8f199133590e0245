"""Roles started at once (worker, API, CLI) each migrate at start: on a fresh database they must take turns, on
SQLite and on PostgreSQL, and all of them start."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from alembic.script import ScriptDirectory
from sqlalchemy import text

from store.db import dispose_all, transaction
from store.migrate import MIGRATION_LOCK, MigrationLockTimeout, alembic_config, upgrade_to_head
from tests.conftest import POSTGRES_URL, reset_postgres

ROOT = Path(__file__).resolve().parents[2]
ROLES = 3
# Each process says it is ready, waits for the word, then migrates: all three start migrating at once.
MIGRATE = """
import sys, time
from pathlib import Path
from store.migrate import upgrade_to_head
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)
upgrade_to_head(url)
"""


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database no migration has touched yet (for SQLite, not even its folder exists)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'enroll.db'}"
    else:
        url = POSTGRES_URL
        try:
            await reset_postgres(url)
        except (OSError, asyncpg.PostgresError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"PostgreSQL is not reachable at {url} ({exc}); CI runs these (set ENROLL_TEST_POSTGRES_URL)")
    yield url
    await dispose_all()


def start_together(url: str, tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    roles = []
    for n in range(ROLES):
        ready = tmp_path / f"ready-{n}"
        process = subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url, str(ready), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        roles.append((process, ready))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for _, ready in roles) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    finished = []
    for process, _ in roles:
        out, err = process.communicate(timeout=120)
        finished.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return finished


async def test_three_roles_migrating_a_fresh_database_at_once_all_succeed(fresh_url: str, tmp_path: Path) -> None:
    finished = start_together(fresh_url, tmp_path)
    assert [f.returncode for f in finished] == [0] * ROLES, "\n".join(f.stderr[-2000:] for f in finished)
    head = ScriptDirectory.from_config(alembic_config(fresh_url)).get_current_head()
    async with transaction(fresh_url) as session:
        versions = list(await session.scalars(text("SELECT version_num FROM alembic_version")))
        accounts = await session.scalar(text("SELECT count(*) FROM accounts"))
    assert versions == [head] and accounts == 0


async def test_a_role_waits_for_a_stuck_migration_only_so_long_and_says_who_holds_it(
    fresh_url: str, tmp_path: Path
) -> None:
    """A migration that never finishes (a hung role, a lock left by a debugger) must not hang every role's start:
    the others give up after the wait, naming what holds the lock."""
    if fresh_url.startswith("sqlite"):
        database = Path(fresh_url.split(":///", 1)[1])
        lock_path = database.with_name(database.name + ".migrate.lock")
        lock_path.parent.mkdir(parents=True)
        with lock_path.open("a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            started = time.monotonic()
            with pytest.raises(
                MigrationLockTimeout, match=r"another process is migrating the database; waited 1 s"
            ) as info:
                upgrade_to_head(fresh_url, lock_wait=1)
        assert str(lock_path) in str(info.value)
    else:
        holder = await asyncpg.connect(fresh_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            pid = await holder.fetchval("SELECT pg_backend_pid()")
            started = time.monotonic()
            with pytest.raises(
                MigrationLockTimeout, match=r"another process is migrating the database; waited 1 s"
            ) as info:
                upgrade_to_head(fresh_url, lock_wait=1)
            assert f"pid {pid}" in str(info.value)
        finally:
            await holder.close()
    assert 1 <= time.monotonic() - started < 10
    upgrade_to_head(fresh_url, lock_wait=5)  # once the holder is gone, the next start migrates
    async with transaction(fresh_url) as session:
        assert await session.scalar(text("SELECT count(*) FROM accounts")) == 0
