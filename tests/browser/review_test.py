"""The reviewer's side: the queue of submitted forms, the review page, Start review, Approve and Reject."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.stack import CSM, REVIEWER, Portal
from tests.browser.steps import contact_for, create_account, shot, sign_in, submit_form_by_http, unique


def submitted_enrollment(portal: Portal, page: Page, name: str) -> str:
    """A CSM creates an account and its contact completes the form: it waits in the queue."""
    org, contact = unique(name), contact_for(name)
    create_account(page, org, contact)
    submit_form_by_http(portal.form_link(contact), corporate_contact_name="Pat <b>Bold</b>")
    return org


def test_reviewer_approves_from_the_queue(portal: Portal, page: Page, browser: Browser) -> None:
    sign_in(page, CSM)
    org = submitted_enrollment(portal, page, "Initech Systems")
    rejected = submitted_enrollment(portal, page, "Umbrella Holdings")

    reviewer_context: BrowserContext = browser.new_context(base_url=portal.base_url)
    reviewer = reviewer_context.new_page()
    sign_in(reviewer, REVIEWER, start="/review")
    expect(reviewer.get_by_role("link", name="Review", exact=True)).to_have_attribute("aria-current", "page")
    queue = reviewer.get_by_role("table", name="Pending Review, oldest first")
    expect(queue.get_by_role("row").filter(has_text=org)).to_have_count(1)
    shot(portal, reviewer, "20-review-queue")

    queue.get_by_role("link", name=org).click()
    expect(reviewer.get_by_role("heading", name=f"Review {org}")).to_be_visible()
    expect(reviewer.get_by_role("main")).to_contain_text("Pat <b>Bold</b>")  # what the contact typed, as text
    expect(reviewer.get_by_role("main")).to_contain_text("tess@acme.example")
    reviewer.get_by_role("button", name="Start review").click()
    expect(reviewer.get_by_role("status")).to_contain_text(f"{org}: review started")
    expect(reviewer.locator(".title-row .status")).to_have_text("In Review")
    shot(portal, reviewer, "21-review-page")

    reviewer.get_by_label("Audit note", exact=False).first.fill("documents checked")
    reviewer.get_by_role("button", name="Approve").click()
    expect(reviewer).to_have_url(re.compile(r"/review\?done=approved"))
    expect(reviewer.get_by_role("status")).to_contain_text(f"{org}: approved")
    expect(reviewer.get_by_role("row").filter(has_text=org)).to_have_count(0)

    # Rejecting needs a reason; without one the page says so next to the field.
    reviewer.get_by_role("table", name="Pending Review, oldest first").get_by_role("link", name=rejected).click()
    reviewer.get_by_role("button", name="Start review").click()
    reviewer.get_by_role("button", name="Reject").click()
    expect(reviewer.locator("#reason-error")).to_contain_text("Reason is required")
    reviewer.get_by_label("Reason").fill("The organization's address is incomplete.")
    reviewer.get_by_role("button", name="Reject").click()
    expect(reviewer.get_by_role("status")).to_contain_text(f"{rejected}: rejected")
    reviewer_context.close()

    page.goto("/enrollments")
    expect(page.get_by_role("row").filter(has_text=org).get_by_role("cell").nth(2)).to_have_text("Approved")
    expect(page.get_by_role("row").filter(has_text=rejected).get_by_role("cell").nth(2)).to_have_text("Rejected")
    page.get_by_role("link", name="Find Member Accounts").click()
    expect(page.get_by_role("row").filter(has_text=org)).to_contain_text("Active")
    shot(portal, page, "22-find-accounts")
    page.get_by_role("row").filter(has_text=org).get_by_role("link", name=org).click()
    expect(page.get_by_role("heading", name=org)).to_be_visible()
    page.get_by_role("link", name="The enrollment it came from").click()
    page.get_by_role("link", name="Timeline").click()
    expect(page.get_by_role("main")).to_contain_text("Audit note: documents checked")
