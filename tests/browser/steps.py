"""What a person does in the portal, as steps the browser tests share."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp
from playwright.sync_api import Page, expect

from domain.models import Role
from store import users
from tests.browser.stack import CSM, PASSWORD, PORTALS, REVIEWER, Portal
from tests.browser.stack import SecondFactor as SecondFactor  # re-exported for the tests that set one up

END_DATE = (datetime.now(UTC).date() + timedelta(days=400)).isoformat()
CONTACT_FORM = {
    "Your full name": "Pat Example",
    "Your phone number": "+44 20 7946 0000",
    "Technical contact's name": "Tess Tech",
    "Technical contact's email": "tess@acme.example",
    "Technical contact's phone": "+44 20 7946 0001",
    "Billing contact's name": "Bill Ing",
    "Billing contact's email": "billing@acme.example",
    "Street address": "1 High Street",
    "City": "London",
    "Postal code": "EC1A 1BB",
    "Country": "United Kingdom",
}


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:6]}"


def contact_for(org: str) -> str:
    return f"contact-{uuid.uuid4().hex[:8]}@{org.split()[0].lower()}.example"


def unlabelled_fields(page: Page) -> list[str]:
    """Every visible form control without a label (none should have one)."""
    result: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name || el.id)"""
    )
    return result


def shot(portal: Portal, page: Page, name: str) -> None:
    """A full-page screenshot under a fixed name, after checking that every field on it is labelled."""
    assert unlabelled_fields(page) == [], f"unlabelled fields on {page.url}"
    page.screenshot(path=str(portal.shots / f"{name}.png"), full_page=True)


def sign_in(page: Page, email: str, *, start: str = "/enrollments") -> None:
    page.goto(start)
    expect(page).to_have_url(re.compile(re.escape(f"/signin?next={start}") + "$"))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    pass_second_factor(page, email)
    expect(page).to_have_url(re.compile(re.escape(start) + "$"))


def fresh_code(factor: SecondFactor, *, recovery: bool = False) -> str:
    """A code of a time step not used before, inside the portal's ±1 step window, and never within 2 s of a
    step's end (the portal's clock may tick meanwhile). When all three steps are used: with `recovery`, one of
    the unused recovery codes, as a person in a hurry would; otherwise wait for the next step."""
    totp = pyotp.TOTP(factor.key)
    while True:
        current = int(time.time() // 30)
        step = max(current - 1, factor.last_step + 1)
        if step <= current + 1 and 30 - time.time() % 30 > 2:
            factor.last_step = step
            return totp.generate_otp(step)
        if recovery and factor.recovery_codes:
            return factor.recovery_codes.pop()
        time.sleep(0.5)


def pass_second_factor(page: Page, email: str) -> None:
    """After the password: set up the second factor (the first sign-in: read the key shown as text, turn it on,
    continue past the recovery codes) or enter a code from it (every later sign-in)."""
    base = urlsplit(page.url)
    portal = PORTALS[f"{base.scheme}://{base.netloc}"]
    expect(page).to_have_url(re.compile(r"/(me|signin)/second-factor(\?|$)"))
    if "/me/second-factor" in page.url:
        key = page.locator("#setup-key").inner_text().replace(" ", "")
        factor = portal.second_factors[email] = SecondFactor(key)
        first_shot(portal, page, "90-second-factor-setup")
        page.get_by_label("Code from the app").fill(fresh_code(factor))
        page.get_by_role("button", name="Turn on").click()
        expect(page.get_by_role("heading", name="Your second factor is on")).to_be_visible()
        first_shot(portal, page, "91-recovery-codes")
        codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem").all_inner_texts()
        factor.recovery_codes = [code.strip() for code in codes]
        page.get_by_role("link", name="I have saved my recovery codes, continue").click()
    else:
        first_shot(portal, page, "92-second-factor-code")
        page.get_by_label("Code", exact=True).fill(fresh_code(portal.second_factors[email], recovery=True))
        page.get_by_role("button", name="Continue").click()


def first_shot(portal: Portal, page: Page, name: str) -> None:
    """`shot`, once per run (the step runs at every sign-in)."""
    if name not in _TAKEN:
        _TAKEN.add(name)
        shot(portal, page, name)


_TAKEN: set[str] = set()


def fill_account(page: Page, org: str, contact: str, *, users: str = "1,000") -> None:
    """The Create New Member Accounts form for a customer who sees users purchased."""
    page.get_by_label("Organization name").fill(org)
    page.get_by_label("Customer", exact=True).check()
    page.get_by_role("radio", name="Yes").check()
    page.get_by_label("Users Purchased", exact=True).fill(users)
    page.get_by_label("Service end date").fill(END_DATE)
    page.get_by_label("Corporate contact email").fill(contact)


def create_account(page: Page, org: str, contact: str) -> str:
    """Create the account from the Links pane; returns the enrollment id (at Next Steps)."""
    page.get_by_role("link", name="Create New Member Accounts").click()
    fill_account(page, org, contact)
    page.get_by_role("button", name="Create Account").click()
    expect(page.get_by_role("heading", name="Next Steps")).to_be_visible()
    return page.url.rstrip("/").split("/")[-2]


def complete_form(page: Page, link: str, **changes: str) -> None:
    """The contact opens the link and submits the form."""
    page.goto(link)
    for label, value in {**CONTACT_FORM, **changes}.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("I accept the member terms").check()
    page.get_by_role("button", name="Submit the enrollment form").click()


CONTACT_FIELDS = {
    "corporate_contact_name": "Pat Example",
    "corporate_contact_phone": "+44 20 7946 0000",
    "technical_contact_name": "Tess Tech",
    "technical_contact_email": "tess@acme.example",
    "technical_contact_phone": "+44 20 7946 0001",
    "billing_contact_name": "Bill Ing",
    "billing_contact_email": "billing@acme.example",
    "address_line1": "1 High Street",
    "city": "London",
    "postal_code": "EC1A 1BB",
    "country": "United Kingdom",
    "accept_terms": "yes",
}


def submit_form_by_http(link: str, **changes: str) -> None:
    """The contact's submit without a browser, for tests whose subject is what comes after it."""
    response = httpx.post(link, data={**CONTACT_FIELDS, **changes}, follow_redirects=False)
    assert response.status_code == 303, response.text


ADMIN = "admin@provider.example"


class Api:
    """The HTTP API as staff, for the steps these tests are not about (enrolling, approving, metering)."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        url = portal.settings.effective_database_url
        if portal.stack.run(users.user_by_email(url, ADMIN)) is None:  # the portal is shared by every module
            portal.add_user(ADMIN, Role.admin)
        self.headers = {
            role: {"Authorization": f"Bearer {portal.stack.run(users.create_token(url, email))}"}
            for role, email in (("csm", CSM), ("reviewer", REVIEWER), ("admin", ADMIN))
        }
        self.client = httpx.Client(base_url=portal.base_url, timeout=30)

    def call(self, method: str, path: str, role: str = "csm", **kwargs: Any) -> Any:
        response = self.client.request(method, path, headers=self.headers[role], **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def approved(self, name: str, **fields: Any) -> tuple[str, str]:
        """(organization, account id) of a new enrollment whose contact completed the form and was approved."""
        org, contact = unique(name), contact_for(name)
        body = {
            "service_end_date": (datetime.now(UTC).date() + timedelta(days=400)).isoformat(),
            "member_type": "customer",
            "display_users_purchased": True,
            "users_purchased": 1000,
            "organization_name": org,
            "corporate_contact_email": contact,
            **fields,
        }
        enrollment_id = self.call("POST", "/api/enrollments", json=body)["id"]
        link = self.portal.form_link(contact)
        self.wait(
            lambda: "invited" in [e["event"] for e in self.call("GET", f"/api/enrollments/{enrollment_id}")["timeline"]]
        )
        submit_form_by_http(link)
        review = f"/api/enrollments/{enrollment_id}/review"
        self.call("POST", f"{review}/start", "reviewer", json={"audit_note": "checking"})
        account_id: str = self.call("POST", f"{review}/approve", "reviewer", json={"audit_note": "approved"})[
            "account_id"
        ]
        self.wait(lambda: self.client.get(f"/api/accounts/{account_id}", headers=self.headers["csm"]).is_success)
        return org, account_id

    @staticmethod
    def wait(check: Callable[[], bool], timeout: float = 20) -> None:
        """Until `check` holds: the worker runs apart from the API's answers."""
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.1)
