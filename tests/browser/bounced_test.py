"""A bounced invitation in the portal: the Bounced marker in the table and on the enrollment, with what to do."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from domain.models import Role
from store import outbox, users
from tests.browser.stack import CSM, Portal
from tests.browser.steps import contact_for, create_account, shot, sign_in, unique


def test_a_bounced_invitation_shows_in_the_table_and_on_its_page(portal: Portal, page: Page) -> None:
    sign_in(page, CSM)
    org, contact = unique("Bouncy Castles Ltd"), contact_for("bouncy")
    enrollment_id = create_account(page, org, contact)
    invitation = portal.wait_for_mail(contact, "Complete the member account enrollment")
    portal.add_user("hooks@provider.example", Role.mail_events)
    token = portal.stack.run(users.create_token(portal.settings.effective_database_url, "hooks@provider.example"))
    report = {
        "message_id": invitation.message_id,
        "event": "bounced",
        "recipient": contact,
        "reason": "550 5.1.1 User unknown",
    }
    answer = httpx.post(
        f"{portal.base_url}/api/mail-events", json=report, headers={"Authorization": f"Bearer {token}"}, timeout=20
    )
    assert answer.status_code == 200, answer.text

    page.goto(f"/enrollments?q={org}")
    row = page.get_by_role("row").filter(has_text=org)
    expect(row).to_contain_text("New")
    expect(row).to_contain_text("Bounced")
    shot(portal, page, "38-bounced-in-table")
    page.goto(f"/enrollments/{enrollment_id}")
    expect(page.get_by_role("status")).to_contain_text("The invitation bounced")
    expect(page.get_by_role("status")).to_contain_text("550 5.1.1 User unknown")
    shot(portal, page, "39-bounced-detail")


def test_admins_see_since_when_mail_has_been_failing(portal: Portal, page: Page) -> None:
    url = portal.settings.effective_database_url
    portal.add_user("ops@provider.example", Role.admin)
    portal.stack.run(outbox.mail_failing(url, "554 5.7.1 Relay access denied"))
    try:
        sign_in(page, "ops@provider.example")
        banner = page.get_by_role("status").filter(has_text="Mail failing since")
        expect(banner).to_contain_text("554 5.7.1 Relay access denied")
        shot(portal, page, "58-mail-failing-banner")
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, CSM)
        expect(page.get_by_role("heading", name="Member Account Enrollments")).to_be_visible()
        expect(page.get_by_text("Mail failing since")).to_have_count(0)
    finally:
        portal.stack.run(outbox.mail_accepted(url))
