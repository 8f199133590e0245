"""The CSM's day in the portal: sign in, create an account, Next Steps, the table; errors shown where they are."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.stack import CSM, Portal
from tests.browser.steps import END_DATE, contact_for, fill_account, shot, sign_in, unique


def test_csm_signs_in_creates_an_account_and_sees_it_new(portal: Portal, page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/enrollments$"))
    shot(portal, page, "01-sign-in")
    page.get_by_label("Email address").fill(CSM)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("email address or password is not right")
    expect(page.get_by_label("Email address")).to_have_value(CSM)

    sign_in(page, CSM)
    expect(page.get_by_role("link", name="Account", exact=True)).to_have_attribute("aria-current", "page")
    links = page.get_by_role("complementary", name="Links")
    for name in ("Create New Member Accounts", "Find Member Account Enrollments", "Find Member Accounts"):
        expect(links.get_by_role("link", name=name)).to_be_visible()

    links.get_by_role("link", name="Create New Member Accounts").click()
    expect(page.get_by_role("heading", name="Create New Member Accounts")).to_be_visible()
    # Display Users Purchased applies to customers only, and Users Purchased only when it is Yes.
    expect(page.get_by_role("radio", name="Yes")).to_be_hidden()
    page.get_by_label("Customer", exact=True).check()
    expect(page.get_by_role("radio", name="Yes")).to_be_visible()
    expect(page.get_by_label("Users Purchased", exact=True)).to_be_hidden()
    page.get_by_role("radio", name="Yes").check()
    expect(page.get_by_text("1,000 in January plus 100 in March is 1,100")).to_be_visible()
    shot(portal, page, "02-create-form")

    org, contact = unique("Acme Widgets"), contact_for("acme")
    fill_account(page, org, contact)
    page.get_by_role("button", name="Create Account").click()

    expect(page.get_by_role("heading", name="Next Steps")).to_be_visible()
    main = page.get_by_role("main")
    expect(main).to_contain_text(contact)
    expect(main.get_by_role("heading", name="Reminders")).to_be_visible()
    expect(main.locator(".steps li").nth(1).locator("time")).to_have_count(2)  # ENROLL_REMINDERS 3d,7d
    expect(main.get_by_role("heading", name="Deadline")).to_be_visible()
    shot(portal, page, "04-next-steps")

    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/enrollments\?done=created"))
    expect(page.get_by_role("status")).to_contain_text(f"{org}: member account created")
    row = page.get_by_role("row").filter(has_text=org)
    expect(row.get_by_role("cell").nth(2)).to_have_text("New")
    expect(row.get_by_role("link", name=org, exact=True)).to_have_attribute(
        "href", re.compile(r"^/enrollments/[0-9a-f]+$")
    )
    for action in ("Edit", "Delete", "Resend"):
        expect(row.get_by_role("link", name=f"{action} {org}")).to_be_in_viewport()  # no sideways scrolling
    shot(portal, page, "05-enrollments")

    # Filter, search and sort keep the row findable.
    page.get_by_label("Organization").fill(org.split()[-1])
    page.get_by_label("Status").select_option("New")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("row").filter(has_text=org)).to_have_count(1)
    page.get_by_role("link", name="Organization").click()
    expect(page.get_by_role("columnheader", name="Organization")).to_have_attribute("aria-sort", "ascending")
    expect(page.get_by_role("row").filter(has_text=org)).to_have_count(1)


def test_errors_show_next_to_their_fields_with_the_input_kept_without_javascript(
    portal: Portal, browser: Browser
) -> None:
    context = browser.new_context(base_url=portal.base_url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, CSM, start="/accounts/new")
    # Without the script every field shows, labelled with when it applies.
    expect(page.get_by_label("Users Purchased", exact=True)).to_be_visible()
    page.get_by_label("Organization name").fill("A")
    page.get_by_label("Reseller", exact=True).check()
    page.get_by_role("radio", name="Yes").check()
    page.get_by_label("Users Purchased", exact=True).fill("ten")
    page.get_by_label("Service end date").fill("2001-01-01")
    page.get_by_label("Corporate contact email").fill("pat@gmail.com")
    page.get_by_role("button", name="Create Account").click()

    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Please correct 5 fields")
    expected = {
        "organization_name": "Organization name must be at least 2 characters",
        "display_users_purchased": "applies to customers only",
        "users_purchased": "must be a whole number",
        "service_end_date": "Service end date must be after today",
        "corporate_contact_email": "must be a business address",
    }
    for field, text in expected.items():
        expect(page.locator(f"#{field}-error")).to_contain_text(text)
        expect(page.locator(f"#{field}-field")).to_contain_text(text)
    expect(page.get_by_label("Organization name")).to_have_value("A")
    expect(page.get_by_label("Organization name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Organization name")).to_have_attribute("aria-describedby", re.compile("error"))
    expect(page.get_by_label("Corporate contact email")).to_have_value("pat@gmail.com")
    expect(page.get_by_label("Users Purchased", exact=True)).to_have_value("ten")
    expect(page.get_by_label("Reseller", exact=True)).to_be_checked()
    shot(portal, page, "03-create-errors")

    # The summary's links take the keyboard to the field.
    summary.get_by_role("link", name=re.compile("Organization name")).click()
    expect(page.get_by_label("Organization name")).to_be_focused()

    # Fixed, the same form creates the account (the no-JS path works end to end).
    page.get_by_label("Organization name").fill(unique("Nojs Resellers"))
    page.get_by_role("radio", name="No", exact=True).check()
    page.get_by_label("Users Purchased", exact=True).fill("")
    page.get_by_label("Service end date").fill(END_DATE)
    page.get_by_label("Corporate contact email").fill(contact_for("nojs"))
    page.get_by_role("button", name="Create Account").click()
    expect(page.get_by_role("heading", name="Next Steps")).to_be_visible()
    context.close()
