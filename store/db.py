"""Engines and sessions for the store: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")

_engines: dict[str, AsyncEngine] = {}
_sessionmakers: dict[str, async_sessionmaker[AsyncSession]] = {}
BUSY_TIMEOUT_MS = 10_000
PING_AFTER_IDLE_S = 1.0
"""PostgreSQL: a pooled connection idle for longer than this is pinged before it is handed out (see `engine_for`)."""
"""How long a SQLite connection waits for another's write lock before it gives up ("database is locked")."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    # WAL lets the API read while the worker writes; the busy timeout rides out the short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_pragmas_never_waiting(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record, busy_timeout_ms=0)


def _without_row_values(context: ExceptionContext) -> None:
    """PostgreSQL echoes the offending values back in an error's DETAIL ("Key (email)=(pat@…) already exists"),
    which the driver's exception prints: drop it, so the error names the constraint and not the data."""
    error: BaseException | None = context.original_exception
    while error is not None:
        if isinstance(error, asyncpg.PostgresError):
            error.detail = None
        error = error.__cause__


def engine_for(url: str) -> AsyncEngine:
    """One engine per database URL per process.

    `hide_parameters`: an error (and so a log line or a 500's traceback) names the statement but never its
    bound values, which are personal data: names, email addresses, submitted forms; nor, on PostgreSQL, the
    values the server quotes back.
    """
    if url not in _engines:
        if url.startswith("sqlite"):
            engine = create_async_engine(url, hide_parameters=True)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(url, pool_size=10, max_overflow=10, hide_parameters=True)
            event.listen(engine.sync_engine, "handle_error", _without_row_values)
            event.listen(engine.sync_engine, "checkin", _idle_from)
            event.listen(engine.sync_engine, "checkout", _pinging_if_idle(engine.sync_engine.dialect))
        _engines[url] = engine
    return _engines[url]


def _idle_from(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["idle_from"] = time.monotonic()


def _pinging_if_idle(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    """PostgreSQL's pool pings a connection before handing it out only if it sat idle for PING_AFTER_IDLE_S: one
    that the server or a proxy closed while it waited (a restart, an idle timeout) is replaced, with every other
    pooled connection of before, as `pool_pre_ping` would do; but a busy process does not pay a round trip (and
    the server a statement) on every transaction: five a create in the worker, two in the API
    (docs/performance.md). A connection dropped within the second, or while in use, fails its transaction (as
    one dropped while in use did with the pre-ping) and invalidates the pool: an activity retries, an API request
    fails once."""

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_from = record.info.get("idle_from")
        if idle_from is None or time.monotonic() - idle_from < PING_AFTER_IDLE_S:
            return  # new (it has just connected), or back in use within the second
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError("a pooled connection was closed while idle") from exc

    return ping_if_idle


def sessionmaker_for(url: str) -> async_sessionmaker[AsyncSession]:
    """One per engine: every transaction of the store starts here."""
    if url not in _sessionmakers:  # dispose_all clears both
        _sessionmakers[url] = async_sessionmaker(engine_for(url), expire_on_commit=False)
    return _sessionmakers[url]


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()
"""SQLite: one transaction at a time per database per event loop (see `transaction`)."""
_holding: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("holding", default=frozenset())
"""The SQLite databases whose turn the current task holds: a transaction opened inside another's block (the same
task) does not wait for itself."""


@asynccontextmanager
async def _turn(url: str) -> AsyncIterator[None]:
    """On SQLite, this process's turn on the database (see `transaction`); elsewhere, nothing to wait for."""
    if not url.startswith("sqlite") or url in _holding.get():
        yield
        return
    lock = _turns.setdefault(asyncio.get_running_loop(), {}).setdefault(url, asyncio.Lock())
    async with lock:
        holding = _holding.set(_holding.get() | {url})
        try:
            yield
        finally:
            _holding.reset(holding)


@asynccontextmanager
async def transaction(url: str) -> AsyncIterator[AsyncSession]:
    """A session in one transaction: committed when the block ends, rolled back on an error.

    On SQLite, a process's transactions take turns (an asyncio lock per database). SQLite has one writer at a time,
    and a writer that finds the database locked sleeps in SQLite's busy handler, in steps of up to 100 ms, however
    soon the lock is free: with 20 creates in flight that made the worker's p99 3-4 s against a p50 of 0.8 s
    (docs/performance.md). Taking turns in the process costs a writer nothing it was not already waiting for, and a
    read a few ms at most; WAL readers in other processes (the API's) never wait for this process's writers."""
    async with _turn(url), sessionmaker_for(url)() as session, session.begin():
        yield session


async def run(url: str, body: Callable[[Connection], T]) -> T:
    """`body(conn)` in one transaction on a plain connection (committed when it returns, rolled back when it
    raises), taking turns as `transaction` does: for the statements on every create's path, which need no ORM
    objects and so skip the session's work (identity map, unit of work). `body` is synchronous, and small: point
    reads and writes by key.

    On PostgreSQL it runs on the async engine's connection (`run_sync`: asyncpg, awaiting each statement).

    On a SQLite file it runs with `sqlite3` directly, on the event loop: a point read or write takes well under a
    millisecond there plus the commit's fsync, where aiosqlite hands every statement, fetch and commit to its
    thread and back (three times the CPU for a three-statement write, and each hand-off waits for the GIL behind
    whatever the loop is doing; docs/performance.md). The loop never waits for another process, though: that
    connection does not wait for a write lock (busy timeout 0), so when another process holds one the
    transaction is rolled back and `body` runs again on the store's thread (`sqlite3`, the usual busy timeout),
    which waits for it while the loop goes on. This process's own transactions never hold one here: they take
    turns."""
    async with _turn(url):
        sqlite = _sqlite_engines(url)
        if sqlite is None:
            async with engine_for(url).begin() as conn:
                return await conn.run_sync(body)
        try:
            return _in_transaction(sqlite.inline, body)
        except OperationalError as exc:
            if not _busy(exc):
                raise
        return await asyncio.get_running_loop().run_in_executor(sqlite.thread, _in_transaction, sqlite.waiting, body)


def _in_transaction(engine: Engine, body: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return body(conn)


def _busy(exc: OperationalError) -> bool:
    """SQLITE_BUSY (with any extended code): another connection holds the lock this one needed."""
    return isinstance(exc.orig, sqlite3.OperationalError) and exc.orig.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


@dataclass(frozen=True)
class _SqliteEngines:
    inline: Engine
    """Connections that never wait for a lock: `run` on the event loop."""
    waiting: Engine
    """Connections with the usual busy timeout, used only on `thread`."""
    thread: ThreadPoolExecutor


_sqlite: dict[str, _SqliteEngines | None] = {}


def _sqlite_engines(url: str) -> _SqliteEngines | None:
    """A SQLite file's synchronous engines for `run`; None for PostgreSQL, and for an in-memory SQLite database
    (which only the async engine's connection holds)."""
    if url not in _sqlite:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            _sqlite[url] = None
        else:
            inline = create_engine(parsed.set(drivername="sqlite"), hide_parameters=True)
            event.listen(inline, "connect", _sqlite_pragmas_never_waiting)
            waiting = create_engine(parsed.set(drivername="sqlite"), hide_parameters=True)
            event.listen(waiting, "connect", _sqlite_pragmas)
            _sqlite[url] = _SqliteEngines(inline, waiting, ThreadPoolExecutor(1, thread_name_prefix="store"))
    return _sqlite[url]


async def dispose_all() -> None:
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
    _sessionmakers.clear()
    for sqlite in list(_sqlite.values()):
        if sqlite is not None:
            sqlite.thread.shutdown(wait=True)
            sqlite.inline.dispose()
            sqlite.waiting.dispose()
    _sqlite.clear()
