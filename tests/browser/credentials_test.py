"""A manufacturer's administrator in Chromium, with JavaScript off: signs in with the second factor, uploads a
PSKC file made here with python-pskc (PBKDF2, one key with a secret that is too short), watches the batch's page
refresh itself until the import ends (the progress bar), reads the report (the one rejected key, its serial and
reason; the CSV), finds the keys in the inventory, and checks a code computed from one of the file's secrets:
valid once, then not valid. Staff reach the same page from the account, and assign credentials to a customer,
who then sees them."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from domain.models import Role
from tests.browser.stack import CSM, PASSWORD, Portal
from tests.browser.steps import Api, pass_second_factor, shot, sign_in
from tests.credential_batches import PASSPHRASE, make_pskc

KEYS = 2500
SHORT = 7
"""The index of the key whose secret is 64 bits: rejected, alone."""


def sign_in_home(page: Page, email: str) -> None:
    page.goto("/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    pass_second_factor(page, email)


def no_script_page(browser: Browser, portal: Portal) -> tuple[BrowserContext, Page]:
    """A browser with JavaScript off: the portal's pages, the upload and the progress work without it."""
    context = browser.new_context(
        base_url=portal.base_url, viewport={"width": 1280, "height": 860}, java_script_enabled=False
    )
    return context, context.new_page()


@pytest.fixture(scope="module")
def api(portal: Portal) -> Iterator[Api]:
    made = Api(portal)
    yield made
    made.client.close()


def test_a_manufacturer_uploads_a_batch_follows_its_import_and_checks_a_code(
    portal: Portal, browser: Browser, api: Api, tmp_path: Path
) -> None:
    org, account_id = api.approved(
        "Acme Tokens", member_type="manufacturer", display_users_purchased=False, users_purchased=None
    )
    email = f"tokens-{account_id}@acmetokens.example"
    portal.add_user(email, Role.manufacturer, account_id=account_id)
    prefix = f"AT{account_id[:4].upper()}"
    made = make_pskc(KEYS, prefix=prefix, short=(SHORT,))
    pskc_file = tmp_path / "batch-2024-07.pskc.xml"
    pskc_file.write_bytes(made.data)

    context, page = no_script_page(browser, portal)
    sign_in_home(page, email)
    links = page.get_by_role("complementary", name="Links")
    links.get_by_role("link", name="Credentials").click()
    expect(page).to_have_url(re.compile(f"/accounts/{account_id}/credentials$"))
    expect(page.get_by_role("heading", name=org)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("No batch uploaded yet.")

    # The form: a file and the Decryption choice, each labelled; a missing passphrase is named, not guessed.
    page.get_by_label("PSKC file").set_input_files(str(pskc_file))
    page.get_by_label("Passphrase", exact=True).check()
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_role("alert")).to_contain_text("Key or passphrase is required")
    expect(page.get_by_label("Key or passphrase")).to_have_value("")
    page.get_by_label("PSKC file").set_input_files(str(pskc_file))
    page.get_by_label("Key or passphrase").fill(PASSPHRASE)
    shot(portal, page, "95-credentials-upload-form")
    page.get_by_role("button", name="Upload and import").click()

    # The batch's page: its status message, then its progress bar, which the page's refresh moves on.
    expect(page).to_have_url(re.compile(rf"/accounts/{account_id}/credential-batches/\w+\?done=uploaded$"))
    batch_url = page.url.split("?")[0]
    expect(page.get_by_role("status").first).to_contain_text("batch-2024-07.pskc.xml: uploaded")
    progress = page.locator("progress#import-progress")
    expect(progress).to_be_visible()
    if page.locator(".title-row .status").inner_text() == "Importing":
        assert page.locator('meta[http-equiv="refresh"]').count() == 1
        shot(portal, page, "96-credentials-batch-importing")
        with contextlib.suppress(AssertionError):  # a shot of the bar on its way, if the import is slow enough
            expect(page.locator(".progress-text")).to_contain_text(" keys processed (", timeout=10_000)
            shot(portal, page, "96b-credentials-batch-progress")
    expect(page.get_by_role("heading", name="Report")).to_be_visible(timeout=90_000)
    expect(page.locator(".title-row .status")).to_have_text("Imported")
    assert page.locator('meta[http-equiv="refresh"]').count() == 0  # it stops refreshing
    expect(progress).to_have_attribute("value", str(KEYS))
    expect(progress).to_have_attribute("max", str(KEYS))
    figures = page.locator("dl.figures")
    expect(figures).to_contain_text(
        re.compile(rf"Keys in the file\s*{KEYS:,}\s*Imported\s*{KEYS - 1:,}\s*Rejected keys\s*1\b")
    )
    rejected = page.get_by_role("table", name=re.compile("Rejected keys"))
    expect(rejected.get_by_role("row")).to_have_count(2)
    row = rejected.get_by_role("row").nth(1)
    expect(row).to_contain_text(f"{prefix}{SHORT:08d}")
    expect(row).to_contain_text("secret is 64 bits: at least 128 bits are required")
    shot(portal, page, "97-credentials-batch-report")

    # The report as CSV, through the portal's own download.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the report (CSV)").click()
    report = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(r["key_index"], r["serial"]) for r in report] == [(str(SHORT), f"{prefix}{SHORT:08d}")]
    assert "128 bits" in report[0]["reason"]

    # The same file again opens its batch: nothing is imported twice.
    page.goto(f"/accounts/{account_id}/credentials")
    page.get_by_label("PSKC file").set_input_files(str(pskc_file))
    page.get_by_label("Passphrase", exact=True).check()
    page.get_by_label("Key or passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Upload and import").click()
    expect(page).to_have_url(re.compile(r"\?done=again$"))
    assert page.url.split("?")[0] == batch_url
    expect(page.get_by_role("status").first).to_contain_text("was uploaded before")

    # The inventory: every accepted key, newest first in pages; found by its serial.
    page.get_by_role("link", name="See the inventory").click()
    inventory = page.get_by_role("table", name=re.compile("Credentials"))
    expect(inventory.get_by_role("row")).to_have_count(51)  # a page of 50, and the heading row
    expect(page.get_by_role("link", name="Next →")).to_be_visible()
    hotp_serial = f"{prefix}{3:08d}"
    page.get_by_label("Credential id").fill(hotp_serial)
    page.get_by_label("State").select_option("Available")
    page.get_by_role("button", name="Find").click()
    expect(inventory.get_by_role("row")).to_have_count(2)
    cells = inventory.get_by_role("row").nth(1)
    expect(cells).to_contain_text(hotp_serial)
    expect(cells).to_contain_text("HOTP")
    expect(cells).to_contain_text("Available")
    shot(portal, page, "98-credentials-inventory")

    # A code computed from the file's secret checks valid once, then not valid.
    code = pyotp.HOTP(base64.b32encode(made.secrets[hotp_serial]).decode()).at(0)
    links.get_by_role("link", name="Check a credential").click()
    page.get_by_label("Credential id").fill(hotp_serial)
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("status")).to_contain_text("Valid")
    shot(portal, page, "99-credentials-check-valid")
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("alert")).to_contain_text("Not valid")
    shot(portal, page, "99b-credentials-check-not-valid")
    context.close()

    # Staff: from the account to its credentials; assign 2 to a customer, whose administrator then sees them.
    customer_org, customer_id = api.approved("Beacon Retail")
    customer_email = f"admin-{customer_id}@beacon.example"
    portal.add_user(customer_email, Role.customer, account_id=customer_id)
    staff_context, staff = no_script_page(browser, portal)
    sign_in(staff, CSM, start=f"/accounts/{account_id}")
    staff.get_by_role("navigation", name="Member account details").get_by_role("link", name="Credentials").click()
    expect(staff).to_have_url(re.compile(f"/accounts/{account_id}/credentials$"))
    staff.get_by_label("Customer account id").fill(customer_id)
    staff.get_by_label("Number of credentials").fill("2")
    staff.get_by_role("button", name="Assign").click()
    expect(staff.get_by_role("status").first).to_have_text(f"2 credentials assigned to {customer_org}.")
    staff.get_by_label("State").select_option("Assigned")
    staff.get_by_role("button", name="Find").click()
    expect(staff.get_by_role("table", name=re.compile("Credentials")).get_by_role("row")).to_have_count(3)
    shot(portal, staff, "99c-credentials-staff-assigned")
    staff_context.close()

    customer_context, customer = no_script_page(browser, portal)
    sign_in_home(customer, customer_email)
    customer.get_by_role("complementary", name="Links").get_by_role("link", name="Credentials").click()
    expect(customer.get_by_role("heading", name=f"Credentials assigned to {customer_org}")).to_be_visible()
    expect(customer.get_by_role("table", name=re.compile("Credentials")).get_by_role("row")).to_have_count(3)
    expect(customer.get_by_role("button", name="Upload and import")).to_have_count(0)
    assert customer.goto(batch_url) is not None
    expect(customer.get_by_role("heading", name="Not found")).to_be_visible()
    customer_context.close()
