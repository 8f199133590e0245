"""Engines and sessions for the store: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")

_engines: dict[str, AsyncEngine] = {}
_sessionmakers: dict[str, async_sessionmaker[AsyncSession]] = {}
_sqlite_threads: dict[str, tuple[Engine, ThreadPoolExecutor] | None] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the worker writes; the busy timeout rides out the short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
            engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)
            event.listen(engine.sync_engine, "handle_error", _without_row_values)
        _engines[url] = engine
    return _engines[url]


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
    objects and so skip the session's work (identity map, unit of work).

    `body` is synchronous. On a SQLite file it runs whole on this process's store thread (`sqlite3`, the same
    pragmas): one hand-off per transaction, where aiosqlite hands each statement, fetch and commit to its thread
    and back (three times the CPU for a three-statement transaction, docs/performance.md). On PostgreSQL it runs
    on the async engine's connection (`run_sync`: asyncpg, the event loop's own thread)."""
    async with _turn(url):
        threaded = _sqlite_thread(url)
        if threaded is None:
            async with engine_for(url).begin() as conn:
                return await conn.run_sync(body)
        engine, thread = threaded
        return await asyncio.get_running_loop().run_in_executor(thread, _in_transaction, engine, body)


def _in_transaction(engine: Engine, body: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return body(conn)


def _sqlite_thread(url: str) -> tuple[Engine, ThreadPoolExecutor] | None:
    """A SQLite file's synchronous engine and the one thread that runs `run`'s transactions on it; None for
    PostgreSQL, and for an in-memory SQLite database (which only the async engine's connection holds)."""
    if url not in _sqlite_threads:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            _sqlite_threads[url] = None
        else:
            engine = create_engine(parsed.set(drivername="sqlite"), hide_parameters=True)
            event.listen(engine, "connect", _sqlite_pragmas)
            _sqlite_threads[url] = engine, ThreadPoolExecutor(1, thread_name_prefix="store")
    return _sqlite_threads[url]


async def dispose_all() -> None:
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
    _sessionmakers.clear()
    for threaded in list(_sqlite_threads.values()):
        if threaded is not None:
            sync_engine, thread = threaded
            thread.shutdown(wait=True)
            sync_engine.dispose()
    _sqlite_threads.clear()
