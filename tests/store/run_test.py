"""`store.db.run` on a SQLite file: the transaction runs on the event loop, but never waits there for a lock
another process holds; it waits on the store's thread, and the loop goes on."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import IntegrityError

from store.db import run
from store.paging import now
from store.tables import User


def add_user(user_id: str) -> Callable[[Connection], None]:
    def body(conn: Connection) -> None:
        conn.execute(
            insert(User).values(
                id=user_id,
                email=f"{user_id}@example.com",
                role="csm",
                account_id=None,
                password_hash="x",
                disabled=False,
                created_at=now(),
            )
        )

    return body


def users(conn: Connection) -> list[str]:
    return list(conn.scalars(select(User.id).order_by(User.id)))


async def test_a_write_waits_for_another_process_lock_off_the_event_loop(sqlite_url: str) -> None:
    assert await run(sqlite_url, users) == []  # the store's connections have put the file in WAL mode
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction, holding the write lock
    write = asyncio.create_task(run(sqlite_url, add_user("u1")))
    began = time.monotonic()
    for _ in range(20):  # the loop keeps running while the write waits for the lock
        await asyncio.sleep(0.01)
    assert time.monotonic() - began < 2, "the event loop waited for the other process's lock"
    assert not write.done()
    other.execute("ROLLBACK")
    other.close()
    await asyncio.wait_for(write, 5)
    assert await run(sqlite_url, users) == ["u1"]


async def test_a_body_that_raises_writes_nothing(sqlite_url: str) -> None:
    await run(sqlite_url, add_user("u1"))

    def both(conn: Connection) -> None:
        add_user("u2")(conn)
        add_user("u1")(conn)  # taken: the whole transaction rolls back

    with pytest.raises(IntegrityError):
        await run(sqlite_url, both)
    assert await run(sqlite_url, users) == ["u1"]


async def test_the_pragmas_hold_on_both_connections(sqlite_url: str) -> None:
    def pragmas(conn: Connection) -> tuple[str, int]:
        return str(conn.scalar(text("PRAGMA journal_mode"))), int(conn.scalar(text("PRAGMA foreign_keys")) or 0)

    assert await run(sqlite_url, pragmas) == ("wal", 1)
