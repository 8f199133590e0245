"""The Enrollments table's reads (store/portal.py): every sort pages through every row once, both ways, on an
index (no sort of the whole table), so a deep page costs what the first does."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import insert, text
from sqlalchemy.dialects import sqlite

from domain.models import EnrollmentStatus, MemberType
from domain.rules import organization_key
from store.db import engine_for, transaction
from store.migrate import upgrade_to_head
from store.portal import EnrollmentPage, Sort, enrollment_page, page_query
from store.tables import Enrollment

ROWS = 230
START = datetime(2026, 1, 1, tzinfo=UTC)


def seed_rows() -> list[dict[str, Any]]:
    pick = random.Random(7)
    rows: list[dict[str, Any]] = []
    for n in range(ROWS):
        name = f"{pick.choice(['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli'])} {pick.randrange(40):02d}"
        rows.append(
            {
                "id": f"{n:016x}",
                "status": list(EnrollmentStatus)[n % 7].value,
                "organization_name": name,
                "organization_key": organization_key(name),
                "member_type": list(MemberType)[n % 3].value,
                "service_end_date": START.date() + timedelta(days=900),
                "display_users_purchased": False,
                "users_purchased": None,
                "corporate_contact_email": f"c{n}@example.com",
                # Every third row shares its timestamp with the one before: ties are broken by id.
                "created_at": START + timedelta(minutes=n - n % 3 // 2),
                "expires_at": START + timedelta(days=14, minutes=n),
                "reminders_sent": 0,
                "link_version": 1,
                "updated_at": START,
            }
        )
    return rows


@pytest_asyncio.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    async with transaction(url) as session:
        await session.execute(insert(Enrollment), seed_rows())
    yield url
    await engine_for(url).dispose()


def expected_ids(sort: Sort, rows: list[dict[str, Any]]) -> list[str]:
    key = "created_at" if sort in (Sort.newest, Sort.oldest) else "organization_key"
    ordered = sorted(rows, key=lambda r: (r[key], r["id"]))
    if sort in (Sort.newest, Sort.organization_desc):
        ordered.reverse()
    return [str(r["id"]) for r in ordered]


@pytest.mark.parametrize("sort", list(Sort))
async def test_every_sort_walks_every_row_once_forwards_and_back(seeded: str, sort: Sort) -> None:
    pages: list[EnrollmentPage] = [await enrollment_page(seeded, sort=sort, limit=25)]
    assert pages[0].previous_cursor is None
    while pages[-1].next_cursor:
        pages.append(await enrollment_page(seeded, sort=sort, limit=25, cursor=pages[-1].next_cursor))
    walked = [row.id for page in pages for row in page.rows]
    assert walked == expected_ids(sort, seed_rows())
    assert len(pages) == -(-ROWS // 25)

    back = pages[-1]
    for earlier in reversed(pages[:-1]):
        assert back.previous_cursor is not None
        back = await enrollment_page(seeded, sort=sort, limit=25, cursor=back.previous_cursor)
        assert [r.id for r in back.rows] == [r.id for r in earlier.rows]
    assert back.previous_cursor is None


async def test_filters_and_search_narrow_the_walk(seeded: str) -> None:
    rows = seed_rows()
    found = await enrollment_page(
        seeded, status=EnrollmentStatus.pending_review, q="  ACME ", sort=Sort.organization, limit=200
    )
    expected = [r for r in rows if r["status"] == "Pending Review" and "acme" in str(r["organization_key"])]
    assert sorted(r.id for r in found.rows) == sorted(str(r["id"]) for r in expected)
    assert all(r.organization_name.startswith("Acme") for r in found.rows)
    assert found.next_cursor is None
    # A search for "%" or "_" means those characters, not SQL wildcards.
    assert (await enrollment_page(seeded, q="%")).rows == []


@pytest.mark.parametrize(
    ("sort", "status", "index"),
    [
        (Sort.newest, None, "ix_enrollments_created"),
        (Sort.oldest, None, "ix_enrollments_created"),
        (Sort.newest, EnrollmentStatus.new, "ix_enrollments_status_created"),
        (Sort.oldest, EnrollmentStatus.pending_review, "ix_enrollments_status_created"),
        (Sort.organization, None, "ix_enrollments_organization"),
        (Sort.organization_desc, None, "ix_enrollments_organization"),
        (Sort.organization, EnrollmentStatus.new, "ix_enrollments_status_organization"),
    ],
)
async def test_deep_pages_are_read_from_an_index_without_sorting_the_table(
    seeded: str, sort: Sort, status: EnrollmentStatus | None, index: str
) -> None:
    first = await enrollment_page(seeded, sort=sort, status=status, limit=10)
    query, _ = page_query(sort=sort, status=status, limit=10, cursor=first.next_cursor)
    compiled = query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    async with transaction(seeded) as session:
        plan = " | ".join(str(row[-1]) for row in await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert index in plan, plan
    # Never the whole result sorted; organization sorts only order rows of one name by id ("RIGHT PART").
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
