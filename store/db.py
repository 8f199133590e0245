"""Engines and sessions for the store: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_engines: dict[str, AsyncEngine] = {}
_sessionmakers: dict[str, async_sessionmaker[AsyncSession]] = {}


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


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[AsyncConnection]:
    """A plain connection in one transaction, taking turns as `transaction` does: for the statements on every
    create's path, which need no ORM objects and so skip the session's work (identity map, unit of work)."""
    async with _turn(url), engine_for(url).begin() as conn:
        yield conn


async def dispose_all() -> None:
    for engine in list(_engines.values()):
        await engine.dispose()
    _engines.clear()
    _sessionmakers.clear()
