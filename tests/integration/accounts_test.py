"""Member accounts on real parts: approved enrollments become member accounts, with their summary, top-ups, service
end warnings, suspend / delete, and who may see which account (resellers, customers, staff)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from domain.models import Role
from tests.integration.conftest import Stack, eventually
from tests.integration.lifecycle_test import FORM

Headers = dict[str, str]


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


def in_days(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


async def json_of(stack: Stack, path: str, headers: Headers, status: int = 200) -> Any:
    response = await stack.api.get(path, headers=headers)
    assert response.status_code == status, (path, response.status_code, response.text)
    return response.json()


async def approved(stack: Stack, reviewer: Headers, org: str, **changes: Any) -> str:
    """Create the enrollment, submit its form from the emailed link, review and approve it: the account id."""
    contact = f"pat@{org.split()[0].lower()}.example"
    response = await stack.create(organization_name=org, corporate_contact_email=contact, **changes)
    assert response.status_code == 201, response.text
    enrollment_id = response.json()["id"]

    async def invited() -> bool:  # the email is out and the run has recorded it: the link is live
        timeline = (await json_of(stack, f"/api/enrollments/{enrollment_id}", stack.auth))["timeline"]
        return "invited" in [e["event"] for e in timeline]

    await eventually(invited)
    submitted = await stack.api.post(stack.form_link(contact), data=FORM)
    assert submitted.status_code == 303, submitted.text
    url = f"/api/enrollments/{enrollment_id}/review"
    started = await stack.api.post(f"{url}/start", json={"audit_note": "checking"}, headers=reviewer)
    assert started.status_code == 200, started.text
    done = await stack.api.post(f"{url}/approve", json={"audit_note": "all good"}, headers=reviewer)
    assert done.status_code == 200, done.text
    account_id: str = done.json()["account_id"]

    async def active() -> bool:
        response = await stack.api.get(f"/api/accounts/{account_id}", headers=stack.auth)
        return response.status_code == 200 and response.json()["status"] == "Active"

    await eventually(active)
    return account_id


async def staff(stack: Stack) -> tuple[Headers, Headers]:
    """(reviewer, admin) headers; the stack's own token is a CSM's."""
    reviewer = bearer(await stack.token_for("rev@provider.example", Role.reviewer))
    admin = bearer(await stack.token_for("admin@provider.example", Role.admin))
    return reviewer, admin


async def report(stack: Stack, admin: Headers, account_id: str, users: int) -> None:
    response = await stack.api.post(f"/api/accounts/{account_id}/usage", json={"users_existing": users}, headers=admin)
    assert response.status_code == 200, response.text


async def test_the_summary_follows_display_users_purchased(stack: Stack) -> None:
    reviewer, admin = await staff(stack)
    shown = await approved(stack, reviewer, "Acme Widgets Ltd")
    summary = await json_of(stack, f"/api/accounts/{shown}/summary", stack.auth)
    assert (summary["users_purchased"], summary["users_existing"], summary["users_reported_at"]) == (1000, None, None)

    await report(stack, admin, shown, 40)
    summary = await json_of(stack, f"/api/accounts/{shown}/summary", stack.auth)
    assert (summary["users_purchased"], summary["users_existing"], summary["users_available"]) == (1000, 40, 960)
    assert summary["users_over"] == 0 and summary["users_reported_at"] is not None

    await report(stack, admin, shown, 1200)
    summary = await json_of(stack, f"/api/accounts/{shown}/summary", stack.auth)
    assert (summary["users_existing"], summary["users_available"], summary["users_over"]) == (1200, 0, 200)

    existing_only = await approved(
        stack, reviewer, "Globex Pay As You Go", display_users_purchased=False, users_purchased=None
    )
    await report(stack, admin, existing_only, 40)
    summary = await json_of(stack, f"/api/accounts/{existing_only}/summary", stack.auth)
    assert summary["display_users_purchased"] is False
    assert (summary["users_purchased"], summary["users_available"], summary["users_existing"]) == (None, None, 40)
    assert summary["users_over"] is None
    csm_may_not_meter = await stack.api.post(
        f"/api/accounts/{shown}/usage", json={"users_existing": 1}, headers=stack.auth
    )
    assert csm_may_not_meter.status_code == 403


async def test_users_purchased_is_cumulative_audited_and_never_below_zero(stack: Stack) -> None:
    reviewer, _ = await staff(stack)
    account_id = await approved(stack, reviewer, "Acme Widgets Ltd")
    url = f"/api/accounts/{account_id}"
    for add, note, total in [(100, "March order", 1100), (100, "June order", 1200)]:
        response = await stack.api.post(
            f"{url}/users-purchased", json={"add": add, "audit_note": note}, headers=stack.auth
        )
        assert response.status_code == 200, response.text
        assert response.json()["users_purchased"] == total
    assert (await json_of(stack, f"{url}/summary", stack.auth))["users_purchased"] == 1200

    below = await stack.api.post(
        f"{url}/users-purchased", json={"add": -1201, "audit_note": "oops"}, headers=stack.auth
    )
    assert below.status_code == 409 and "below zero" in below.json()["detail"]
    no_note = await stack.api.post(f"{url}/users-purchased", json={"add": 5}, headers=stack.auth)
    assert no_note.status_code == 422 and no_note.json()["errors"][0]["field"] == "audit_note"
    reviewer_may_not = await stack.api.post(
        f"{url}/users-purchased", json={"add": 5, "audit_note": "x"}, headers=reviewer
    )
    assert reviewer_may_not.status_code == 403

    off = await stack.api.patch(
        url, json={"display_users_purchased": False, "audit_note": "pay as you go"}, headers=stack.auth
    )
    assert off.status_code == 200 and off.json()["display_users_purchased"] is False
    assert (await json_of(stack, f"{url}/summary", stack.auth))["users_purchased"] is None
    refused = await stack.api.post(f"{url}/users-purchased", json={"add": 5, "audit_note": "x"}, headers=stack.auth)
    assert refused.status_code == 409

    timeline = (await json_of(stack, url, stack.auth))["timeline"]
    changes = [(e["event"], e["note"]) for e in timeline if e["event"] in ("users purchased changed", "edited")]
    assert changes == [
        ("users purchased changed", "1,000 + 100 = 1,100; March order"),
        ("users purchased changed", "1,100 + 100 = 1,200; June order"),
        ("edited", "display users purchased off; pay as you go"),
    ]


async def test_an_account_ending_tomorrow_warns_its_contacts_and_csm_at_once(stack: Stack) -> None:
    reviewer, _ = await staff(stack)
    tomorrow = in_days(1)
    account_id = await approved(stack, reviewer, "Initech Systems", service_end_date=tomorrow)

    def warned(address: str) -> bool:
        return [m.subject for m in stack.mail_to(address) if "ends on" in m.subject] == [
            f"Service for Initech Systems ends on {tomorrow}"
        ]

    for address in ("pat@initech.example", "sam@acme.example", "csm@provider.example"):
        await eventually(partial(warned, address))
    summary = await json_of(stack, f"/api/accounts/{account_id}/summary", stack.auth)
    assert summary["banner"].startswith("Service ends on")
    events = [e["event"] for e in (await json_of(stack, f"/api/accounts/{account_id}", stack.auth))["timeline"]]
    assert events.count("service end warning") == 1


async def test_only_a_suspended_account_can_be_deleted_and_then_its_name_is_free(stack: Stack) -> None:
    reviewer, _ = await staff(stack)
    account_id = await approved(stack, reviewer, "Acme Widgets Ltd")
    url = f"/api/accounts/{account_id}"
    active = await stack.api.delete(url, params={"audit_note": "closing"}, headers=reviewer)
    assert active.status_code == 409 and "suspend it first" in active.json()["detail"]
    csm_may_not = await stack.api.post(f"{url}/suspend", json={"audit_note": "x"}, headers=stack.auth)
    assert csm_may_not.status_code == 403
    assert (await stack.api.post(f"{url}/suspend", json={}, headers=reviewer)).status_code == 422

    for step, status in [("suspend", "Suspended"), ("reactivate", "Active"), ("suspend", "Suspended")]:
        response = await stack.api.post(f"{url}/{step}", json={"audit_note": f"{step} asked"}, headers=reviewer)
        assert response.status_code == 200 and response.json()["status"] == status, response.text
    deleted = await stack.api.delete(url, params={"audit_note": "contract ended"}, headers=reviewer)
    assert deleted.status_code == 200 and deleted.json()["status"] == "Deleted"
    again = await stack.api.post(f"{url}/reactivate", json={"audit_note": "x"}, headers=reviewer)
    assert again.status_code == 409

    assert (await stack.create(corporate_contact_email="robin@acme.example")).status_code == 201
    timeline = (await json_of(stack, url, stack.auth))["timeline"]
    # The administrators' invitations, run by workflows of their own, add their steps to the same timeline.
    events = [e["event"] for e in timeline if not e["event"].startswith("administrator")]
    assert events[-4:] == ["suspended", "reactivated", "suspended", "deleted"]


async def test_reseller_account_id_must_name_an_active_reseller(stack: Stack) -> None:
    reviewer, _ = await staff(stack)
    customer = await approved(stack, reviewer, "Acme Widgets Ltd")
    for reseller_id in (customer, "0123456789abcdef"):
        response = await stack.create(organization_name="Hooli Europe", reseller_account_id=reseller_id)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["reseller_account_id"]


async def test_resellers_and_customers_see_only_their_own(stack: Stack) -> None:
    reviewer, _ = await staff(stack)
    reseller = await approved(
        stack, reviewer, "Vertex Resale", member_type="reseller", display_users_purchased=False, users_purchased=None
    )
    sold = await approved(
        stack, reviewer, "Acme Widgets Ltd", reseller_account_id=reseller, service_end_date=in_days(10)
    )
    direct = await approved(stack, reviewer, "Globex Corporation")
    pending = await stack.create(
        organization_name="Umbrella Holdings",
        corporate_contact_email="pat@umbrella.example",
        reseller_account_id=reseller,
    )
    assert pending.status_code == 201, pending.text

    as_reseller = bearer(await stack.token_for("sales@vertex.example", Role.reseller, account_id=reseller))
    as_customer = bearer(await stack.token_for("it@acme.example", Role.customer, account_id=sold))

    listed = await json_of(stack, "/api/accounts", as_reseller)
    assert [a["id"] for a in listed["items"]] == [sold]
    for path in (f"/api/accounts/{sold}", f"/api/accounts/{sold}/summary", f"/api/accounts/{reseller}/summary"):
        await json_of(stack, path, as_reseller)
    for path in (f"/api/accounts/{direct}", f"/api/accounts/{direct}/summary", f"/api/accounts/{sold}/rollup"):
        await json_of(stack, path, as_reseller, status=404)
    rollup = await json_of(stack, f"/api/accounts/{reseller}/rollup", as_reseller)
    assert {k: rollup[k] for k in ("customers_enrolled", "pending", "expiring_within_30_days")} == {
        "customers_enrolled": 1,
        "pending": 1,
        "expiring_within_30_days": 1,
    }
    assert [(c["account_id"], c["organization_name"]) for c in rollup["customers"]] == [(sold, "Acme Widgets Ltd")]
    assert rollup["next_cursor"] is None
    suspend = await stack.api.post(f"/api/accounts/{sold}/suspend", json={"audit_note": "x"}, headers=as_reseller)
    assert suspend.status_code == 403

    listed = await json_of(stack, "/api/accounts", as_customer)
    assert [a["id"] for a in listed["items"]] == [sold]
    await json_of(stack, f"/api/accounts/{sold}", as_customer)
    assert (await json_of(stack, f"/api/accounts/{sold}/summary", as_customer))["users_purchased"] == 1000
    for path in (f"/api/accounts/{direct}", f"/api/accounts/{reseller}", f"/api/accounts/{reseller}/rollup"):
        await json_of(stack, path, as_customer, status=404)

    everyone = await json_of(stack, "/api/accounts", stack.auth)
    assert {a["id"] for a in everyone["items"]} == {reseller, sold, direct}
    assert (await json_of(stack, f"/api/accounts/{reseller}/rollup", stack.auth))["customers_enrolled"] == 1
    await json_of(stack, f"/api/accounts/{direct}/rollup", stack.auth, status=404)  # not a reseller
    by_reseller = await json_of(stack, f"/api/accounts?reseller_account_id={reseller}", stack.auth)
    assert [a["id"] for a in by_reseller["items"]] == [sold]
