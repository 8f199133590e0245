"""The corporate contact's side, as a newcomer walks it on `make up`: the invitation in /dev/mailbox, the form on
a phone, the thank-you page, and the dead link after."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.stack import CSM, Portal
from tests.browser.steps import CONTACT_FORM, contact_for, create_account, shot, sign_in, unique

PHONE: ViewportSize = {"width": 390, "height": 844}


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def test_contact_opens_the_invitation_from_the_mailbox_and_completes_the_form(
    portal: Portal, page: Page, browser: Browser
) -> None:
    sign_in(page, CSM)
    org, contact = unique("Globex Corporation"), contact_for("globex")
    create_account(page, org, contact)
    portal.wait_for_mail(contact, "Complete the member account enrollment")

    page.goto("/dev/mailbox")
    expect(page.get_by_role("heading", name="Dev mailbox")).to_be_visible()
    shot(portal, page, "10-mailbox")
    invitation = page.get_by_role("row").filter(has_text=contact)
    invitation.get_by_role("link", name=f"Complete the member account enrollment for {org}").click()
    expect(page.get_by_role("heading", name=f"Complete the member account enrollment for {org}")).to_be_visible()
    shot(portal, page, "11-mailbox-message")
    link = page.locator("main a[href*='/enroll/']").first.get_attribute("href")
    assert link is not None and link.startswith(portal.base_url)

    phone = browser.new_context(base_url=portal.base_url, viewport=PHONE, is_mobile=True, has_touch=True)
    contact_page = phone.new_page()
    contact_page.goto(link)
    expect(contact_page.get_by_role("heading", name="Enrollment form")).to_be_visible()
    expect(contact_page.get_by_role("main")).to_contain_text(org)
    # No back-office chrome: no top bar, no Links pane, no sign-out.
    expect(contact_page.get_by_role("banner").get_by_role("button")).to_have_count(0)
    expect(contact_page.get_by_role("complementary")).to_have_count(0)
    assert no_sideways_scroll(contact_page)
    shot(portal, contact_page, "12-contact-form")

    for label, value in CONTACT_FORM.items():
        contact_page.get_by_label(label, exact=True).fill(value)
    contact_page.get_by_label("Technical contact's email", exact=True).fill("tess@gmail.com")
    contact_page.get_by_role("button", name="Submit the enrollment form").click()
    expect(contact_page.get_by_role("alert")).to_contain_text("Please correct 2 fields")
    expect(contact_page.locator("#technical_contact_email-error")).to_contain_text("business address")
    expect(contact_page.locator("#accept_terms-error")).to_contain_text("must be accepted")
    expect(contact_page.get_by_label("Your full name")).to_have_value(CONTACT_FORM["Your full name"])
    assert no_sideways_scroll(contact_page)
    shot(portal, contact_page, "13-contact-form-errors")

    contact_page.get_by_label("Technical contact's email", exact=True).fill("tess@globex.example")
    contact_page.get_by_label("I accept the member terms").check()
    contact_page.get_by_role("button", name="Submit the enrollment form").click()
    expect(contact_page.get_by_role("status")).to_contain_text("Thank you")
    shot(portal, contact_page, "14-contact-thanks")

    contact_page.goto(link)
    expect(contact_page.get_by_role("heading", name="This link is no longer valid")).to_be_visible()
    assert no_sideways_scroll(contact_page)
    shot(portal, contact_page, "15-dead-link")
    phone.close()

    page.goto("/enrollments")
    expect(page.get_by_role("row").filter(has_text=org).get_by_role("cell").nth(2)).to_have_text("Pending Review")
