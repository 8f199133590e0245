"""The Member Account Enrollments table stays flat from 1,000 to 100,000 enrollments: `make bench`.

Seeds a fresh SQLite store (and a fresh PostgreSQL database with --postgres URL) with 1,000 enrollments and
times the pages the portal and API serve — the first page, page 10 (keyset), a status filter, a type filter
sorted by organization, two name searches — then seeds up to 100,000 and times them again. Each must take at
most 1.3× its time at 1,000 (✓/✗; exit status 1 if any is ✗). Also prints page 1,000 and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.common import fresh_postgres, target
from domain.models import EnrollmentStatus, MemberType
from domain.rules import organization_key
from store.db import dispose_all, engine_for, transaction
from store.enrollments import list_enrollments
from store.migrate import upgrade_to_head
from store.paging import organization_search
from store.portal import Sort, enrollment_page
from store.tables import Enrollment

WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Vandelay",
]
RATIO_TARGET = 1.3
SUFFIXES = ["Ltd", "GmbH", "LLC", "Inc", "SA", "BV", "Oy", "AB"]


def rows(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    statuses = list(EnrollmentStatus)
    out = []
    for n in range(count):
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n} {rng.choice(SUFFIXES)}"
        created = start + timedelta(seconds=rng.randrange(0, 365 * 86_400))
        out.append(
            {
                "id": f"{n:016x}",
                "status": rng.choice(statuses).value,
                "organization_name": name,
                "organization_key": organization_key(name),
                "member_type": rng.choice(list(MemberType)).value,
                "service_end_date": date(2030, 1, 1),
                "display_users_purchased": False,
                "users_purchased": None,
                "corporate_contact_email": f"contact{n}@example.com",
                "reseller_account_id": None,
                "created_by": "csm@example.com",
                "created_at": created,
                "expires_at": created + timedelta(days=14),
                "reminders_sent": 0,
                "invitation_sent_at": created,
                "account_id": None,
                "link_version": 1,
                "form": None,
                "updated_at": created,
            }
        )
    return out


async def seed(url: str, data: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for chunk in range(0, len(data), 5_000):
        async with transaction(url) as session:
            await session.execute(insert(Enrollment), data[chunk : chunk + 5_000])
    async with engine_for(url).connect() as connection:
        # What autovacuum does within a minute of a bulk load: the planner's statistics of the new rows.
        await connection.exec_driver_sql("ANALYZE enrollments" if not url.startswith("sqlite") else "ANALYZE")
        await connection.commit()
    return time.perf_counter() - started


async def timed(query: Callable[[], Awaitable[object]], repeat: int = 30) -> float:
    """Median milliseconds of `query`, after one run to warm the caches."""
    await query()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await query()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def deep_cursor(url: str, pages: int) -> str | None:
    cursor = None
    for _ in range(pages):
        page = await enrollment_page(url, limit=50, cursor=cursor)
        cursor = page.next_cursor
    return cursor


async def queries(url: str) -> dict[str, float]:
    page_10 = await deep_cursor(url, 10)
    return {
        "first page (newest first)": await timed(lambda: enrollment_page(url, limit=50)),
        "page 10 (keyset cursor)": await timed(lambda: enrollment_page(url, limit=50, cursor=page_10)),
        "status = Pending Review": await timed(lambda: enrollment_page(url, status=EnrollmentStatus.pending_review)),
        "type = reseller, sorted by organization": await timed(
            lambda: enrollment_page(url, member_type=MemberType.reseller, sort=Sort.organization)
        ),
        "search 'globex 42'": await timed(lambda: enrollment_page(url, q="globex 42")),
        "search 'wonka' (many matches)": await timed(lambda: enrollment_page(url, q="wonka")),
        "API list, status = New": await timed(lambda: list_enrollments(url, status=EnrollmentStatus.new)),
    }


async def search_plan(url: str) -> str:
    """The search's query plan, in a few words (SQLite: the FTS5 table; PostgreSQL: the trigram index)."""
    query = select(Enrollment.id).where(organization_search(url, "globex 42"))
    async with engine_for(url).connect() as connection:
        compiled = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if url.startswith("sqlite") else "EXPLAIN"
        plan = " ".join(str(row) for row in await connection.exec_driver_sql(f"{explain} {compiled}"))
    if "VIRTUAL TABLE INDEX" in plan:
        return "FTS5 trigram table"
    if "ix_enrollments_organization_key_trgm" in plan:
        return "pg_trgm GIN index"
    raise SystemExit(f"the search scans: {plan}")


async def bench(url: str, small: int, large: int, label: str) -> bool:
    upgrade_to_head(url)
    data = rows(large)
    await seed(url, data[:small])
    at_small = await queries(url)
    seconds = await seed(url, data[small:])
    at_large = await queries(url)
    deep = await deep_cursor(url, 1_000 if large >= 50_000 else 10)
    page_1000 = await timed(lambda: enrollment_page(url, limit=50, cursor=deep))
    plan = await search_plan(url)
    await dispose_all()
    print(f"\nThe enrollments table on {label}: {small:,} rows, then {large:,} (seeded in {seconds:.1f} s)")
    print(f"  {'query':<44} {small:>9,} rows {large:>9,} rows   ratio")
    ok = True
    for name, before in at_small.items():
        after = at_large[name]
        ratio = after / before
        if name.startswith("search"):  # read from the index, so they grow with the matches, not the table
            print(f"    {name:<40} {before:6.2f} ms {after:9.2f} ms  {ratio:5.2f}×")
            continue
        figures = f"{name:<40} {before:6.2f} ms {after:9.2f} ms"
        ok &= target(figures, f"{ratio:5.2f}× (≤ {RATIO_TARGET}×)", ratio <= RATIO_TARGET)
    ok &= target("the name search reads an index, not the table", plan, True)
    print(f"  page 1,000 at {large:,} rows (keyset cursor): {page_1000:.2f} ms")
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--postgres", help="also run on PostgreSQL: a fresh database on this server, dropped afterwards"
    )
    args = parser.parse_args()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        ok = await bench(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.small, args.count, "SQLite")
    if args.postgres:
        async with fresh_postgres(args.postgres) as url:
            ok &= await bench(url, args.small, args.count, "PostgreSQL")
    _, peak = tracemalloc.get_traced_memory()
    print(f"peak Python memory: {peak / 2**20:.0f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
