"""The enrollments of a reseller's customers, on both databases: the API's list and the portal's table keep the
customers of one reseller (a partner's own table, the staff's filter), and the table names the reseller."""

from __future__ import annotations

from datetime import timedelta

from domain.models import MemberType, RecordAccount
from store.accounts import record_account
from store.enrollments import list_enrollments, record_enrollment
from store.portal import Sort, enrollment_page
from tests.store.enrollments_test import T0, record, view
from tests.support import account_view

RESELLER = "acct-r1"
OTHER = "acct-r2"


async def seed(url: str) -> None:
    account = account_view(
        id=RESELLER,
        enrollment_id="enr-r1",
        organization_name="Resell One Ltd",
        member_type=MemberType.reseller,
        display_users_purchased=False,
        users_purchased=None,
        corporate_contact_email="pat@r1.example",
        created_at=T0,
    )
    await record_account(url, RecordAccount(view=account, event_key=f"{RESELLER}/activated"))
    rows = [
        ("e1", "Alpha Ltd", RESELLER),
        ("e2", "Beta Ltd", OTHER),
        ("e3", "Gamma Ltd", None),
        ("e4", "Delta Ltd", RESELLER),
    ]
    for n, (enrollment_id, name, reseller) in enumerate(rows):
        v = view(enrollment_id, name, created_at=T0 + timedelta(minutes=n), reseller_account_id=reseller)
        await record_enrollment(url, record(v, f"{enrollment_id}/created"))


async def test_the_list_keeps_one_resellers_customers(database_url: str) -> None:
    await seed(database_url)

    mine, _ = await list_enrollments(database_url, reseller_account_id=RESELLER)
    theirs, _ = await list_enrollments(database_url, reseller_account_id=OTHER)
    everyone, _ = await list_enrollments(database_url)

    assert [v.id for v in mine] == ["e4", "e1"]
    assert [v.id for v in theirs] == ["e2"]
    assert len(everyone) == 4
    nothing, _ = await list_enrollments(database_url, reseller_account_id="")
    assert nothing == []


async def test_the_table_pages_one_resellers_customers_and_names_the_reseller(database_url: str) -> None:
    await seed(database_url)

    first = await enrollment_page(database_url, reseller_account_id=RESELLER, limit=1)
    assert [r.id for r in first.rows] == ["e4"] and first.next_cursor
    second = await enrollment_page(database_url, reseller_account_id=RESELLER, limit=1, cursor=first.next_cursor)
    assert [r.id for r in second.rows] == ["e1"] and second.next_cursor is None
    named = await enrollment_page(database_url, q="alpha", reseller_account_id=RESELLER, sort=Sort.organization)
    assert [(r.id, r.reseller_name) for r in named.rows] == [("e1", "Resell One Ltd")]

    table = await enrollment_page(database_url)
    via = {r.id: (r.reseller_account_id, r.reseller_name) for r in table.rows}
    assert via == {
        "e1": (RESELLER, "Resell One Ltd"),
        "e2": (OTHER, None),  # no such account stored: the table shows its id
        "e3": (None, None),
        "e4": (RESELLER, "Resell One Ltd"),
    }
