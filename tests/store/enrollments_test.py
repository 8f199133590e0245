"""The enrollments read model on SQLite and PostgreSQL: upserts, timelines, organization claims, the list."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from domain.models import (
    EnrollmentStatus,
    EnrollmentView,
    MemberType,
    RecordEnrollment,
    TimelineEvent,
)
from store.db import engine_for
from store.enrollments import (
    OrganizationTaken,
    find_claim,
    get_enrollment,
    list_enrollments,
    record_enrollment,
)
from store.paging import NEWEST, BadCursor, Position, decode_cursor, encode_cursor, instant, organization_search
from store.tables import Enrollment

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def view(
    enrollment_id: str,
    name: str = "Acme Widgets Ltd",
    *,
    status: EnrollmentStatus = EnrollmentStatus.new,
    member_type: MemberType = MemberType.customer,
    created_at: datetime = T0,
    **extra: object,
) -> EnrollmentView:
    return EnrollmentView.model_validate(
        {
            "id": enrollment_id,
            "status": status,
            "service_end_date": date(2030, 1, 1),
            "member_type": member_type,
            "display_users_purchased": member_type == MemberType.customer,
            "users_purchased": 100 if member_type == MemberType.customer else None,
            "organization_name": name,
            "corporate_contact_email": "pat@acme.example",
            "reseller_account_id": None,
            "created_at": created_at,
            "created_by": "csm@provider.example",
            **extra,
        }
    )


def record(
    v: EnrollmentView,
    key: str,
    *,
    event: str = "created",
    at: datetime | None = None,
    note: str | None = None,
    release_claim: bool = False,
) -> RecordEnrollment:
    return RecordEnrollment(
        view=v,
        event_key=key,
        event=TimelineEvent(at=at or v.created_at, event=event, actor="csm@provider.example", note=note),
        release_claim=release_claim,
    )


async def test_a_recorded_enrollment_reads_back(database_url: str) -> None:
    v = view("e1", expires_at=T0 + timedelta(days=14), reminders_sent=1, link_version=2)
    await record_enrollment(database_url, record(v, "e1/created"))
    got = await get_enrollment(database_url, "e1")
    assert got is not None
    assert got.model_dump(exclude={"timeline"}) == v.model_dump(exclude={"timeline"})
    assert [(t.event, t.at) for t in got.timeline] == [("created", T0)]


async def test_an_unknown_enrollment_is_none(database_url: str) -> None:
    assert await get_enrollment(database_url, "nope") is None


async def test_recording_the_same_event_twice_adds_it_once(database_url: str) -> None:
    rec = record(view("e1"), "enrollment-e1/1")
    await record_enrollment(database_url, rec)
    await record_enrollment(database_url, rec)
    got = await get_enrollment(database_url, "e1")
    assert got is not None
    assert [t.event for t in got.timeline] == ["created"]
    items, _ = await list_enrollments(database_url)
    assert [i.id for i in items] == ["e1"]


async def test_recording_again_updates_the_row_and_adds_the_new_event(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1"), "k1"))
    later = view(
        "e1", status=EnrollmentStatus.pending_review, reminders_sent=2, corporate_contact_email="sam@acme.example"
    )
    await record_enrollment(database_url, record(later, "k2", event="form submitted", at=T0 + timedelta(days=3)))
    # A retried activity re-records the second event: nothing changes.
    await record_enrollment(database_url, record(later, "k2", event="form submitted", at=T0 + timedelta(days=3)))
    got = await get_enrollment(database_url, "e1")
    assert got is not None
    assert got.status == EnrollmentStatus.pending_review
    assert got.reminders_sent == 2
    assert got.corporate_contact_email == "sam@acme.example"
    assert [t.event for t in got.timeline] == ["created", "form submitted"]


async def test_the_timeline_comes_back_in_order(database_url: str) -> None:
    v = view("e1")
    events = [
        ("reminder sent", T0 + timedelta(days=3)),
        ("created", T0),
        ("invitation sent", T0 + timedelta(seconds=1)),
        ("edited", T0 + timedelta(days=3)),  # same instant as the reminder: written after it
        ("form submitted", T0 + timedelta(days=5)),
    ]
    for i, (event, at) in enumerate(events):
        await record_enrollment(database_url, record(v, f"k{i}", event=event, at=at, note=f"note {i}"))
    got = await get_enrollment(database_url, "e1")
    assert got is not None
    assert [(t.event, t.at) for t in got.timeline] == [
        ("created", T0),
        ("invitation sent", T0 + timedelta(seconds=1)),
        ("reminder sent", T0 + timedelta(days=3)),
        ("edited", T0 + timedelta(days=3)),
        ("form submitted", T0 + timedelta(days=5)),
    ]
    assert got.timeline[0].note == "note 1"
    assert got.timeline[0].actor == "csm@provider.example"


async def test_timelines_of_enrollments_do_not_mix(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1", "Acme"), "e1/1"))
    await record_enrollment(database_url, record(view("e2", "Beta"), "e2/1", event="other"))
    one = await get_enrollment(database_url, "e1")
    two = await get_enrollment(database_url, "e2")
    assert one is not None and two is not None
    assert [t.event for t in one.timeline] == ["created"]
    assert [t.event for t in two.timeline] == ["other"]


# -- the organization claim --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("other_name", ["Acme Widgets Ltd", "ACME WIDGETS LTD", "  acme   widgets\tltd "])
async def test_a_second_enrollment_of_the_same_organization_is_refused(database_url: str, other_name: str) -> None:
    await record_enrollment(database_url, record(view("e1", "Acme Widgets Ltd"), "e1/1"))
    with pytest.raises(OrganizationTaken) as taken:
        await record_enrollment(database_url, record(view("e2", other_name), "e2/1"))
    assert taken.value.enrollment_id == "e1"
    assert await get_enrollment(database_url, "e2") is None
    assert await find_claim(database_url, other_name) == "e1"


async def test_different_organizations_do_not_clash(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1", "Acme Widgets Ltd"), "e1/1"))
    await record_enrollment(database_url, record(view("e2", "Acme Widgets Inc"), "e2/1"))
    assert await find_claim(database_url, "acme widgets inc") == "e2"
    assert await find_claim(database_url, "Nobody Ltd") is None


async def test_an_enrollment_keeps_its_own_claim_as_it_moves_on(database_url: str) -> None:
    for i, status in enumerate(
        [EnrollmentStatus.new, EnrollmentStatus.pending_review, EnrollmentStatus.in_review, EnrollmentStatus.approved]
    ):
        await record_enrollment(database_url, record(view("e1", status=status), f"e1/{i}"))
    # Approved: the live account still holds the name.
    with pytest.raises(OrganizationTaken):
        await record_enrollment(database_url, record(view("e2"), "e2/1"))


@pytest.mark.parametrize("final", [EnrollmentStatus.cancelled, EnrollmentStatus.rejected])
async def test_a_cancelled_or_rejected_enrollment_releases_the_name(database_url: str, final: EnrollmentStatus) -> None:
    await record_enrollment(database_url, record(view("e1"), "e1/1"))
    await record_enrollment(database_url, record(view("e1", status=final), "e1/2"))
    assert await find_claim(database_url, "Acme Widgets Ltd") is None
    await record_enrollment(database_url, record(view("e2", "acme widgets ltd"), "e2/1"))
    assert await find_claim(database_url, "Acme Widgets Ltd") == "e2"


@pytest.mark.parametrize(
    "still_open", [EnrollmentStatus.pending_review, EnrollmentStatus.in_review, EnrollmentStatus.expired]
)
async def test_an_open_or_expired_enrollment_keeps_the_name(database_url: str, still_open: EnrollmentStatus) -> None:
    await record_enrollment(database_url, record(view("e1"), "e1/1"))
    await record_enrollment(database_url, record(view("e1", status=still_open), "e1/2"))
    with pytest.raises(OrganizationTaken):
        await record_enrollment(database_url, record(view("e2"), "e2/1"))


async def test_release_claim_frees_the_name(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1"), "e1/1"))
    await record_enrollment(
        database_url, record(view("e1", status=EnrollmentStatus.expired), "e1/2", release_claim=True)
    )
    assert await find_claim(database_url, "Acme Widgets Ltd") is None
    await record_enrollment(database_url, record(view("e2"), "e2/1"))
    got = await get_enrollment(database_url, "e1")
    assert got is not None and got.status == EnrollmentStatus.expired


async def test_renaming_moves_the_claim(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1", "Acme Widgets Ltd"), "e1/1"))
    await record_enrollment(database_url, record(view("e1", "Acme Gadgets Ltd"), "e1/2", event="edited"))
    assert await find_claim(database_url, "Acme Widgets Ltd") is None
    assert await find_claim(database_url, "Acme Gadgets Ltd") == "e1"
    await record_enrollment(database_url, record(view("e2", "Acme Widgets Ltd"), "e2/1"))


async def test_a_refused_rename_changes_nothing(database_url: str) -> None:
    await record_enrollment(database_url, record(view("e1", "Acme"), "e1/1"))
    await record_enrollment(database_url, record(view("e2", "Beta"), "e2/1"))
    with pytest.raises(OrganizationTaken):
        await record_enrollment(database_url, record(view("e2", "ACME"), "e2/2", event="edited"))
    got = await get_enrollment(database_url, "e2")
    assert got is not None
    assert got.organization_name == "Beta"
    assert [t.event for t in got.timeline] == ["created"]
    assert await find_claim(database_url, "Beta") == "e2"


# -- the list ------------------------------------------------------------------------------------------------------


async def test_list_filters_by_status_type_and_name(database_url: str) -> None:
    rows = [
        ("e1", "Acme Widgets Ltd", EnrollmentStatus.new, MemberType.customer),
        ("e2", "Beta Resellers", EnrollmentStatus.pending_review, MemberType.reseller),
        ("e3", "Gamma Tokens", EnrollmentStatus.new, MemberType.manufacturer),
        ("e4", "ACME Gadgets", EnrollmentStatus.cancelled, MemberType.customer),
        ("e5", "Delta Widgets", EnrollmentStatus.new, MemberType.reseller),
    ]
    for i, (eid, name, status, kind) in enumerate(rows):
        v = view(eid, name, status=status, member_type=kind, created_at=T0 + timedelta(minutes=i))
        await record_enrollment(database_url, record(v, f"{eid}/1"))

    async def ids(**filters: object) -> list[str]:
        items, cursor = await list_enrollments(database_url, **filters)  # type: ignore[arg-type]
        assert cursor is None
        return [i.id for i in items]

    assert await ids() == ["e5", "e4", "e3", "e2", "e1"]
    assert await ids(status=EnrollmentStatus.new) == ["e5", "e3", "e1"]
    assert await ids(status=EnrollmentStatus.approved) == []
    assert await ids(member_type="customer") == ["e4", "e1"]
    assert await ids(member_type="reseller", status=EnrollmentStatus.new) == ["e5"]
    assert await ids(q="acme") == ["e4", "e1"]
    assert await ids(q="ACME g") == ["e4"]
    assert await ids(q="widgets") == ["e5", "e1"]
    assert await ids(q="  Widgets   LTD ") == ["e1"]
    assert await ids(q="idget") == ["e5", "e1"]
    assert await ids(q="widgets", member_type="customer") == ["e1"]
    assert await ids(q="zzz") == []
    items, _ = await list_enrollments(database_url, status=EnrollmentStatus.pending_review)
    assert items[0].organization_name == "Beta Resellers"
    assert items[0].timeline == []


async def seed_names(url: str, prefix: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        await record_enrollment(url, record(view(f"{prefix}{i}", name, created_at=T0 + timedelta(minutes=i)), f"k{i}"))


async def found_names(url: str, q: str) -> list[str]:
    items, _ = await list_enrollments(url, q=q)
    return sorted(i.organization_name for i in items)


async def test_wildcards_in_the_search_are_literal(database_url: str) -> None:
    await seed_names(
        database_url, "e", ["100% Cotton", "1000 Cotton", "A_B Corp", "AxB Corp", "Back\\Slash Ltd", "Backslash Ltd"]
    )

    async def names_for(q: str) -> list[str]:
        return await found_names(database_url, q)

    assert await names_for("%") == ["100% Cotton"]
    assert await names_for("0% c") == ["100% Cotton"]
    assert await names_for("_") == ["A_B Corp"]
    assert await names_for("a_b") == ["A_B Corp"]
    assert await names_for("\\") == ["Back\\Slash Ltd"]
    assert await names_for("%%") == []
    assert await names_for("cotton") == ["100% Cotton", "1000 Cotton"]


async def test_glob_characters_in_a_search_are_literal_and_a_renamed_organization_is_found_by_its_new_name(
    database_url: str,
) -> None:
    names = ["Star*Power Ltd", "Starlight Power Ltd", "Why?Not Ltd", "WhyNot Ltd", "Brace[s] Ltd", "Braces Ltd"]
    await seed_names(database_url, "g", names)

    async def names_for(q: str) -> list[str]:
        return await found_names(database_url, q)

    assert await names_for("r*p") == ["Star*Power Ltd"]
    assert await names_for("y?n") == ["Why?Not Ltd"]
    assert await names_for("e[s]") == ["Brace[s] Ltd"]
    assert await names_for("ACE") == ["Brace[s] Ltd", "Braces Ltd"]
    renamed = view("g1", "Moonlight Power Ltd", created_at=T0 + timedelta(minutes=1))
    await record_enrollment(database_url, record(renamed, "g1/rename"))
    assert await names_for("starlight") == []
    assert await names_for("moonlight") == ["Moonlight Power Ltd"]


ORGANIZATION_BTREES = [
    "ix_enrollments_organization",
    "ix_enrollments_status_organization",
    "ix_enrollments_type_organization",
]


async def test_a_name_search_of_three_characters_or_more_reads_the_trigram_index(database_url: str) -> None:
    query = select(Enrollment.id).where(organization_search(database_url, "acme widgets"))
    async with engine_for(database_url).connect() as connection:
        if database_url.startswith("sqlite"):
            compiled = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(row) for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert "VIRTUAL TABLE INDEX" in plan, plan
        else:
            # On a table this small the planner rightly prefers a scan or a btree; without them (rolled back
            # below), the trigram index must still answer the search: it can serve LIKE '%…%'.
            for index in ORGANIZATION_BTREES:
                await connection.exec_driver_sql(f"DROP INDEX {index}")
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            compiled = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
            plan = " ".join(str(row) for row in await connection.exec_driver_sql(f"EXPLAIN {compiled}"))
            await connection.rollback()
            assert "Index Cond" in plan and "ix_enrollments_organization_key_trgm" in plan, plan


@pytest.mark.parametrize("limit", [1, 4, 7, 25, 100])
async def test_pages_walk_every_row_exactly_once_newest_first(database_url: str, limit: int) -> None:
    # 25 enrollments; groups of them share a created_at, so the id breaks the tie.
    expected: list[tuple[datetime, str]] = []
    for i in range(25):
        at = T0 + timedelta(seconds=(i // 3) * 10)
        eid = f"e{(i * 7) % 25:02d}"  # ids not in creation order
        expected.append((at, eid))
        await record_enrollment(database_url, record(view(eid, f"Org {eid}", created_at=at), f"{eid}/1"))
    expected.sort(reverse=True)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        items, cursor = await list_enrollments(database_url, limit=limit, cursor=cursor)
        pages += 1
        assert len(items) <= limit
        seen += [i.id for i in items]
        if cursor is None:
            break
        assert len(items) == limit
        assert pages <= 25
    assert seen == [eid for _, eid in expected]
    assert pages == max(1, -(-25 // limit))


async def test_pages_respect_filters(database_url: str) -> None:
    for i in range(12):
        status = EnrollmentStatus.new if i % 3 else EnrollmentStatus.pending_review
        v = view(f"e{i:02d}", f"Org {i}", status=status, created_at=T0 + timedelta(seconds=i // 2))
        await record_enrollment(database_url, record(v, f"k{i}"))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        items, cursor = await list_enrollments(database_url, status=EnrollmentStatus.new, limit=3, cursor=cursor)
        assert all(i.status == EnrollmentStatus.new for i in items)
        seen += [i.id for i in items]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"e{i:02d}" for i in range(12) if i % 3)
    assert len(seen) == len(set(seen))


async def test_a_last_page_that_is_exactly_full_has_no_next_cursor(database_url: str) -> None:
    for i in range(4):
        await record_enrollment(database_url, record(view(f"e{i}", f"Org {i}", created_at=T0 + timedelta(i)), f"k{i}"))
    items, cursor = await list_enrollments(database_url, limit=2)
    assert cursor is not None
    items, cursor = await list_enrollments(database_url, limit=2, cursor=cursor)
    assert [i.id for i in items] == ["e1", "e0"]
    assert cursor is None


async def test_an_empty_list(database_url: str) -> None:
    assert await list_enrollments(database_url) == ([], None)


def raw_cursor(*parts: object) -> str:
    """A cursor laid out as the store lays its own out, holding whatever `parts` are."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "é",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", "e1"]).encode()).decode(),  # no time zone
        base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", 5]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["yesterday", "e1"]).encode()).decode(),
        raw_cursor(NEWEST, "after", "2026-01-01T00:00:00", "e1"),  # no time zone
        raw_cursor(NEWEST, "after", "2026-01-01T00:00:00+00:00", 5),
        raw_cursor(NEWEST, "after", "yesterday", "e1"),
        raw_cursor(NEWEST, "before", "2026-01-01T00:00:00+00:00", "e1"),  # these lists only walk on
        raw_cursor("organization", "after", "2026-01-01T00:00:00+00:00", "e1"),  # another list's order
        raw_cursor(NEWEST, "after", "2026-01-01T00:00:00+00:00", "e1", "extra"),
        base64.urlsafe_b64encode(json.dumps({"at": 1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(None).encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_garbage_cursor_is_refused(database_url: str, cursor: str) -> None:
    await record_enrollment(database_url, record(view("e1"), "k1"))
    with pytest.raises(BadCursor):
        await list_enrollments(database_url, cursor=cursor)


def test_a_cursor_round_trips() -> None:
    at = datetime(2026, 11, 25, 13, 45, 1, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(NEWEST, at, "e-42"), NEWEST, instant) == Position(at, "e-42")
    back = encode_cursor("organization", "acme widgets ltd", "e-42", before=True)
    assert decode_cursor(back, "organization", str, both_ways=True) == Position("acme widgets ltd", "e-42", True)


async def test_a_garbage_cursor_is_refused_with_the_message_the_api_answers(database_url: str) -> None:
    with pytest.raises(BadCursor, match=r"^cursor is not one this API returned$"):
        await list_enrollments(database_url, cursor="garbage")


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(st.text(max_size=80))
def test_any_cursor_decodes_or_is_refused(cursor: str) -> None:
    try:
        stop = decode_cursor(cursor, NEWEST, instant)
    except BadCursor:
        return
    assert stop.key.tzinfo is not None
    assert isinstance(stop.row_id, str)
    assert not stop.before


async def test_times_come_back_as_the_same_instant(database_url: str) -> None:
    paris = timezone(timedelta(hours=2))
    at = datetime(2026, 11, 1, 12, 0, tzinfo=paris)
    await record_enrollment(database_url, record(view("e1", created_at=at, expires_at=at + timedelta(days=14)), "k1"))
    got = await get_enrollment(database_url, "e1")
    assert got is not None
    assert got.created_at == at
    assert got.expires_at == at + timedelta(days=14)
    assert got.timeline[0].at == at
