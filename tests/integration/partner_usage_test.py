"""Usage for the partner, through the API and the portal on the real store (SQLite and PostgreSQL): the roll-up's
users purchased, existing and available per customer and in total, its CSV export (streamed, formula-safe), who
may see them (staff and the reseller's own users; anyone else 404), and staff's accounts filter by reseller.

These routes read the store only, so the app runs here without Temporal."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest_asyncio

from domain.models import AccountStatus, AccountView, MemberType, RecordAccount, Role
from domain.settings import Settings
from starter.app import create_app
from starter.customers_csv import COLUMNS
from starter.services.accounts import AccountReader
from starter.services.customers import customer_pages
from store import users
from store.accounts import record_account
from tests.security.conftest import signed_in_session, turn_on_second_factor
from tests.support import account_view, make_settings

PASSWORD = "a long enough password"
DASHED = "-x@a.example"
HOSTILE = '=HYPERLINK("http://evil.example","Acme")'
PARTNER_SENTENCE = "Partners (reseller tokens) may call this."


@dataclass
class Who:
    token: str
    cookie: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session(self) -> dict[str, str]:
        return {"Cookie": self.cookie}


@dataclass
class World:
    api: httpx.AsyncClient
    reader: AccountReader
    staff: Who
    amy: Who
    """An administrator of the reseller Vertex (r1)."""
    sam: Who
    """An administrator of another reseller (r2)."""
    pat: Who
    """An administrator of Vertex's customer c1."""


def customer(n: int, reseller: str = "r1", **changes: object) -> AccountView:
    fields: dict[str, object] = {
        "id": f"c{n}",
        "enrollment_id": f"e{n}",
        "organization_name": f"Customer {n}",
        "reseller_account_id": reseller,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
    }
    return account_view(**(fields | changes))


ACCOUNTS = [
    account_view(id="r1", enrollment_id="er1", organization_name="Vertex Resale", member_type=MemberType.reseller),
    account_view(id="r2", enrollment_id="er2", organization_name="Other Resale", member_type=MemberType.reseller),
    customer(1, organization_name=HOSTILE, users_purchased=1000, users_existing=400, corporate_contact_email=DASHED),
    customer(2, display_users_purchased=False, users_purchased=None, users_existing=30),
    customer(3, users_purchased=100, users_existing=150),
    customer(4, users_purchased=200, users_existing=None),
    customer(5, users_purchased=999, users_existing=1, status=AccountStatus.deleted),
    customer(6, reseller="r2", users_purchased=5000, users_existing=1),
]


async def who(settings: Settings, email: str, role: Role, account: str | None) -> Who:
    """A user with an API token and a fully signed-in portal session (password and second factor)."""
    url = settings.effective_database_url
    user = await users.add_user(url, email=email, role=role, password=PASSWORD, account_id=account)
    await turn_on_second_factor(settings, user.id)
    cookie, _ = await signed_in_session(settings, user.id)
    return Who(await users.create_token(url, email), cookie)


@pytest_asyncio.fixture
async def world(tmp_path: Path, database_url: str) -> AsyncIterator[World]:
    settings = make_settings(
        tmp_path, database_url=database_url, temporal_address="127.0.0.1:1", smtp_port=1, task_queue="unused"
    )
    for view in ACCOUNTS:
        await record_account(database_url, RecordAccount(view=view, event_key=f"account-{view.id}/event-1", event=None))
    people = [
        await who(settings, "csm@provider.example", Role.csm, None),
        await who(settings, "amy@vertex.example", Role.reseller, "r1"),
        await who(settings, "sam@other.example", Role.reseller, "r2"),
        await who(settings, "pat@acme.example", Role.customer, "c1"),
    ]
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
        yield World(api, AccountReader(settings), *people)


async def test_the_rollup_shows_each_customers_users_and_the_totals(world: World) -> None:
    answer = await world.api.get("/api/accounts/r1/rollup?limit=2", headers=world.amy.auth)
    assert answer.status_code == 200, answer.text
    rollup = answer.json()
    assert rollup["totals"] == {
        "customers": 4,
        "customers_displaying_purchased": 3,
        "customers_not_reported": 1,
        "users_purchased": 1300,
        "users_existing": 580,
        "users_available": 800,
        "users_over": 50,
    }, "every customer, not just this page of 2; the Deleted one and another reseller's left out"
    assert [c["account_id"] for c in rollup["customers"]] == ["c4", "c3"] and rollup["next_cursor"]
    c4, c3 = rollup["customers"]
    assert (c4["users_purchased"], c4["users_existing"], c4["users_available"]) == (200, None, 200)
    assert (c3["users_purchased"], c3["users_existing"], c3["users_available"], c3["users_over"]) == (100, 150, 0, 50)
    more = await world.api.get(f"/api/accounts/r1/rollup?cursor={rollup['next_cursor']}", headers=world.amy.auth)
    rest = more.json()
    paygo = next(c for c in rest["customers"] if c["account_id"] == "c2")
    assert (paygo["users_purchased"], paygo["users_existing"], paygo["users_available"]) == (None, 30, None)
    assert rest["totals"] == rollup["totals"]
    assert (await world.api.get("/api/accounts/r1/rollup", headers=world.staff.auth)).json()["totals"]["customers"] == 4


async def test_only_staff_and_the_resellers_own_users_see_its_customers(world: World) -> None:
    for path in ("/api/accounts/r1/rollup", "/api/accounts/r1/customers.csv"):
        assert (await world.api.get(path)).status_code == 401
        for stranger in (world.sam, world.pat):
            answer = await world.api.get(path, headers=stranger.auth)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json() == {"detail": "No reseller account has the id r1."}, "as for an unknown id"
        assert (await world.api.get(path, headers=world.staff.auth)).status_code == 200
    for path in ("/api/accounts/c1/customers.csv", "/api/accounts/nope/customers.csv"):
        answer = await world.api.get(path, headers=world.staff.auth)
        assert answer.status_code == 404, "not a reseller's account, or none"
        assert "Vertex" not in answer.text and "Acme" not in answer.text
    for path in ("/accounts/r1/customers", "/accounts/r1/customers.csv"):
        assert (await world.api.get(path, headers=world.sam.session)).status_code == 404
        assert (await world.api.get(path, headers=world.pat.session)).status_code == 404
        assert (await world.api.get(path, headers=world.staff.session)).status_code == 200
        assert (await world.api.get(path, headers=world.amy.session)).status_code == 200


def parsed(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="customers-r1-')
    assert answer.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert tuple(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


async def test_the_customers_export_as_csv_formula_safe(world: World) -> None:
    for answer in (
        await world.api.get("/api/accounts/r1/customers.csv", headers=world.amy.auth),
        await world.api.get("/accounts/r1/customers.csv", headers=world.amy.session),
    ):
        rows = parsed(answer)
        assert [r["account_id"] for r in rows] == ["c4", "c3", "c2", "c1"], "newest first, not the Deleted one"
        by_id = {r["account_id"]: r for r in rows}
        assert by_id["c1"]["organization_name"] == "'" + HOSTILE, "a formula opens as text"
        assert by_id["c1"]["corporate_contact_email"] == "'" + DASHED
        c1 = by_id["c1"]
        assert (c1["users_purchased"], c1["users_existing"], c1["users_available"], c1["users_over"]) == (
            "1000",
            "400",
            "600",
            "0",
        )
        c2 = by_id["c2"]
        assert (c2["display_users_purchased"], c2["users_purchased"], c2["users_available"]) == ("no", "", "")
        assert (by_id["c4"]["users_existing"], by_id["c4"]["users_reported_at"]) == ("", "")
        assert by_id["c3"]["users_over"] == "50" and by_id["c3"]["status"] == "Active"


async def test_the_export_reads_the_customers_a_page_at_a_time(world: World) -> None:
    pages = [page async for page in customer_pages(world.reader, "r1", page_size=3)]
    assert [[view.id for view, _ in page] for page in pages] == [["c4", "c3", "c2"], ["c1"]]
    assert [page async for page in customer_pages(world.reader, "nobody")] == []


async def test_the_portal_rollup_shows_the_totals_and_the_export_link(world: World) -> None:
    answer = await world.api.get("/accounts/r1/customers", headers=world.amy.session)
    assert answer.status_code == 200
    html = answer.text
    figures = html[html.index('<dl class="figures rollup">') : html.index("</dl>")]
    for label, figure in (("Users purchased", "1,300"), ("Users existing", "580"), ("Users available", "800")):
        assert f"<dt>{label}</dt>\n    <dd>{figure}<span>all customers</span>" in figures, label
    assert "<dt>Users over purchased</dt>\n    <dd>50<" in figures
    assert 'href="/accounts/r1/customers.csv"' in html
    assert "Pay as you go" in html and "Not reported" in html and "(50 over)" in html
    assert "3 of 4 customers that display users purchased" in html
    assert "1 customer has not reported usage yet" in html
    assert HOSTILE not in html and "=HYPERLINK(&#34;http://evil.example&#34;" in html, "the name is escaped"


async def test_staff_filter_the_accounts_by_reseller(world: World) -> None:
    listed = (await world.api.get("/api/accounts?reseller_account_id=r1", headers=world.staff.auth)).json()
    assert [a["id"] for a in listed["items"]] == ["c5", "c4", "c3", "c2", "c1"]
    limited = (await world.api.get("/api/accounts?reseller_account_id=r1&limit=2", headers=world.staff.auth)).json()
    after = await world.api.get(
        f"/api/accounts?reseller_account_id=r1&limit=2&cursor={limited['next_cursor']}", headers=world.staff.auth
    )
    assert [a["id"] for a in after.json()["items"]] == ["c3", "c2"], "paging keeps the filter"
    both = (await world.api.get("/api/accounts?reseller_account_id=r1&q=customer 3", headers=world.staff.auth)).json()
    assert [a["id"] for a in both["items"]] == ["c3"]
    forged = (await world.api.get("/api/accounts?reseller_account_id=r2", headers=world.amy.auth)).json()
    assert {a["id"] for a in forged["items"]} == {"c1", "c2", "c3", "c4", "c5"}, "a reseller always gets its own"

    page = await world.api.get("/accounts?reseller_account_id=r2", headers=world.staff.session)
    assert page.status_code == 200
    assert "Customer 6" in page.text and "Customer 1<" not in page.text and "Customer 3" not in page.text
    assert '<option value="r2" selected>Other Resale</option>' in page.text
    everyone = await world.api.get("/accounts?status=Active", headers=world.staff.session)
    assert 'href="/accounts?status=Active&amp;reseller_account_id=r1"' in everyone.text, "the column narrows the search"
    theirs = await world.api.get("/accounts?reseller_account_id=r2", headers=world.amy.session)
    assert "Customer 6" not in theirs.text, "Find Member Accounts is staff's: a reseller is sent to its own pages"


async def test_the_openapi_marks_what_partners_may_call(world: World) -> None:
    paths = (await world.api.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/accounts",
        "/api/accounts/{account_id}",
        "/api/accounts/{account_id}/summary",
        "/api/accounts/{account_id}/rollup",
        "/api/accounts/{account_id}/customers.csv",
    ):
        operation = paths[path]["get"]
        assert operation.get("x-partner") is True, path
        assert operation["description"].startswith(PARTNER_SENTENCE), path
    assert "text/csv" in paths["/api/accounts/{account_id}/customers.csv"]["get"]["responses"]["200"]["content"]
    assert "x-partner" not in paths["/api/accounts/{account_id}/suspend"]["post"]
