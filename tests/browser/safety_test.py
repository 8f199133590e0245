"""What keeps the portal safe and usable by anyone: markup stays text, forms need their CSRF token, roles see
their own pages, sign-out ends the session, and the keyboard alone gets a CSM through."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.stack import CSM, CUSTOMER_USER, PASSWORD, REVIEWER, Portal
from tests.browser.steps import (
    contact_for,
    create_account,
    pass_second_factor,
    shot,
    sign_in,
    submit_form_by_http,
)

MARKUP = '<img src=x onerror="window.__owned=1"><script>window.__owned=1</script><b>Bold</b> Ltd'


def assert_not_rendered(page: Page) -> None:
    assert page.evaluate("() => window.__owned") is None
    expect(page.locator("main img, main script, main b")).to_have_count(0)


def test_markup_typed_into_fields_is_shown_as_text(portal: Portal, page: Page) -> None:
    sign_in(page, CSM)
    contact = contact_for("markup")
    enrollment_id = create_account(page, MARKUP, contact)
    expect(page.get_by_role("main")).to_contain_text(MARKUP)
    assert_not_rendered(page)

    page.goto(f"/enrollments?q={MARKUP[:20]}")
    expect(page.get_by_role("link", name=MARKUP, exact=True)).to_be_visible()
    expect(page.get_by_label("Organization")).to_have_value(MARKUP[:20])
    assert_not_rendered(page)

    submit_form_by_http(portal.form_link(contact), city=MARKUP, country="<i>Nowhere</i>")
    page.goto(f"/enrollments/{enrollment_id}?tab=form")
    expect(page.get_by_role("main")).to_contain_text(MARKUP)
    expect(page.get_by_role("main")).to_contain_text("<i>Nowhere</i>")
    expect(page.locator("main i")).to_have_count(0)
    assert_not_rendered(page)

    page.goto("/dev/mailbox")
    expect(page.get_by_role("main")).to_contain_text(MARKUP)
    assert page.evaluate("() => window.__owned") is None

    # A status message names only a fixed sentence; text put in the URL is never shown.
    page.goto("/enrollments?done=<b>hi</b>&id=x")
    expect(page.get_by_role("status")).to_have_count(0)


def test_forms_need_the_csrf_token_and_sign_out_ends_the_session(portal: Portal, page: Page) -> None:
    sign_in(page, CSM)
    cookie = next(c for c in page.context.cookies() if c["name"] == "enroll_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    forged = page.request.post("/accounts/new", form={"organization_name": "Forged Ltd"}, max_redirects=0)
    assert forged.status == 403
    assert "This form has expired" in forged.text()
    forged = page.request.post("/signout", form={"csrf_token": "guessed"}, max_redirects=0)
    assert forged.status == 403

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin\?done=signed_out$"))
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto("/enrollments/anything")
    expect(page).to_have_url(re.compile(r"/signin\?next=/enrollments/anything$"))


def test_sign_in_goes_back_only_to_a_page_of_this_site(portal: Portal, page: Page) -> None:
    page.goto("/signin?next=https://evil.example/")
    page.get_by_label("Email address").fill(CSM)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    pass_second_factor(page, CSM)
    expect(page).to_have_url(f"{portal.base_url}/enrollments")


def test_each_role_sees_its_own_pages(portal: Portal, browser: Browser) -> None:
    customer = browser.new_context(base_url=portal.base_url).new_page()
    sign_in(customer, CUSTOMER_USER)
    expect(customer.get_by_role("heading", name="Nothing here yet")).to_be_visible()
    expect(customer.get_by_role("complementary", name="Links")).to_have_count(0)
    shot(portal, customer, "40-nothing-yet")
    customer.goto("/accounts/new")
    expect(customer.get_by_role("heading", name="Nothing here yet")).to_be_visible()
    customer.context.close()

    reviewer = browser.new_context(base_url=portal.base_url).new_page()
    sign_in(reviewer, REVIEWER)
    links = reviewer.get_by_role("complementary", name="Links")
    expect(links.get_by_role("link", name="Create New Member Accounts")).to_have_count(0)
    expect(links.get_by_role("link", name="Review queue")).to_be_visible()
    reviewer.goto("/accounts/new")
    expect(reviewer.get_by_role("alert")).to_contain_text("Your role (reviewer) may not create")
    reviewer.goto("/accounts")
    expect(reviewer.get_by_role("heading", name="Find Member Accounts")).to_be_visible()
    reviewer.goto("/me")
    expect(reviewer.get_by_role("main")).to_contain_text(REVIEWER)
    reviewer.context.close()


def test_a_csm_gets_through_with_the_keyboard_alone(portal: Portal, page: Page) -> None:
    page.goto("/signin")
    expect(page.get_by_label("Email address")).to_be_focused()
    page.keyboard.type(CSM)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    pass_second_factor(page, CSM)
    expect(page).to_have_url(re.compile(r"/enrollments$"))

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_visible()
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Create New Member Accounts":
            break
    focus_ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert focus_ring != "none", "the focused link shows no focus ring"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create New Member Accounts")).to_be_visible()
    page.get_by_label("Organization name").focus()
    page.keyboard.type("Keyboard Only Ltd")
    page.keyboard.press("Tab")  # into the member type radios, where Space chooses
    page.keyboard.press("Space")
    expect(page.get_by_label("Customer", exact=True)).to_be_checked()
    expect(page.get_by_role("radio", name="Yes")).to_be_visible()
