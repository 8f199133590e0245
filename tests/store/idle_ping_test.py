"""PostgreSQL's pool pings a connection only after it sat idle (`store.db.PING_AFTER_IDLE_S`): one the server
closed while it waited in the pool is replaced before a transaction uses it, and a connection back in use within
the second is not pinged at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import Connection, event, text

from store import db
from store.db import engine_for, run


def backend(conn: Connection) -> int:
    pid: int = conn.scalar(text("select pg_backend_pid()"))
    return pid


@pytest_asyncio.fixture
async def postgres_url(database_url: str) -> AsyncIterator[str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("the idle ping is PostgreSQL's pool's")
    yield database_url


async def terminate(url: str, pid: int) -> None:
    """What a database restart or a proxy's idle timeout does to one connection: the server closes it."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        assert await conn.fetchval("select pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


def pings(url: str) -> list[object]:
    """Each ping the engine's dialect makes from now on."""
    seen: list[object] = []
    dialect: Any = engine_for(url).sync_engine.dialect
    original = dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        seen.append(dbapi_connection)
        result: bool = original(dbapi_connection)
        return result

    dialect.do_ping = counting
    return seen


async def test_a_connection_closed_while_idle_is_replaced(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.2)
    first = await run(postgres_url, backend)
    await terminate(postgres_url, first)
    await asyncio.sleep(0.3)  # idle past the threshold
    second = await run(postgres_url, backend)  # no error: the ping found it closed, and the pool reconnected
    assert second != first


async def test_a_busy_connection_is_not_pinged(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 60.0)
    seen = pings(postgres_url)
    pids = {await run(postgres_url, backend) for _ in range(20)}
    assert len(pids) == 1 and seen == []  # one pooled connection, used back to back, never pinged
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    await run(postgres_url, backend)
    assert len(seen) == 1  # idle past the threshold: pinged once


async def test_the_pool_checks_out_through_the_idle_ping(postgres_url: str) -> None:
    """The engine carries the listeners (and not `pool_pre_ping`, which would ping every checkout)."""
    engine = engine_for(postgres_url).sync_engine
    assert not engine.pool._pre_ping
    assert event.contains(engine, "checkin", db._idle_from)
