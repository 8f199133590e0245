"""How fast the Member Account Enrollments table is at 100,000 enrollments: `make bench`.

Seeds a fresh SQLite store (and PostgreSQL with --postgres URL) with N enrollments, then times the pages the
portal and API serve: the first page, a page 1,000 pages deep (keyset), a status filter, a type filter with
an organization sort, and a name search. Prints median and worst milliseconds per query, and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import insert

from domain.models import EnrollmentStatus, MemberType
from domain.rules import organization_key
from store.db import dispose_all, transaction
from store.enrollments import list_enrollments
from store.migrate import upgrade_to_head
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


async def seed(url: str, count: int) -> float:
    started = time.perf_counter()
    data = rows(count)
    for chunk in range(0, count, 5_000):
        async with transaction(url) as session:
            await session.execute(insert(Enrollment), data[chunk : chunk + 5_000])
    return time.perf_counter() - started


async def timed(label: str, query: Callable[[], Awaitable[object]], repeat: int = 30) -> None:
    await query()  # warm the caches once
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await query()
        samples.append((time.perf_counter() - started) * 1000)
    print(f"  {label:<44} median {statistics.median(samples):7.2f} ms   worst {max(samples):7.2f} ms")


async def deep_cursor(url: str, pages: int) -> str | None:
    cursor = None
    for _ in range(pages):
        page = await enrollment_page(url, limit=50, cursor=cursor)
        cursor = page.next_cursor
    return cursor


async def bench(url: str, count: int) -> None:
    upgrade_to_head(url)
    print(f"{url.split(':')[0]}: seeded {count:,} enrollments in {await seed(url, count):.1f} s")
    deep = await deep_cursor(url, 1_000 if count >= 50_000 else 10)
    await timed("first page (newest first)", lambda: enrollment_page(url, limit=50))
    await timed("page 1,000 (keyset cursor)", lambda: enrollment_page(url, limit=50, cursor=deep))
    await timed("status = Pending Review", lambda: enrollment_page(url, status=EnrollmentStatus.pending_review))
    await timed(
        "type = reseller, sorted by organization",
        lambda: enrollment_page(url, member_type=MemberType.reseller, sort=Sort.organization),
    )
    await timed("search 'globex 4242'", lambda: enrollment_page(url, q="globex 4242"), repeat=10)
    await timed("API list, status = New", lambda: list_enrollments(url, status=EnrollmentStatus.new))
    await dispose_all()


async def reset_postgres(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--postgres", help="also run on this (emptied!) database, e.g. postgresql+asyncpg://postgres@127.0.0.1/test"
    )
    args = parser.parse_args()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        await bench(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.count)
    if args.postgres:
        await reset_postgres(args.postgres)
        await bench(args.postgres, args.count)
    _, peak = tracemalloc.get_traced_memory()
    print(f"peak Python memory: {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
