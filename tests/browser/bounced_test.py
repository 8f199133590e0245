"""A bounced invitation in the portal: the Bounced marker in the table and on the enrollment, with what to do."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from domain.models import Role
from store import users
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
