"""Resellers (partners) enroll and manage their own customers, and nothing else: the refusals and the scoping of
issue 18 on the security stack (SQLite, Temporal, worker), with real users' tokens and portal sessions."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import httpx

from domain.access import NOT_ACTIVE, ONLY_CUSTOMERS, OWN_RESELLER
from domain.models import AccountStatus, MemberType, RecordAccount, Role
from domain.settings import Settings
from store import users
from store.accounts import record_account
from tests.integration.conftest import VALID, Stack
from tests.security.administrators_test import SOLD_ACCOUNT, seed_accounts
from tests.security.conftest import (
    PASSWORD,
    RESELLER_ACCOUNT,
    Person,
    person,
    signed_in_session,
    turn_on_second_factor,
)
from tests.support import account_view

OTHER_RESELLER = "acct-other-reseller"
SUSPENDED_RESELLER = "acct-suspended-reseller"
CUSTOMER = {**VALID, "organization_name": "Partner Customer Ltd", "corporate_contact_email": "pat@partnerco.example"}


async def seed(settings: Settings) -> None:
    await seed_accounts(settings)
    for account_id, name, status in [
        (OTHER_RESELLER, "Other Reseller Ltd", AccountStatus.active),
        (SUSPENDED_RESELLER, "Paused Reseller Ltd", AccountStatus.suspended),
    ]:
        view = account_view(
            id=account_id,
            enrollment_id=f"enr-{account_id}",
            status=status,
            organization_name=name,
            member_type=MemberType.reseller,
            display_users_purchased=False,
            users_purchased=None,
            corporate_contact_email=f"pat@{account_id}.example",
            created_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
        await record_account(settings.effective_database_url, RecordAccount(view=view, event_key=f"{account_id}/x"))


async def partner_of(stack: Stack, account_id: str, email: str) -> Person:
    """A reseller user of `account_id`, with a token and a full portal session."""
    url = stack.settings.effective_database_url
    user = await users.add_user(url, email=email, role=Role.reseller, password=PASSWORD, account_id=account_id)
    token = await users.create_token(url, email)
    key = await turn_on_second_factor(stack.settings, user.id)
    cookie, csrf = await signed_in_session(stack.settings, user.id)
    return Person(Role.reseller, email, user.id, token, cookie, csrf, key)


async def create(stack: Stack, headers: dict[str, str], **changes: Any) -> Any:
    return await stack.api.post("/api/enrollments", json={**CUSTOMER, **changes}, headers=headers)


async def staff_created(stack: Stack, org: str, reseller: str | None) -> str:
    body = {**CUSTOMER, "organization_name": org, "corporate_contact_email": f"pat@{org.split()[0].lower()}.example"}
    response = await stack.api.post(
        "/api/enrollments", json={**body, "reseller_account_id": reseller}, headers=stack.auth
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_reseller_creates_customers_of_its_own_and_is_refused_the_rest(stack: Stack) -> None:
    await seed(stack.settings)
    partner = await person(stack.settings, Role.reseller)

    made = await create(stack, partner.auth)
    assert made.status_code == 201, made.text
    assert made.json()["reseller_account_id"] == RESELLER_ACCOUNT
    assert made.json()["created_by"] == partner.email
    named = await create(stack, partner.auth, organization_name="Named Own Ltd", reseller_account_id=RESELLER_ACCOUNT)
    assert named.status_code == 201, named.text

    other_type = await create(
        stack, partner.auth, member_type="manufacturer", display_users_purchased=False, users_purchased=None
    )
    assert (other_type.status_code, other_type.json()["detail"]) == (403, ONLY_CUSTOMERS)
    other_reseller = await create(stack, partner.auth, organization_name="Else Ltd", reseller_account_id=OTHER_RESELLER)
    assert other_reseller.status_code == 403
    assert other_reseller.json()["detail"] == OWN_RESELLER.format(own=RESELLER_ACCOUNT)
    unknown = await create(stack, partner.auth, organization_name="Extra Ltd", discount=50)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "discount"

    paused = await partner_of(stack, SUSPENDED_RESELLER, "paused@reseller.example")
    refused = await create(stack, paused.auth, organization_name="Paused Customer Ltd")
    assert (refused.status_code, refused.json()["detail"]) == (403, NOT_ACTIVE.format(status="Suspended"))

    for role in (Role.customer, Role.manufacturer):
        member = await person(stack.settings, role)
        answer = await create(stack, member.auth, organization_name="Nope Ltd")
        assert answer.status_code == 403
        assert (
            answer.json()["detail"] == f"Your role ({role.value}) may not create or change member account enrollments."
        )
    listed = await stack.api.get("/api/enrollments", headers=stack.auth)
    assert {i["organization_name"] for i in listed.json()["items"]} == {"Partner Customer Ltd", "Named Own Ltd"}


async def test_another_resellers_enrollment_is_a_404_that_tells_nothing(stack: Stack) -> None:
    await seed(stack.settings)
    partner = await person(stack.settings, Role.reseller)
    own = (await create(stack, partner.auth)).json()["id"]
    theirs = await staff_created(stack, "Theirs Ltd", OTHER_RESELLER)
    direct = await staff_created(stack, "Direct Ltd", None)
    by_staff = await staff_created(stack, "Staff Made Ltd", RESELLER_ACCOUNT)  # its customer, whoever created it

    def unknown_like(response: httpx.Response, enrollment_id: str) -> bool:
        return response.status_code == 404 and response.json() == {
            "detail": f"No enrollment has the id {enrollment_id}."
        }

    note = {"audit_note": "probing"}
    for enrollment_id in (theirs, direct, "no-such-enrollment"):
        path = f"/api/enrollments/{enrollment_id}"
        assert unknown_like(await stack.api.get(path, headers=partner.auth), enrollment_id)
        patch = {"organization_name": "Mine Now Ltd", **note}
        assert unknown_like(await stack.api.patch(path, json=patch, headers=partner.auth), enrollment_id)
        assert unknown_like(await stack.api.post(f"{path}/resend", json=note, headers=partner.auth), enrollment_id)
        assert unknown_like(await stack.api.delete(path, params=note, headers=partner.auth), enrollment_id)
        page = await stack.api.get(f"/enrollments/{enrollment_id}", headers=partner.session)
        assert page.status_code == 404 and "Theirs" not in page.text and "Direct" not in page.text

    listed = await stack.api.get("/api/enrollments", headers=partner.auth)
    assert {i["id"] for i in listed.json()["items"]} == {own, by_staff}
    probe = await stack.api.get(f"/api/enrollments?reseller_account_id={OTHER_RESELLER}", headers=partner.auth)
    assert probe.json()["items"] == []
    # Staff filter by reseller.
    staff = await stack.api.get(f"/api/enrollments?reseller_account_id={OTHER_RESELLER}", headers=stack.auth)
    assert [i["id"] for i in staff.json()["items"]] == [theirs]
    # A taken name does not name another's enrollment to a partner.
    taken = await create(stack, partner.auth, organization_name="Theirs Ltd")
    assert taken.status_code == 409 and theirs not in taken.text


async def test_a_reseller_edits_resends_and_deletes_its_own_before_review_and_cannot_forge(stack: Stack) -> None:
    await seed(stack.settings)
    partner = await person(stack.settings, Role.reseller)
    own = (await create(stack, partner.auth)).json()["id"]
    path = f"/api/enrollments/{own}"

    forgeries: list[tuple[dict[str, Any], str]] = [
        ({"member_type": "reseller", "display_users_purchased": False, "users_purchased": None}, ONLY_CUSTOMERS),
        ({"reseller_account_id": OTHER_RESELLER}, OWN_RESELLER.format(own=RESELLER_ACCOUNT)),
        ({"reseller_account_id": None}, OWN_RESELLER.format(own=RESELLER_ACCOUNT)),
    ]
    for forged, rule in forgeries:
        answer = await stack.api.patch(path, json={**forged, "audit_note": "forging"}, headers=partner.auth)
        assert (answer.status_code, answer.json().get("detail")) == (403, rule), answer.text
    no_note = await stack.api.patch(path, json={"users_purchased": 300}, headers=partner.auth)
    assert no_note.status_code == 422
    edited = await stack.api.patch(
        path, json={"users_purchased": 300, "audit_note": "bigger order"}, headers=partner.auth
    )
    assert edited.status_code == 200 and edited.json()["users_purchased"] == 300
    assert any(e["note"] == "bigger order" for e in edited.json()["timeline"])
    resent = await stack.api.post(f"{path}/resend", json={"audit_note": "asked again"}, headers=partner.auth)
    assert resent.status_code == 200, resent.text
    deleted = await stack.api.delete(path, params={"audit_note": "customer withdrew"}, headers=partner.auth)
    assert deleted.status_code == 200 and deleted.json()["status"] == "Cancelled"
    review = await stack.api.post(f"{path}/review/start", json={"audit_note": "x"}, headers=partner.auth)
    assert review.status_code == 403


async def test_the_portal_create_page_fixes_the_member_type_and_the_reseller(stack: Stack) -> None:
    await seed(stack.settings)
    partner = await person(stack.settings, Role.reseller)

    form = await stack.api.get("/accounts/new", headers=partner.session)
    assert form.status_code == 200
    assert 'name="member_type"' not in form.text and 'name="reseller_account_id"' not in form.text
    assert "Reseller Ltd" in form.text and "Customer (resellers enroll customers only)" in form.text
    fields = {
        "csrf_token": partner.csrf,
        "organization_name": "Portal Customer Ltd",
        "display_users_purchased": "yes",
        "users_purchased": "40",
        "service_end_date": "2030-01-31",
        "corporate_contact_email": "pat@portalco.example",
        "idempotency_key": "partner-portal-1",
    }
    made = await stack.api.post("/accounts/new", data=fields, headers=partner.session)
    assert made.status_code == 303, made.text
    assert made.headers["location"].endswith("/next-steps")
    steps = await stack.api.get(made.headers["location"], headers=partner.session)
    assert steps.status_code == 200 and "Portal Customer Ltd" in steps.text

    forged = await stack.api.post(
        "/accounts/new",
        data={**fields, "organization_name": "Forged Ltd", "member_type": "reseller", "idempotency_key": "forged-1"},
        headers=partner.session,
    )
    assert forged.status_code == 403 and html.escape(ONLY_CUSTOMERS) in forged.text

    await staff_created(stack, "Theirs Ltd", OTHER_RESELLER)
    table = await stack.api.get("/enrollments", headers=partner.session)
    assert table.status_code == 200
    assert "Portal Customer Ltd" in table.text and "Theirs Ltd" not in table.text and "Forged Ltd" not in table.text
    assert 'id="reseller_account_id"' not in table.text  # no reseller filter for a partner

    staff = await person(stack.settings, Role.csm, "csm.two@provider.example")
    everything = await stack.api.get("/enrollments", headers=staff.session)
    assert "via Reseller Ltd" in everything.text and "via Other Reseller Ltd" in everything.text
    filtered = await stack.api.get(f"/enrollments?reseller_account_id={OTHER_RESELLER}", headers=staff.session)
    assert "Theirs Ltd" in filtered.text and "Portal Customer Ltd" not in filtered.text

    paused = await partner_of(stack, SUSPENDED_RESELLER, "paused@reseller.example")
    refused = await stack.api.get("/accounts/new", headers=paused.session)
    assert refused.status_code == 403 and "Your reseller account is Suspended" in refused.text
    customer = await person(stack.settings, Role.customer)
    assert (await stack.api.get("/accounts/new", headers=customer.session)).status_code in (200, 303)
    assert "Create New Member Accounts" not in (await stack.api.get("/accounts/new", headers=customer.session)).text


async def test_a_reseller_sees_its_sold_customers_account_but_not_as_an_enrollment_of_another(stack: Stack) -> None:
    """The account SOLD_ACCOUNT names the reseller; its enrollment (not stored here) is not invented."""
    await seed(stack.settings)
    partner = await person(stack.settings, Role.reseller)
    assert (await stack.api.get(f"/api/accounts/{SOLD_ACCOUNT}", headers=partner.auth)).status_code == 200
    assert (await stack.api.get(f"/api/enrollments/enr-{SOLD_ACCOUNT}", headers=partner.auth)).status_code == 404
