"""The member's side in Chromium: approval makes the contacts administrators; the corporate contact activates
from the dev mailbox, sets up the second factor, saves the recovery codes, signs out and back in with a fresh
code, sees the Account Summary and invites a second administrator."""

from __future__ import annotations

import re

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.browser.stack import CSM, REVIEWER, Portal
from tests.browser.steps import (
    SecondFactor,
    complete_form,
    contact_for,
    create_account,
    fresh_code,
    shot,
    sign_in,
    unique,
)

INVITATION = "You are invited to administer"
CONTACT_PASSWORD = "plum orchard lantern 47 violet"
ACTIVATION_LINK = re.compile(r"https?://\S+/activate/[A-Za-z0-9_-]+")


def activation_link(portal: Portal, address: str) -> str:
    message = portal.wait_for_mail(address, INVITATION, timeout=30)
    match = ACTIVATION_LINK.search(message.text or "")
    assert match, message.text
    return match.group(0)


def approve(page: Page, org: str) -> None:
    """The reviewer takes the submitted enrollment from the queue and approves it."""
    sign_in(page, REVIEWER, start="/review")
    page.get_by_role("table", name="Pending Review, oldest first").get_by_role("link", name=org).click()
    page.get_by_role("button", name="Start review").click()
    page.get_by_label("Audit note", exact=False).first.fill("documents checked")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text(f"{org}: approved")


def test_the_contacts_activate_set_up_a_second_factor_and_manage_their_account(
    portal: Portal, page: Page, browser: Browser
) -> None:
    org = unique("Globex Corporation")
    contact, technical = contact_for(org), contact_for(org)
    sign_in(page, CSM)
    create_account(page, org, contact)

    contact_context = browser.new_context(base_url=portal.base_url, viewport={"width": 1280, "height": 860})
    member = contact_context.new_page()
    complete_form(member, portal.form_link(contact), **{"Technical contact's email": technical})
    expect(member.get_by_role("heading", name="Thank you")).to_be_visible()

    reviewer_context = browser.new_context(base_url=portal.base_url)
    approve(reviewer_context.new_page(), org)
    reviewer_context.close()

    # Both contacts are invited, each with a link of their own.
    link = activation_link(portal, contact)
    assert activation_link(portal, technical) != link

    # A scanner (or the contact, twice) opening the link does not use it up.
    member.goto(link)
    member.goto(link)
    expect(member.get_by_role("heading", name="Activate your administrator access")).to_be_visible()
    expect(member.get_by_role("main")).to_contain_text(org)
    shot(portal, member, "70-activate")
    member.get_by_label("New password", exact=True).fill("password1234")
    member.get_by_label("New password again").fill("password1234")
    member.get_by_role("button", name="Activate").click()
    expect(member.get_by_role("main")).to_contain_text("breached")
    member.get_by_label("New password", exact=True).fill(CONTACT_PASSWORD)
    member.get_by_label("New password again").fill(CONTACT_PASSWORD)
    member.get_by_role("button", name="Activate").click()

    # The second factor: the key as text beside the QR code; a code from it turns it on.
    expect(member).to_have_url(re.compile(r"/me/second-factor"))
    expect(member.locator("svg")).to_have_count(1)
    shot(portal, member, "71-second-factor-setup")
    factor = SecondFactor(member.locator("#setup-key").inner_text().replace(" ", ""))
    member.get_by_label("Code from the app").fill(pyotp.TOTP(factor.key).at(0))  # a code of 1970
    member.get_by_role("button", name="Turn on").click()
    expect(member.get_by_role("main")).to_contain_text("That code does not match the key")
    member.get_by_label("Code from the app").fill(fresh_code(factor))
    member.get_by_role("button", name="Turn on").click()
    expect(member.get_by_role("heading", name="Your second factor is on")).to_be_visible()
    codes = member.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    shot(portal, member, "72-recovery-codes")
    member.get_by_role("link", name="I have saved my recovery codes, continue").click()
    expect(member.get_by_role("heading", name=org)).to_be_visible()

    # Signing out and in again asks for a fresh code after the password.
    member.get_by_role("button", name="Sign out").click()
    member.goto("/")
    member.get_by_label("Email address").fill(contact)
    member.get_by_label("Password").fill(CONTACT_PASSWORD)
    member.get_by_role("button", name="Sign in").click()
    expect(member).to_have_url(re.compile(r"/signin/second-factor"))
    shot(portal, member, "73-signin-code")
    member.get_by_label("Code", exact=True).fill(fresh_code(factor))
    member.get_by_role("button", name="Continue").click()

    # Home is their Account Summary; their administrators: the technical contact is still Invited.
    expect(member.get_by_role("heading", name=org)).to_be_visible()
    shot(portal, member, "74-member-account-summary")
    member.get_by_role("complementary", name="Links").get_by_role("link", name="Administrators").click()
    rows = member.get_by_role("row")
    expect(rows.filter(has_text=contact)).to_contain_text("Active")
    expect(rows.filter(has_text=technical)).to_contain_text("Invited")

    # A second administrator of their own choosing, invited from the page.
    another = contact_for(org)
    member.get_by_label("Email address").fill(another)
    member.get_by_role("button", name="Send invitation", exact=True).click()
    expect(member.get_by_role("status").filter(has_text="An invitation is on its way")).to_be_visible()
    expect(member.get_by_role("row").filter(has_text=another)).to_contain_text("Invited")
    shot(portal, member, "75-administrators")
    assert activation_link(portal, another)
    contact_context.close()
