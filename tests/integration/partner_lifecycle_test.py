"""A reseller's administrator enrolls a customer with its own API token, through the whole pipeline on real
parts (both databases): the invitation, the contact's form, the notices meant for "the creating CSM" going to the
reseller user, the provider's reviewer approving, and the customer in the reseller's roll-up."""

from __future__ import annotations

from typing import Any

from domain.models import Role
from tests.integration.accounts_test import Headers, approved, bearer, json_of
from tests.integration.conftest import Stack, eventually
from tests.integration.lifecycle_test import FORM

PARTNER = "partner@reseller.example"
CONTACT = "pat@newco.example"
CUSTOMER = {
    "service_end_date": "2030-06-30",
    "member_type": "customer",
    "display_users_purchased": True,
    "users_purchased": 250,
    "organization_name": "Newco Ltd",
    "corporate_contact_email": CONTACT,
}


async def reseller(stack: Stack, reviewer: Headers) -> tuple[str, Headers]:
    """An approved reseller account and an API token of its administrator (a `reseller` user)."""
    account_id = await approved(
        stack,
        reviewer,
        "Resell Partners Ltd",
        member_type="reseller",
        display_users_purchased=False,
        users_purchased=None,
    )
    token = await stack.token_for(PARTNER, Role.reseller, account_id)
    return account_id, bearer(token)


async def invited(stack: Stack, partner: Headers, enrollment_id: str) -> None:
    async def done() -> bool:
        timeline = (await json_of(stack, f"/api/enrollments/{enrollment_id}", partner))["timeline"]
        return "invited" in [e["event"] for e in timeline]

    await eventually(done)


async def test_a_reseller_token_takes_a_customer_from_creation_to_its_roll_up(stack: Stack) -> None:
    reviewer = bearer(await stack.token_for("rev@provider.example", Role.reviewer))
    reseller_id, partner = await reseller(stack, reviewer)

    created = await stack.api.post("/api/enrollments", json=CUSTOMER, headers=partner)

    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["reseller_account_id"] == reseller_id  # defaulted to the partner's own
    assert body["created_by"] == PARTNER and body["status"] == "New"
    enrollment_id = body["id"]
    await invited(stack, partner, enrollment_id)
    assert stack.mail_to(CONTACT), "the contact is invited as for any enrollment"

    # Its table holds its own customers' enrollments only; staff see it, and filter by reseller.
    mine = await json_of(stack, "/api/enrollments", partner)
    assert [item["id"] for item in mine["items"]] == [enrollment_id]
    by_reseller = await json_of(stack, f"/api/enrollments?reseller_account_id={reseller_id}", stack.auth)
    assert [item["id"] for item in by_reseller["items"]] == [enrollment_id]
    everyone = await json_of(stack, "/api/enrollments", stack.auth)
    assert len(everyone["items"]) == 2  # the reseller's own enrollment and its customer's

    submitted = await stack.api.post(stack.form_link(CONTACT), data={**FORM, "technical_contact_email": CONTACT})
    assert submitted.status_code == 303, submitted.text
    # The submitted-form notice meant for the creating CSM goes to the reseller user who created it.
    await eventually(lambda: len(stack.mail_to(PARTNER)) == 1)
    assert "Newco Ltd" in (stack.mail_to(PARTNER)[0].text or "")

    # The partner may not review; the provider's reviewer reviews it as any other.
    url = f"/api/enrollments/{enrollment_id}/review"
    refused = await stack.api.post(f"{url}/start", json={"audit_note": "mine"}, headers=partner)
    assert refused.status_code == 403 and "may not review enrollments" in refused.json()["detail"]
    assert (await stack.api.post(f"{url}/start", json={"audit_note": "ok"}, headers=reviewer)).status_code == 200
    done = await stack.api.post(f"{url}/approve", json={"audit_note": "ok"}, headers=reviewer)
    assert done.status_code == 200, done.text
    account_id = done.json()["account_id"]

    async def in_roll_up() -> bool:
        rollup = await stack.api.get(f"/api/accounts/{reseller_id}/rollup", headers=partner)
        return rollup.status_code == 200 and account_id in rollup.text

    await eventually(in_roll_up)
    account = await json_of(stack, f"/api/accounts/{account_id}", partner)
    assert account["reseller_account_id"] == reseller_id and account["status"] == "Active"
    # Reviewed: the partner can no longer change it (the status machine), and still cannot see others'.
    late = await stack.api.delete(f"/api/enrollments/{enrollment_id}", params={"audit_note": "x"}, headers=partner)
    assert late.status_code == 409


async def test_a_bounced_invitation_of_a_partners_customer_tells_the_partner(stack: Stack) -> None:
    reviewer = bearer(await stack.token_for("rev@provider.example", Role.reviewer))
    _, partner = await reseller(stack, reviewer)
    created = await stack.api.post("/api/enrollments", json=CUSTOMER, headers=partner)
    assert created.status_code == 201, created.text
    enrollment_id = created.json()["id"]
    await invited(stack, partner, enrollment_id)
    message_id = stack.mail_to(CONTACT)[0].message_id
    hooks = bearer(await stack.token_for("hooks@provider.example", Role.mail_events))
    report = {"message_id": message_id, "event": "bounced", "recipient": CONTACT, "reason": "550 5.1.1 gone"}

    assert (await stack.api.post("/api/mail-events", json=report, headers=hooks)).status_code == 200

    await eventually(lambda: any("bounced" in m.subject.lower() for m in stack.mail_to(PARTNER)))
    assert not any(
        "bounced" in m.subject.lower() and "Newco" in (m.text or "") for m in stack.mail_to("csm@provider.example")
    )
    # The partner corrects the address, with an audit note, as a CSM would.
    fixed = await stack.api.patch(
        f"/api/enrollments/{enrollment_id}",
        json={"corporate_contact_email": "pat.jones@newco.example", "audit_note": "typo in the address"},
        headers=partner,
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["corporate_contact_email"] == "pat.jones@newco.example"
    await eventually(lambda: bool(stack.mail_to("pat.jones@newco.example")))
