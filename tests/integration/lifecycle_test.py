"""An enrollment's whole life on real parts with a short clock: the form, reminders, expiry, CSM actions, review."""

from __future__ import annotations

import asyncio
from typing import Any

from domain.models import Role
from tests.integration.conftest import Stack, eventually

FORM = {
    "corporate_contact_name": "Pat Jones",
    "corporate_contact_phone": "+44 20 7946 0000",
    "technical_contact_name": "Sam Lee",
    "technical_contact_email": "sam@acme.example",
    "technical_contact_phone": "+44 20 7946 0001",
    "billing_contact_name": "Alex Kim",
    "billing_contact_email": "billing@acme.example",
    "address_line1": "1 High Street",
    "city": "London",
    "postal_code": "EC1A 1AA",
    "country": "United Kingdom",
    "accept_terms": "yes",
}


async def created(stack: Stack, **changes: Any) -> str:
    response = await stack.create(**changes)
    assert response.status_code == 201, response.text
    enrollment_id: str = response.json()["id"]
    address = changes.get("corporate_contact_email", "pat@acme.example")
    await eventually(lambda: len(stack.mail_to(address)) == 1)

    async def invited() -> bool:
        return "invited" in [e["event"] for e in (await detail(stack, enrollment_id))["timeline"]]

    await eventually(invited)
    return enrollment_id


async def detail(stack: Stack, enrollment_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"/api/enrollments/{enrollment_id}", headers=stack.auth)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def submitted(stack: Stack, enrollment_id: str) -> None:
    link = stack.form_link("pat@acme.example")
    response = await stack.api.post(link, data=FORM)
    assert response.status_code == 303, response.text
    assert (await detail(stack, enrollment_id))["status"] == "Pending Review"


async def test_unanswered_enrollment_gets_two_reminders_then_expires(short_stack: Stack) -> None:
    stack = short_stack
    enrollment_id = await created(stack)
    link = stack.form_link("pat@acme.example")

    async def expired() -> bool:
        return bool((await detail(stack, enrollment_id))["status"] == "Expired")

    await eventually(expired, timeout=30)
    subjects = [m.subject for m in reversed(stack.mail_to("pat@acme.example"))]
    assert len(subjects) == 3 and all("Reminder" in s for s in subjects[1:])
    reminder_text = stack.mail_to("pat@acme.example")[0].text or ""
    assert "expires on" in reminder_text
    await eventually(lambda: len(stack.mail_to("csm@provider.example")) == 1)  # the CSM is told it expired
    body = await detail(stack, enrollment_id)
    assert body["reminders_sent"] == 2
    assert [e["event"] for e in body["timeline"]] == ["created", "invited", "reminded", "reminded", "expired"]
    dead = await stack.api.get(link)
    assert dead.status_code == 410
    assert "Ask your representative" in dead.text and "Acme" not in dead.text
    assert (await stack.query(enrollment_id)).status.value == "Expired"


async def test_submitted_form_goes_to_review_and_nothing_more_is_sent(short_stack: Stack) -> None:
    stack = short_stack
    enrollment_id = await created(stack)
    link = stack.form_link("pat@acme.example")
    for _ in range(2):  # mail scanners open links: opening never consumes one
        page = await stack.api.get(link)
        assert page.status_code == 200 and "Acme Widgets Ltd" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
    await submitted(stack, enrollment_id)
    again = await stack.api.post(link, data=FORM)
    assert again.status_code == 410
    await asyncio.sleep(14)  # past both reminders and the deadline of the short clock
    body = await detail(stack, enrollment_id)
    assert body["status"] == "Pending Review"
    assert body["form"]["technical_contact_email"] == "sam@acme.example"
    to_contact = [m.subject for m in stack.mail_to("pat@acme.example")]
    assert len(to_contact) == 2 and "received" in to_contact[0]  # the invitation and the confirmation
    assert len(stack.mail_to("csm@provider.example")) == 1  # the CSM is told the form is in
    assert [e["event"] for e in body["timeline"]] == ["created", "invited", "opened", "submitted"]


async def test_form_errors_are_shown_by_field_with_the_input_kept(stack: Stack) -> None:
    enrollment_id = await created(stack)
    link = stack.form_link("pat@acme.example")
    bad = {**FORM, "technical_contact_email": "sam@gmail.com", "city": "", "accept_terms": ""}
    response = await stack.api.post(link, data=bad)
    assert response.status_code == 422
    assert "free-mail" in response.text and 'value="sam@gmail.com"' in response.text
    assert 'id="city-error"' in response.text and 'id="accept_terms-error"' in response.text
    assert (await detail(stack, enrollment_id))["status"] == "New"
    assert (await stack.api.get("/enroll/not-a-real-token")).status_code == 404


async def test_resend_kills_the_old_link_and_restarts_the_deadline(stack: Stack) -> None:
    enrollment_id = await created(stack)
    old_link = stack.form_link("pat@acme.example")
    before = await detail(stack, enrollment_id)
    response = await stack.api.post(f"/api/enrollments/{enrollment_id}/resend", headers=stack.auth)
    assert response.status_code == 200, response.text
    await eventually(lambda: len(stack.mail_to("pat@acme.example")) == 2)
    new_link = stack.form_link("pat@acme.example")
    assert new_link != old_link
    assert (await stack.api.get(old_link)).status_code == 410
    assert (await stack.api.get(new_link)).status_code == 200
    after = await detail(stack, enrollment_id)
    assert after["expires_at"] > before["expires_at"]
    # Opening the new link above may add `opened` meanwhile: the contact's doing, not the resend's.
    events = [e["event"] for e in after["timeline"] if e["event"] != "opened"]
    assert events[events.index("resent") :] in (["resent"], ["resent", "invited"])


async def test_contact_change_rotates_the_link_invites_the_new_contact_and_tells_the_old(stack: Stack) -> None:
    enrollment_id = await created(stack)
    old_link = stack.form_link("pat@acme.example")
    missing_note = await stack.api.patch(
        f"/api/enrollments/{enrollment_id}", json={"corporate_contact_email": "robin@acme.example"}, headers=stack.auth
    )
    assert missing_note.status_code == 422 and missing_note.json()["errors"][0]["field"] == "audit_note"
    response = await stack.api.patch(
        f"/api/enrollments/{enrollment_id}",
        json={"corporate_contact_email": "robin@acme.example", "audit_note": "Pat left the company"},
        headers=stack.auth,
    )
    assert response.status_code == 200, response.text
    await eventually(lambda: len(stack.mail_to("robin@acme.example")) == 1)
    await eventually(lambda: len(stack.mail_to("pat@acme.example")) == 2)
    assert "new contact" in stack.mail_to("pat@acme.example")[0].subject
    assert (await stack.api.get(old_link)).status_code == 410
    assert (await stack.api.get(stack.form_link("robin@acme.example"))).status_code == 200
    timeline = (await detail(stack, enrollment_id))["timeline"]
    assert {"event": "edited", "note": "Pat left the company"}.items() <= next(
        e for e in timeline if e["event"] == "edited"
    ).items()


async def test_cancel_makes_it_cancelled_and_kills_the_link(stack: Stack) -> None:
    enrollment_id = await created(stack)
    link = stack.form_link("pat@acme.example")
    no_note = await stack.api.delete(f"/api/enrollments/{enrollment_id}", headers=stack.auth)
    assert no_note.status_code == 422
    response = await stack.api.delete(
        f"/api/enrollments/{enrollment_id}", params={"audit_note": "created by mistake"}, headers=stack.auth
    )
    assert response.status_code == 200 and response.json()["status"] == "Cancelled"
    assert (await stack.api.get(link)).status_code == 410
    # The organization is free again.
    assert (await stack.create()).status_code == 201


async def test_review_locks_edits_and_approval_yields_an_active_account(stack: Stack) -> None:
    enrollment_id = await created(stack)
    await submitted(stack, enrollment_id)
    reviewer = {"Authorization": f"Bearer {await stack.token_for('rev@provider.example', Role.reviewer)}"}
    url = f"/api/enrollments/{enrollment_id}"
    csm_may_not = await stack.api.post(f"{url}/review/start", json={"audit_note": "x"}, headers=stack.auth)
    assert csm_may_not.status_code == 403
    started = await stack.api.post(f"{url}/review/start", json={"audit_note": "checking"}, headers=reviewer)
    assert started.status_code == 200 and started.json()["status"] == "In Review"
    for refused in [
        await stack.api.patch(url, json={"organization_name": "Acme Ltd", "audit_note": "x"}, headers=stack.auth),
        await stack.api.delete(url, params={"audit_note": "x"}, headers=stack.auth),
        await stack.api.post(f"{url}/resend", headers=stack.auth),
    ]:
        assert refused.status_code == 409
        assert "review has begun" in refused.json()["detail"]
    approved = await stack.api.post(f"{url}/review/approve", json={"audit_note": "all good"}, headers=reviewer)
    assert approved.status_code == 200, approved.text
    account_id = approved.json()["account_id"]
    assert approved.json()["status"] == "Approved" and account_id

    async def account_active() -> bool:
        page = (await stack.api.get("/api/accounts", headers=stack.auth)).json()
        return [(a["id"], a["status"]) for a in page["items"]] == [(account_id, "Active")]

    await eventually(account_active)
    account = (await stack.api.get(f"/api/accounts/{account_id}", headers=stack.auth)).json()
    assert account["timeline"][0]["event"] == "activated"
    assert account["timeline"][0]["actor"] == "rev@provider.example"  # the approver, not the creating CSM
    await eventually(lambda: len(stack.mail_to("sam@acme.example")) == 1)  # the welcome reaches the tech contact
    assert "Welcome" in stack.mail_to("sam@acme.example")[0].subject
    body = await detail(stack, enrollment_id)
    assert [e["event"] for e in body["timeline"]][-2:] == ["review started", "approved"]
    again = await stack.api.post(f"{url}/review/approve", json={"audit_note": "twice"}, headers=reviewer)
    assert again.status_code == 409


async def test_rejection_needs_a_reason_and_tells_the_contact(stack: Stack) -> None:
    enrollment_id = await created(stack)
    await submitted(stack, enrollment_id)
    reviewer = {"Authorization": f"Bearer {await stack.token_for('rev@provider.example', Role.reviewer)}"}
    url = f"/api/enrollments/{enrollment_id}"
    await stack.api.post(f"{url}/review/start", json={"audit_note": "checking"}, headers=reviewer)
    no_reason = await stack.api.post(f"{url}/review/reject", json={"audit_note": "no"}, headers=reviewer)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    rejected = await stack.api.post(
        f"{url}/review/reject",
        json={"audit_note": "checked register", "reason": "Not a registered company"},
        headers=reviewer,
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "Rejected"
    await eventually(lambda: any("not approved" in m.subject for m in stack.mail_to("pat@acme.example")))
    letter = next(m for m in stack.mail_to("pat@acme.example") if "not approved" in m.subject)
    assert "Not a registered company" in (letter.text or "")
