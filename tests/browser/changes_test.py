"""One enrollment's detail tabs, and the CSM's changes to it: Edit (a new contact is asked about), Resend, Delete."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.stack import CSM, Portal
from tests.browser.steps import contact_for, create_account, shot, sign_in, unique


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Enrollment details").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=2)).to_be_visible()


def test_detail_tabs_edit_resend_and_delete(portal: Portal, page: Page) -> None:
    sign_in(page, CSM)
    org, contact = unique("Hooli Labs"), contact_for("hooli")
    enrollment_id = create_account(page, org, contact)
    portal.wait_for_mail(contact, "Complete the member account enrollment")

    page.goto("/enrollments")
    page.get_by_role("link", name=org, exact=True).click()
    expect(page.get_by_role("heading", name=org, level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Account", exact=True).first).to_be_visible()
    temporal = page.get_by_role("link", name="Open this enrollment's run in the Temporal UI")
    expect(temporal).to_have_attribute(
        "href", f"{portal.settings.temporal_ui_url}/namespaces/default/workflows/enrollment-{enrollment_id}"
    )
    expect(page.get_by_role("main")).to_contain_text(contact)
    shot(portal, page, "30-detail-account")
    open_tab(page, "Enrollment Form")
    expect(page.get_by_role("main")).to_contain_text("has not submitted the enrollment form yet")
    shot(portal, page, "31-detail-form")
    open_tab(page, "Emails")
    emails = page.get_by_role("table", name="Every email sent for this enrollment, oldest first")
    expect(emails.get_by_role("row").filter(has_text="invitation")).to_contain_text(contact)
    expect(emails.get_by_role("row").filter(has_text="invitation")).to_contain_text("sent")
    shot(portal, page, "32-detail-emails")
    open_tab(page, "Timeline")
    expect(page.get_by_role("main")).to_contain_text("created by csm@provider.example")
    shot(portal, page, "33-detail-timeline")

    # Edit: an audit note is required; a new contact email asks whether to send the invitation.
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_label("Organization name")).to_have_value(org)
    new_contact = contact_for("hooli")
    page.get_by_label("Corporate contact email").fill(new_contact)
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#audit_note-error")).to_contain_text("Audit note is required")
    expect(page.get_by_label("Corporate contact email")).to_have_value(new_contact)
    shot(portal, page, "34-edit-errors")
    page.get_by_label("Audit note").fill("Pat left; Sam takes over")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Send the invitation to the new contact?")).to_be_visible()
    shot(portal, page, "35-edit-send")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("invitation was sent to the new corporate contact")
    expect(page.get_by_role("main")).to_contain_text(new_contact)
    portal.wait_for_mail(new_contact, "Complete the member account enrollment")
    portal.wait_for_mail(contact, "has a new contact")

    # Resend, after a confirmation.
    page.get_by_role("link", name="Resend", exact=True).click()
    expect(page.get_by_role("heading", name=f"Resend the invitation to {new_contact}?")).to_be_visible()
    shot(portal, page, "36-resend-confirm")
    page.get_by_role("button", name="Resend").click()
    expect(page.get_by_role("status")).to_contain_text("invitation was sent again with a new link")
    portal.wait_for_mail(new_contact, "Complete the member account enrollment", count=2)
    open_tab(page, "Timeline")
    expect(page.get_by_role("main")).to_contain_text("Audit note: Pat left; Sam takes over")

    # Delete, after a confirmation page that asks for an audit note.
    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name=f"Delete the enrollment of {org}?")).to_be_visible()
    page.get_by_role("button", name="Delete enrollment").click()
    expect(page.locator("#audit_note-error")).to_contain_text("Audit note is required")
    shot(portal, page, "37-delete-confirm")
    page.get_by_label("Audit note").fill("Duplicate of another request")
    page.get_by_role("button", name="Delete enrollment").click()
    expect(page).to_have_url(re.compile(r"/enrollments\?done=deleted"))
    expect(page.get_by_role("status")).to_contain_text(f"{org}: the enrollment is deleted")
    row = page.get_by_role("row").filter(has_text=org)
    expect(row.get_by_role("cell").nth(2)).to_have_text("Cancelled")
    expect(row.get_by_role("link", name=f"Delete {org}")).to_have_count(0)

    # A Cancelled enrollment can be neither edited nor deleted: the page says why.
    page.goto(f"/enrollments/{enrollment_id}/edit")
    expect(page.get_by_role("alert")).to_contain_text("Cannot edit this enrollment while it is Cancelled")
