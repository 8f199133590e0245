"""The Webhooks pages in Chromium, against a real receiver that verifies every signature (`tests.webhooks.receiver`).

An admin registers an endpoint (by keyboard, after a try with errors), copies its secret from the page that shows
it once, and follows its deliveries as enrollments are created: Succeeded; then, with the receiver down, a failed
attempt ("connection refused") and the delivery Pending with its next attempt; with the receiver back on the same
port, the retry 5 s later lands. A replay is a second delivery with the same webhook-id. The admin changes the
endpoint's events, rotates its secret, disables it (a replay is then refused at the top of the page), enables it and
deletes it. A reseller's administrator sees only its own endpoints; a CSM gets the refusal page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from domain.models import Role
from store import users
from tests.browser.stack import CSM, Portal
from tests.browser.steps import ADMIN, Api, contact_for, shot, sign_in, unique
from tests.webhooks.receiver import Receiver

EVENT_TYPES = 22
"""Checkboxes on the form: one per `domain.webhooks.EventType`."""


@pytest.fixture(scope="module")
def api(portal: Portal) -> Iterator[Api]:
    made = Api(portal)
    yield made
    made.client.close()


@pytest.fixture
def receiver(portal: Portal) -> Iterator[Receiver]:
    """A receiver on the stack's event loop (the one its worker delivers from)."""
    started = portal.stack.run(Receiver().start())
    yield started
    portal.stack.run(started.stop())


def enroll(api: Api, name: str) -> str:
    """A new enrollment, made through the API as a CSM: its `enrollment.created` event, then `.invited`."""
    body = {
        "service_end_date": (datetime.now(UTC).date() + timedelta(days=400)).isoformat(),
        "member_type": "customer",
        "display_users_purchased": True,
        "users_purchased": 100,
        "organization_name": unique(name),
        "corporate_contact_email": contact_for(name),
    }
    enrollment_id: str = api.call("POST", "/api/enrollments", json=body)["id"]
    return enrollment_id


def reload_until(page: Page, found: Locator, timeout: float = 30) -> None:
    """Reload the page until `found` is on it: deliveries happen apart from the page."""
    deadline = time.monotonic() + timeout
    while found.count() == 0:
        assert time.monotonic() < deadline, f"not shown on {page.url} in {timeout} s"
        time.sleep(0.3)
        page.reload()


def delivery(page: Page, event_type: str, status: str) -> Locator:
    return (
        page.locator("article.delivery")
        .filter(has=page.get_by_role("heading", name=event_type, exact=True))
        .filter(has=page.locator(".status", has_text=status))
    )


def focus_path(page: Page, until: str, most: int = 60) -> list[str]:
    """Press Tab until the button named `until` has the focus: the ids (or button texts) focused on the way."""
    seen: list[str] = []
    for _ in range(most):
        page.keyboard.press("Tab")
        focused: str = page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")
        seen.append(focused)
        if focused == until:
            return seen
    raise AssertionError(f"Tab never reached {until!r}: {seen}")


def test_an_admin_registers_an_endpoint_and_follows_its_deliveries(
    portal: Portal, page: Page, api: Api, receiver: Receiver
) -> None:
    sign_in(page, ADMIN, start="/webhooks")
    links = page.get_by_role("complementary", name="Links")
    expect(links.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()

    # A try without a URL and with "Only the ticked events" but none ticked: both errors, next to their fields.
    page.get_by_role("radio", name="Only the ticked events").check()
    page.get_by_role("button", name="Register endpoint").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Please correct 2 fields")
    expect(summary.get_by_role("link", name=re.compile("^URL is required"))).to_have_attribute("href", "#url")
    expect(summary.get_by_role("link", name=re.compile("^Events needs at least one"))).to_be_visible()
    expect(page.get_by_label("URL", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#events-field .error")).to_contain_text("Events needs at least one event type ticked")
    expect(page.get_by_role("radio", name="Only the ticked events")).to_be_checked()
    shot(portal, page, "70-webhooks-register-errors")

    # The keyboard alone: Tab reaches every field and every event type; arrows choose among the radios.
    page.get_by_label("URL", exact=True).focus()
    page.keyboard.type(receiver.url)
    path = focus_path(page, "Register endpoint")
    assert path[:2] == ["description", "events_mode-chosen"], path
    ticks = [each for each in path if each.startswith("events-")]
    assert len(ticks) == EVENT_TYPES, path
    page.get_by_label("Description").focus()
    page.keyboard.type("CRM sync")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowUp")
    expect(page.get_by_role("radio", name="All events")).to_be_checked()
    page.get_by_role("button", name="Register endpoint").focus()
    page.keyboard.press("Enter")

    # The secret, shown once.
    expect(page.get_by_role("heading", name="Your endpoint's secret")).to_be_visible()
    secret = page.get_by_label(re.compile("^Signing secret")).input_value()
    assert secret.startswith("whsec_")
    receiver.secrets.append(secret)
    expect(page.get_by_role("main")).to_contain_text("both the new and the previous secret sign every delivery")
    shot(portal, page, "71-webhooks-secret")
    page.get_by_role("link", name="I have saved the secret, continue").click()
    expect(page.get_by_role("heading", name=receiver.url)).to_be_visible()
    expect(page.get_by_label(re.compile("^Signing secret"))).to_have_count(0)
    endpoint_url = page.url

    page.goto("/webhooks")
    row = page.get_by_role("row").filter(has_text=receiver.url)
    expect(row).to_contain_text("All events")
    expect(row).to_contain_text("Enabled")
    expect(row).to_contain_text("CRM sync")
    shot(portal, page, "72-webhooks-list")
    row.get_by_role("link", name=receiver.url).click()

    # An enrollment: its events are delivered, signed, and shown Succeeded.
    enroll(api, "Hooked Widgets")
    reload_until(page, delivery(page, "enrollment.created", "Succeeded"))
    assert "enrollment.created" in receiver.types()
    assert all(r.verified for r in receiver.received)

    # The receiver goes down: the next enrollment's delivery fails ("connection refused") and waits, Pending.
    portal.stack.run(receiver.stop())
    enroll(api, "Unreachable Widgets")
    failing = delivery(page, "enrollment.created", "Pending").filter(has_text="connection refused")
    reload_until(page, failing)
    portal.stack.run(receiver.start())  # on the same port, well before the retry 5 s after the failure
    article_id = failing.first.get_attribute("id")
    assert article_id is not None
    article = page.locator(f"#{article_id}")
    expect(article).to_contain_text("Next attempt")
    expect(article.get_by_role("row").nth(1)).to_contain_text("scheduled")

    # Back on its port: the retry lands.
    reload_until(page, page.locator(f"#{article_id}").filter(has=page.locator(".status", has_text="Succeeded")))
    attempts = article.get_by_role("table").get_by_role("row")
    expect(attempts).to_have_count(3)  # the heading row, the refused attempt, the retry
    expect(attempts.nth(1)).to_contain_text("connection refused")
    expect(attempts.nth(2)).to_contain_text("200")
    webhook_id = article_id.removeprefix("delivery-")
    assert len([r for r in receiver.verified() if r.webhook_id == webhook_id]) == 1

    # Replay: one more attempt, now, with the same webhook-id.
    article.get_by_role("button", name=re.compile("^Replay")).click()
    expect(page.get_by_role("status")).to_contain_text("being attempted once more")
    reload_until(page, page.locator(f"#{article_id} tr").filter(has_text="replay"))
    expect(article.get_by_role("table").get_by_role("row")).to_have_count(4)
    Api.wait(lambda: len([r for r in receiver.verified() if r.webhook_id == webhook_id]) == 2)
    article.locator("details summary").first.click()
    expect(article.locator("pre.answer").first).to_contain_text('{"ok": true}')
    shot(portal, page, "73-webhooks-endpoint")

    # Change it: only enrollment.created from now on.
    page.get_by_text("Change its URL, description or events").click()
    page.get_by_role("radio", name="Only the ticked events").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text("Events needs at least one event type ticked")
    expect(page.get_by_role("radio", name="Only the ticked events")).to_be_visible()  # the form stays open
    page.get_by_role("checkbox", name="enrollment.created").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Your changes are saved.")
    facts = page.locator("dl.facts").first
    expect(facts).to_contain_text("enrollment.created")
    expect(facts).not_to_contain_text("All events")

    # Rotate its secret: a new one, shown once; both sign for a day.
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", name="The endpoint's new secret")).to_be_visible()
    rotated = page.get_by_label(re.compile("^Signing secret")).input_value()
    assert rotated.startswith("whsec_") and rotated != secret
    receiver.secrets.append(rotated)
    expect(page.get_by_role("main")).to_contain_text("signed with both this secret and the previous one")
    page.get_by_role("link", name="I have saved the secret, continue").click()
    expect(page.locator("dl.facts").first).to_contain_text("Previous secret")

    # Disabled, a replay is refused at the top of the page; enabled again, it carries on.
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_contain_text("The endpoint is disabled")
    expect(page.locator(".title-row .status").first).to_have_text("Disabled")
    page.locator(f"#{article_id}").get_by_role("button", name=re.compile("^Replay")).click()
    expect(page.get_by_role("alert")).to_contain_text("The endpoint is disabled: enable it first")
    shot(portal, page, "75-webhooks-replay-refused")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status")).to_contain_text("The endpoint is enabled")

    # Delete, after a page that asks first.
    page.goto(endpoint_url)
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name=re.compile("^Delete the webhook endpoint"))).to_be_visible()
    shot(portal, page, "76-webhooks-delete-confirm")
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"/webhooks\?done=deleted$"))
    expect(page.get_by_role("status")).to_contain_text("The endpoint is deleted")
    expect(page.get_by_role("row").filter(has_text=receiver.url)).to_have_count(0)
    page.goto(endpoint_url)
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()


def test_a_reseller_sees_only_its_own_endpoints_and_a_csm_is_refused(
    portal: Portal, page: Page, browser: Browser, api: Api
) -> None:
    url = portal.settings.effective_database_url
    partners = []
    for name in ("Hook Resale", "Other Channel"):
        _, account_id = api.approved(name, member_type="reseller", display_users_purchased=False, users_purchased=None)
        email = f"partner-{account_id}@{name.split()[0].lower()}.example"
        portal.add_user(email, Role.reseller, account_id=account_id)
        partners.append(email)
    mine, theirs = partners
    # The other reseller's endpoint and the admin's, registered through the API.
    token = portal.stack.run(users.create_token(url, theirs))
    other = api.client.post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/other-reseller", "description": "theirs"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert other.status_code == 201, other.text
    admins = api.call("POST", "/api/webhook-endpoints", "admin", json={"url": "http://127.0.0.1:9/admin"})

    sign_in(page, mine, start="/webhooks")
    expect(page.get_by_role("complementary", name="Links").get_by_role("link", name="Webhooks")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("every event about your customers")
    expect(page.get_by_text("You have no webhook endpoints yet.")).to_be_visible()
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/mine")
    page.get_by_label("Description").fill("Our billing")
    page.get_by_role("button", name="Register endpoint").click()
    expect(page.get_by_role("heading", name="Your endpoint's secret")).to_be_visible()
    page.get_by_role("link", name="I have saved the secret, continue").click()
    expect(page.get_by_role("main")).to_contain_text("All events about your customers")
    page.get_by_role("link", name="Webhooks", exact=True).first.click()
    table = page.get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(2)  # the heading row and its own
    expect(table).to_contain_text("http://127.0.0.1:9/mine")
    shot(portal, page, "74-webhooks-reseller")
    # Another's endpoint answers as one that does not exist.
    page.goto(f"/webhooks/{other.json()['id']}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.close()

    # A CSM may not: the refusal page, and no link to it.
    context = browser.new_context(base_url=portal.base_url)
    csm = context.new_page()
    sign_in(csm, CSM, start="/webhooks")
    expect(csm.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(csm.get_by_role("alert")).to_contain_text("Your role (csm) may not manage webhook endpoints.")
    expect(csm.get_by_role("complementary", name="Links").get_by_role("link", name="Webhooks")).to_have_count(0)
    context.close()
    api.call("DELETE", f"/api/webhook-endpoints/{admins['id']}", "admin")  # nothing listens on port 9
