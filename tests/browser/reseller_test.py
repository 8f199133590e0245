"""A reseller's administrator (a partner) in Chromium: signs in with the second factor, creates a customer on
Create New Member Accounts (Member Type fixed to Customer, its own reseller account shown, not editable), reads
Next Steps and sees the enrollment New in its own Member Account Enrollments table; the contact completes the
form from the invitation; the provider's reviewer approves it in the portal; the customer appears in the
partner's roll-up. Another reseller's administrator gets the same 404 as for an enrollment that does not exist."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from domain.models import Role
from tests.browser.stack import PASSWORD, REVIEWER, Portal
from tests.browser.steps import (
    END_DATE,
    Api,
    complete_form,
    contact_for,
    pass_second_factor,
    shot,
    sign_in,
    unique,
)


class Resellers:
    """Approved reseller accounts made through the HTTP API as staff (not what these tests are about), each with
    an administrator: a `reseller` user bound to it."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.api = Api(portal)

    def approved(self, name: str) -> tuple[str, str, str]:
        """(organization, account id, administrator's email) of a new, Active reseller account."""
        org, account_id = self.api.approved(
            name, member_type="reseller", display_users_purchased=False, users_purchased=None
        )
        email = f"partner-{account_id}@{name.split()[0].lower()}.example"
        self.portal.add_user(email, Role.reseller, account_id=account_id)
        return org, account_id, email


@pytest.fixture(scope="module")
def resellers(portal: Portal) -> Iterator[Resellers]:
    made = Resellers(portal)
    yield made
    made.api.client.close()


def sign_in_home(page: Page, email: str) -> None:
    """A reseller's administrator signs in from `/`: the password, then the second factor (set up at the first
    sign-in)."""
    page.goto("/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    pass_second_factor(page, email)


def new_page(browser: Browser, portal: Portal) -> tuple[BrowserContext, Page]:
    context = browser.new_context(base_url=portal.base_url, viewport={"width": 1280, "height": 860})
    return context, context.new_page()


def test_a_reseller_creates_a_customer_that_is_approved_into_its_roll_up(
    portal: Portal, page: Page, browser: Browser, resellers: Resellers
) -> None:
    reseller, reseller_id, partner = resellers.approved("Vertex Resale")
    other_reseller, _, other_partner = resellers.approved("Summit Channel")

    # Signed in with the second factor, the partner lands on its roll-up: no customers yet.
    sign_in_home(page, partner)
    expect(page).to_have_url(re.compile(f"/accounts/{reseller_id}/customers$"))
    links = page.get_by_role("complementary", name="Links")
    expect(page.get_by_role("heading", name=f"{reseller}: customers")).to_be_visible()
    expect(links.get_by_role("link", name="Create New Member Accounts")).to_be_visible()
    expect(links.get_by_role("link", name="Member Account Enrollments")).to_be_visible()
    shot(portal, page, "80-partner-roll-up-empty")

    # Create New Member Accounts: Member Type is Customer and the reseller is its own account, neither editable.
    links.get_by_role("link", name="Create New Member Accounts").click()
    expect(page.get_by_role("heading", name="Create New Member Accounts")).to_be_visible()
    form = page.locator("form.account-form")
    expect(form.get_by_role("radio", name="Customer")).to_have_count(0)
    expect(form.get_by_role("radio", name="Reseller")).to_have_count(0)
    expect(form.locator("[name=member_type], [name=reseller_account_id]")).to_have_count(0)
    fixed = form.locator("dl.fixed-fields")
    expect(fixed).to_contain_text("Member type")
    expect(fixed).to_contain_text("Customer")
    expect(fixed).to_contain_text(reseller)
    expect(fixed).to_contain_text(reseller_id)
    expect(page.get_by_role("main")).to_contain_text(f"under your reseller account, {reseller}")
    org, contact = unique("Acme Widgets"), contact_for("acme")
    page.get_by_label("Organization name").fill(org)
    page.get_by_role("radio", name="Yes").check()
    page.get_by_label("Users Purchased", exact=True).fill("250")
    page.get_by_label("Service end date").fill(END_DATE)
    page.get_by_label("Corporate contact email").fill(contact)
    shot(portal, page, "81-partner-create-form")
    page.get_by_role("button", name="Create Account").click()

    # Next Steps, as for a CSM; the review is its provider's.
    expect(page.get_by_role("heading", name="Next Steps")).to_be_visible()
    enrollment_id = page.url.rstrip("/").split("/")[-2]
    main = page.get_by_role("main")
    expect(main).to_contain_text(contact)
    expect(main).to_contain_text("your provider's reviewer")
    shot(portal, page, "82-partner-next-steps")

    # Its Member Account Enrollments table: this one, New, with the CSM's actions; nothing of anyone else's.
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/enrollments\?done=created"))
    expect(page.get_by_role("status")).to_contain_text(f"{org}: member account created")
    table = page.get_by_role("table", name=re.compile("Enrollments"))
    expect(table.get_by_role("row")).to_have_count(2)  # the heading row and the new customer's
    row = table.get_by_role("row").filter(has_text=org)
    expect(row.get_by_role("cell").nth(1)).to_have_text("Customer")
    expect(row.get_by_role("cell").nth(2)).to_have_text("New")
    for action in ("Edit", "Delete", "Resend"):
        expect(row.get_by_role("link", name=f"{action} {org}")).to_be_visible()
    expect(page.get_by_label("Reseller", exact=True)).to_have_count(0)  # staff's filter, not a partner's
    shot(portal, page, "83-partner-enrollments-new")

    # Another reseller's administrator, while the enrollment is New (its owner may edit, resend, delete it):
    # the same 404 as for no enrollment at all, with nothing of the record; and none of it in its table.
    other_context, other = new_page(browser, portal)
    sign_in_home(other, other_partner)
    other.get_by_role("complementary", name="Links").get_by_role("link", name="Your customers").click()
    expect(other.get_by_role("heading", name=f"{other_reseller}: customers")).to_be_visible()
    missing = other.goto("/enrollments/0000000000000000")
    assert missing is not None and missing.status == 404
    not_found = other.get_by_role("alert").inner_text().replace("0000000000000000", "{id}")
    for elsewhere in ("", "?tab=form", "/next-steps", "/edit", "/resend", "/delete"):
        response = other.goto(f"/enrollments/{enrollment_id}{elsewhere}")
        assert response is not None and response.status == 404, elsewhere
        expect(other.get_by_role("heading", name="Not found")).to_be_visible()
        expect(other.get_by_role("alert")).to_have_text(not_found.replace("{id}", enrollment_id))
        expect(other.get_by_role("main")).not_to_contain_text(org)
        expect(other.get_by_role("main")).not_to_contain_text(contact)
    shot(portal, other, "84-other-partner-404")
    other.goto("/enrollments")
    expect(other.get_by_role("row").filter(has_text=org)).to_have_count(0)
    other_context.close()

    # The contact opens the link in the invitation and completes the form; the partner is told, as the creator.
    contact_context, contact_page = new_page(browser, portal)
    complete_form(contact_page, portal.form_link(contact))
    expect(contact_page.get_by_role("heading", name="Thank you")).to_be_visible()
    contact_context.close()
    portal.wait_for_mail(partner, f"Form completed: {org} is ready for review")

    # The provider's reviewer approves it from the queue, as any other; staff see it "via" the reseller.
    reviewer_context, reviewer = new_page(browser, portal)
    sign_in(reviewer, REVIEWER, start="/review")
    reviewer.get_by_role("table", name="Pending Review, oldest first").get_by_role("link", name=org).click()
    expect(reviewer.get_by_role("heading", name=f"Review {org}")).to_be_visible()
    reviewer.get_by_role("button", name="Start review").click()
    reviewer.get_by_label("Audit note", exact=False).first.fill("documents checked")
    shot(portal, reviewer, "85-reviewer-partner-customer")
    reviewer.get_by_role("button", name="Approve").click()
    expect(reviewer.get_by_role("status")).to_contain_text(f"{org}: approved")
    reviewer.goto("/enrollments")
    staff_row = reviewer.get_by_role("row").filter(has_text=org)
    expect(staff_row).to_contain_text(f"via {reseller}")
    expect(staff_row.get_by_role("cell").nth(2)).to_have_text("Approved")
    shot(portal, reviewer, "87-staff-enrollments-via-reseller")
    reviewer_context.close()

    # The customer is in the partner's roll-up, Active; its enrollment Approved in its table.
    links.get_by_role("link", name="Member Account Enrollments").click()
    expect(page.get_by_role("row").filter(has_text=org).get_by_role("cell").nth(2)).to_have_text("Approved")
    links.get_by_role("link", name="Your customers").click()
    expect(page).to_have_url(re.compile(f"/accounts/{reseller_id}/customers$"))
    customers = page.get_by_role("table", name=re.compile("Customers"))
    expect(customers.get_by_role("row").filter(has_text=org)).to_contain_text("Active")
    expect(page.locator("dl.figures").first).to_contain_text("Customers enrolled 1")
    shot(portal, page, "86-partner-roll-up-with-customer")
