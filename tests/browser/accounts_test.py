"""Member accounts in the portal: staff find one, read its tabs and add users purchased; a customer user sees
its own Account Summary and nothing else; a reseller user its roll-up and its customers' summaries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from domain.models import Role
from tests.browser.stack import CSM, PASSWORD, REVIEWER, Portal
from tests.browser.steps import Api, pass_second_factor, shot, sign_in


@pytest.fixture(scope="module")
def api(portal: Portal) -> Iterator[Api]:
    made = Api(portal)
    yield made
    made.client.close()


def sign_in_home(page: Page, email: str) -> None:
    """A reseller or customer user signs in from `/` and lands on their own page."""
    page.goto("/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    pass_second_factor(page, email)


def test_staff_find_an_account_read_its_tabs_and_add_users_purchased(portal: Portal, page: Page, api: Api) -> None:
    org, account_id = api.approved("Acme Widgets")
    api.call("POST", f"/api/accounts/{account_id}/usage", "admin", json={"users_existing": 1040})
    ending, _ = api.approved(
        "Initech Systems", service_end_date=(datetime.now(UTC).date() + timedelta(days=5)).isoformat()
    )

    sign_in(page, CSM)
    page.get_by_role("complementary", name="Links").get_by_role("link", name="Find Member Accounts").click()
    expect(page.get_by_role("heading", name="Find Member Accounts")).to_be_visible()
    page.get_by_label("Organization").fill(org)
    page.get_by_label("Member Type").select_option("customer")
    page.get_by_label("Status").select_option("Active")
    page.get_by_role("button", name="Find").click()
    rows = page.get_by_role("table", name=re.compile("Member accounts matching your search"))
    expect(rows.get_by_role("row")).to_have_count(2)  # the heading row and Acme's
    page.get_by_label("Organization").fill("")
    page.get_by_label("Service ends by").fill((datetime.now(UTC).date() + timedelta(days=30)).isoformat())
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("row").filter(has_text=ending)).to_have_count(1)
    expect(page.get_by_role("row").filter(has_text=org)).to_have_count(0)
    page.get_by_role("link", name="Clear").click()
    expect(page.get_by_role("row").filter(has_text=org)).to_contain_text("1,040 / 1,000")
    shot(portal, page, "50-find-member-accounts")

    page.get_by_role("link", name=org).click()
    expect(page.get_by_role("heading", name=org)).to_be_visible()
    expect(page.get_by_role("link", name="Account", exact=True).last).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("main")).to_contain_text("Service start date")
    shot(portal, page, "51-account-tab")
    page.get_by_role("link", name="Contacts").click()
    expect(page.get_by_role("heading", name="Technical contact")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("tess@acme.example")
    page.get_by_role("link", name="Users", exact=True).click()
    figures = page.locator("dl.figures")
    expect(figures).to_contain_text("Users purchased 1,000")
    expect(figures).to_contain_text("Available 0")
    expect(figures).to_contain_text("Overage 40 more than purchased")
    expect(page.get_by_role("main")).to_contain_text("Existing users as last reported on")
    shot(portal, page, "52-users-tab-overage")

    page.get_by_role("link", name="Add users purchased").click()
    expect(page.get_by_role("heading", name=f"Add users purchased to {org}")).to_be_visible()
    page.get_by_role("button", name="Add users").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Please correct 2 fields")
    expect(summary.get_by_role("link", name="Users to add must be a whole number other than 0")).to_be_visible()
    expect(summary.get_by_role("link", name="Audit note is required")).to_be_visible()
    expect(page.get_by_label("Users to add")).to_have_attribute("aria-invalid", "true")
    shot(portal, page, "53-add-users-errors")
    page.get_by_label("Users to add").fill("100")
    page.get_by_label("Audit note").fill("March order")
    page.get_by_role("button", name="Add users").click()
    expect(page.get_by_role("status")).to_contain_text(f"{org}: users purchased changed. The total is now 1,100.")
    expect(figures).to_contain_text("Users purchased 1,100")
    expect(figures).to_contain_text("Available 60")
    expect(page.locator("dl.figures .over")).to_have_count(0)
    shot(portal, page, "54-users-after-top-up")

    page.get_by_role("link", name="Switch off Display Users Purchased").click()
    page.get_by_label("Audit note").fill("now pay as you go")
    page.get_by_role("button", name="Switch it off").click()
    expect(page.get_by_role("status")).to_contain_text("Display Users Purchased is off")
    expect(figures).not_to_contain_text("Users purchased")
    expect(page.get_by_role("link", name="Add users purchased")).to_have_count(0)

    page.get_by_role("link", name="Audit notes").click()
    expect(page.get_by_role("main")).to_contain_text("Audit note: 1,000 + 100 = 1,100; March order")
    expect(page.get_by_role("main")).to_contain_text("Audit note: display users purchased off; now pay as you go")
    shot(portal, page, "55-audit-notes")

    page.goto("/accounts")
    page.get_by_role("link", name=ending).click()
    expect(page.locator(".banner.service-end")).to_contain_text("Service ends on")
    shot(portal, page, "56-service-ends-banner")
    expect(page.get_by_role("link", name="Suspend")).to_have_count(0)  # reviewers and admins suspend
    page.get_by_role("link", name="Change service end date").click()
    later = datetime.now(UTC).date() + timedelta(days=200)
    page.get_by_label("New service end date").fill(later.isoformat())
    page.get_by_label("Audit note").fill("renewed")
    page.get_by_role("button", name="Change the date").click()
    expect(page.get_by_role("status")).to_contain_text(f"the service end date is now {later:%d %b %Y}")
    expect(page.locator(".banner.service-end")).to_have_count(0)


def test_a_reviewer_suspends_then_deletes_after_confirming(portal: Portal, browser: Browser, api: Api) -> None:
    org, account_id = api.approved("Umbrella Holdings")
    page = browser.new_context(base_url=portal.base_url).new_page()
    sign_in(page, REVIEWER, start=f"/accounts/{account_id}")
    expect(page.get_by_role("link", name="Delete")).to_have_count(0)  # not while Active
    page.goto(f"/accounts/{account_id}/delete")
    expect(page.get_by_role("alert")).to_contain_text("Cannot delete an Active member account; suspend it first.")
    page.goto(f"/accounts/{account_id}")
    page.get_by_role("link", name="Suspend").click()
    page.get_by_label("Audit note").fill("unpaid invoices")
    page.get_by_role("button", name="Suspend account").click()
    expect(page.get_by_role("status")).to_contain_text(f"{org}: suspended.")
    expect(page.locator(".title-row .status")).to_have_text("Suspended")

    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name=f"Delete the member account of {org}?")).to_be_visible()
    shot(portal, page, "57-delete-account-confirm")
    page.get_by_role("link", name="Keep it").click()
    expect(page.locator(".title-row .status")).to_have_text("Suspended")
    page.get_by_role("link", name="Delete").click()
    page.get_by_label("Audit note").fill("contract ended")
    page.get_by_role("button", name="Delete account").click()
    expect(page).to_have_url(re.compile(r"/accounts\?done=deleted"))
    expect(page.get_by_role("status")).to_contain_text(f"{org}: the member account is deleted.")
    expect(page.get_by_role("row").filter(has_text=org)).to_contain_text("Deleted")
    page.context.close()


def test_a_customer_user_sees_its_own_summary_only(portal: Portal, browser: Browser, api: Api) -> None:
    org, account_id = api.approved("Globex Corporation", display_users_purchased=False, users_purchased=None)
    other, other_id = api.approved("Hooli Europe")
    api.call("POST", f"/api/accounts/{account_id}/usage", "admin", json={"users_existing": 321})
    email = f"it-{account_id}@globex.example"
    portal.add_user(email, Role.customer, account_id=account_id)

    page = browser.new_context(base_url=portal.base_url).new_page()
    sign_in_home(page, email)
    expect(page).to_have_url(re.compile(f"/accounts/{account_id}$"))
    expect(page.get_by_role("heading", name=org)).to_be_visible()
    figures = page.locator("dl.figures")
    expect(figures).to_contain_text("Existing users 321")
    expect(figures).not_to_contain_text("Users purchased")
    expect(page.get_by_role("main")).to_contain_text("This account shows existing users only")
    links = page.get_by_role("complementary", name="Links")
    expect(links.get_by_role("link")).to_have_text(
        ["Account Summary", "Administrators", "Credentials", "Check a credential"]
    )
    expect(page.get_by_role("link", name="Audit notes")).to_have_count(0)
    shot(portal, page, "60-customer-summary")

    for elsewhere in (
        f"/accounts/{other_id}",
        f"/accounts/{other_id}/users-purchased",
        f"/accounts/{account_id}/customers",
    ):
        response = page.goto(elsewhere)
        assert response is not None
        expect(page.get_by_role("main")).not_to_contain_text(other)
        assert page.url.endswith(f"/accounts/{account_id}") or response.status == 404, elsewhere
    for staff_page in ("/accounts", "/enrollments", "/review", "/accounts/new"):
        page.goto(staff_page)
        expect(page).to_have_url(re.compile(f"/accounts/{account_id}$"))
    page.context.close()


def test_a_reseller_user_sees_its_roll_up_and_its_customers(portal: Portal, browser: Browser, api: Api) -> None:
    reseller, reseller_id = api.approved(
        "Vertex Resale", member_type="reseller", display_users_purchased=False, users_purchased=None
    )
    sold, sold_id = api.approved(
        "Acme Widgets",
        reseller_account_id=reseller_id,
        service_end_date=(datetime.now(UTC).date() + timedelta(days=12)).isoformat(),
    )
    _, direct_id = api.approved("Globex Corporation")
    email = f"sales-{reseller_id}@vertex.example"
    portal.add_user(email, Role.reseller, account_id=reseller_id)

    page = browser.new_context(base_url=portal.base_url).new_page()
    sign_in_home(page, email)
    expect(page).to_have_url(re.compile(f"/accounts/{reseller_id}/customers$"))
    expect(page.get_by_role("heading", name=f"{reseller}: customers")).to_be_visible()
    figures = page.locator("dl.figures")
    expect(figures).to_contain_text("Customers enrolled 1")
    expect(figures).to_contain_text("Enrollments pending 0")
    expect(figures).to_contain_text("Expiring within 30 days 1")
    table = page.get_by_role("table", name=re.compile("Customers, newest first"))
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table.get_by_role("row").filter(has_text=sold)).to_contain_text("ends soon")
    shot(portal, page, "61-reseller-rollup")

    table.get_by_role("link", name=sold).click()
    expect(page).to_have_url(re.compile(f"/accounts/{sold_id}$"))
    expect(page.locator(".banner.service-end")).to_contain_text("Service ends on")
    expect(page.locator("dl.figures")).to_contain_text("Users purchased 1,000")
    shot(portal, page, "62-reseller-customer-summary")
    page.get_by_role("link", name="Your customers").first.click()
    expect(page).to_have_url(re.compile(f"/accounts/{reseller_id}/customers$"))

    for elsewhere in (f"/accounts/{direct_id}", f"/accounts/{sold_id}/customers", f"/accounts/{direct_id}/suspend"):
        response = page.goto(elsewhere)
        assert response is not None
        assert response.status == 404 or page.url.endswith(f"/accounts/{reseller_id}/customers"), elsewhere
    page.context.close()

    staff = browser.new_context(base_url=portal.base_url).new_page()
    sign_in(staff, CSM, start="/accounts")
    staff.get_by_label("Reseller").select_option(label=reseller)
    staff.get_by_role("button", name="Find").click()
    found = staff.get_by_role("table", name=re.compile("Member accounts matching your search"))
    expect(found.get_by_role("row")).to_have_count(2)
    expect(found.get_by_role("row").filter(has_text=sold)).to_contain_text(reseller)
    staff.goto(f"/accounts/{reseller_id}")
    staff.get_by_role("link", name="The customers this reseller sold, and its roll-up").click()
    expect(staff.get_by_role("heading", name=f"{reseller}: customers")).to_be_visible()
    staff.context.close()
