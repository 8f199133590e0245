"""Member administrators manage their own account's administrators, and no other account's: the API
(`/api/accounts/{id}/administrators`) and the portal page, on the security stack (SQLite, Temporal, worker)."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime

import pyotp

from domain.models import AccountStatus, AccountView, MemberType, RecordAccount, Role
from domain.settings import Settings
from store import second_factor, users
from store.accounts import record_account
from tests.integration.conftest import Stack
from tests.security.conftest import (
    CUSTOMER_ACCOUNT,
    MANUFACTURER_ACCOUNT,
    PASSWORD,
    RESELLER_ACCOUNT,
    Person,
    person,
)

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SOLD_ACCOUNT = "acct-sold"
"""A customer account the reseller sold: the reseller sees it, but does not manage its administrators."""
LAST_ONE = "This is the account's last active administrator and cannot be disabled"
FIELDS = {
    "user_id",
    "email",
    "name",
    "role",
    "account_id",
    "status",
    "invited_at",
    "invited_by",
    "invitation_expires_at",
    "activated_at",
    "last_signed_in_at",
    "second_factor",
    "bounce",
}


async def seed_accounts(settings: Settings) -> None:
    url = settings.effective_database_url
    rows = [
        (CUSTOMER_ACCOUNT, "Own Customer Ltd", MemberType.customer, None),
        (RESELLER_ACCOUNT, "Reseller Ltd", MemberType.reseller, None),
        (SOLD_ACCOUNT, "Sold Customer Ltd", MemberType.customer, RESELLER_ACCOUNT),
        (MANUFACTURER_ACCOUNT, "Token Works Ltd", MemberType.manufacturer, None),
    ]
    for account_id, name, member_type, reseller in rows:
        view = AccountView(
            id=account_id,
            enrollment_id=f"enr-{account_id}",
            status=AccountStatus.active,
            organization_name=name,
            member_type=member_type,
            service_start_date=date(2026, 1, 1),
            service_end_date=date(2030, 1, 1),
            display_users_purchased=False,
            users_purchased=None,
            corporate_contact_email=f"pat@{account_id}.example",
            reseller_account_id=reseller,
            created_at=AT,
        )
        await record_account(url, RecordAccount(view=view, event_key=f"{account_id}/activated"))


async def colleague(settings: Settings, email: str = "second@own-customer.example") -> Person:
    """A second, activated administrator of the customer's account (a customer user with a password)."""
    return await person(settings, Role.customer, email)


async def with_second_factor(settings: Settings, who: Person) -> None:
    url, key = settings.effective_database_url, settings.signing_key
    secret = await second_factor.setup_key(url, key, who.user_id)
    assert await second_factor.turn_on(url, key, who.user_id, pyotp.TOTP(secret).now())


def path(account_id: str, user_id: str | None = None, action: str | None = None) -> str:
    base = f"/api/accounts/{account_id}/administrators"
    return base if user_id is None else f"{base}/{user_id}/{action}"


async def listed(stack: Stack, who: Person, account_id: str = CUSTOMER_ACCOUNT) -> dict[str, dict[str, object]]:
    response = await stack.api.get(path(account_id), headers=who.auth)
    assert response.status_code == 200, response.text
    return {item["email"]: item for item in response.json()["items"]}


async def test_a_customer_administrator_lists_their_own_administrators_without_secrets(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    me = await person(stack.settings, Role.customer)
    other = await colleague(stack.settings)
    await with_second_factor(stack.settings, other)

    response = await stack.api.get(path(CUSTOMER_ACCOUNT), headers=me.auth)

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["email"] for item in items] == [me.email, other.email]
    assert all(set(item) == FIELDS for item in items)
    assert [item["status"] for item in items] == ["Active", "Active"]
    assert items[1]["second_factor"] is True
    assert "totp" not in response.text and "token" not in response.text.lower()


async def test_the_last_active_administrator_cannot_be_disabled_not_even_by_themselves(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    me = await person(stack.settings, Role.customer)

    refused = await stack.api.post(path(CUSTOMER_ACCOUNT, me.user_id, "disable"), headers=me.auth)

    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(LAST_ONE)
    assert (await listed(stack, me))[me.email]["status"] == "Active"
    staff = await person(stack.settings, Role.csm, "csm.two@provider.example")
    by_staff = await stack.api.post(path(CUSTOMER_ACCOUNT, me.user_id, "disable"), headers=staff.auth)
    assert by_staff.status_code == 409 and by_staff.json()["detail"].startswith(LAST_ONE)
    assert (await listed(stack, me))[me.email]["status"] == "Active"


async def test_disabling_an_administrator_stops_their_token_and_enabling_brings_it_back(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    me = await person(stack.settings, Role.customer)
    other = await colleague(stack.settings)

    disabled = await stack.api.post(path(CUSTOMER_ACCOUNT, other.user_id, "disable"), headers=me.auth)

    assert disabled.status_code == 200 and disabled.json()["status"] == "Disabled"
    assert (await stack.api.get(path(CUSTOMER_ACCOUNT), headers=other.auth)).status_code == 401
    # Now the only active one left, I cannot disable myself.
    assert (await stack.api.post(path(CUSTOMER_ACCOUNT, me.user_id, "disable"), headers=me.auth)).status_code == 409

    enabled = await stack.api.post(path(CUSTOMER_ACCOUNT, other.user_id, "enable"), headers=me.auth)

    assert enabled.status_code == 200 and enabled.json()["status"] == "Active"
    assert (await stack.api.get(path(CUSTOMER_ACCOUNT), headers=other.auth)).status_code == 200


async def test_a_locked_administrator_is_unlocked_and_a_second_factor_reset(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    url = stack.settings.effective_database_url
    me = await person(stack.settings, Role.customer)
    other = await colleague(stack.settings)
    for _ in range(users.FAILURES_PER_EMAIL):
        await users.count_attempt(url, other.email, None)
    await with_second_factor(stack.settings, other)
    assert (await listed(stack, me))[other.email]["status"] == "Locked"

    unlocked = await stack.api.post(path(CUSTOMER_ACCOUNT, other.user_id, "unlock"), headers=me.auth)
    reset = await stack.api.post(path(CUSTOMER_ACCOUNT, other.user_id, "reset-second-factor"), headers=me.auth)

    assert unlocked.status_code == 200 and unlocked.json()["status"] == "Active"
    assert reset.status_code == 200 and reset.json()["second_factor"] is False
    again = await stack.api.post(path(CUSTOMER_ACCOUNT, other.user_id, "reset-second-factor"), headers=me.auth)
    assert again.status_code == 409 and "no second factor" in again.json()["detail"]
    assert await users.sign_in(url, other.email, PASSWORD, source=None) is not None


async def test_no_member_administrator_reaches_another_accounts_administrators(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    customer = await person(stack.settings, Role.customer)
    reseller = await person(stack.settings, Role.reseller)
    manufacturer = await person(stack.settings, Role.manufacturer)
    sold = await person(stack.settings, Role.customer, "pat@sold.example")  # belongs to CUSTOMER_ACCOUNT
    unknown = (await stack.api.get(path("no-such-account"), headers=customer.auth)).json()

    # The reseller sees its customer's account, but does not manage its administrators.
    assert (await stack.api.get(f"/api/accounts/{SOLD_ACCOUNT}", headers=reseller.auth)).status_code == 200
    # The manufacturer sees its own account.
    assert (await stack.api.get(f"/api/accounts/{MANUFACTURER_ACCOUNT}", headers=manufacturer.auth)).status_code == 200
    attempts = [
        (customer, path(RESELLER_ACCOUNT)),
        (customer, path(MANUFACTURER_ACCOUNT)),
        (reseller, path(SOLD_ACCOUNT)),
        (reseller, path(CUSTOMER_ACCOUNT)),
        (manufacturer, path(CUSTOMER_ACCOUNT)),
    ]
    for who, target in attempts:
        for response in (
            await stack.api.get(target, headers=who.auth),
            await stack.api.post(f"{target}/{sold.user_id}/disable", headers=who.auth),
            await stack.api.post(f"{target}/{sold.user_id}/unlock", headers=who.auth),
            await stack.api.post(target, headers=who.auth, json={"email": "new@elsewhere.example"}),
            await stack.api.post(target, headers=who.auth, json={"email": "not an address", "role": "admin"}),
        ):
            assert response.status_code == 404, (who.role, target, response.text)
            assert response.json()["detail"] == unknown["detail"].replace("no-such-account", target.split("/")[3])
    # Through their own account's path, another account's user is no administrator of theirs.
    stranger = await person(stack.settings, Role.reseller, "pat@reseller.example")
    crossing = await stack.api.post(path(CUSTOMER_ACCOUNT, stranger.user_id, "disable"), headers=customer.auth)
    assert crossing.status_code == 404
    assert (await listed(stack, reseller, RESELLER_ACCOUNT))[stranger.email]["status"] == "Active"


async def test_staff_who_create_accounts_manage_any_account_and_reviewers_may_not(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    customer = await person(stack.settings, Role.customer)
    for role in (Role.admin, Role.csm, Role.sales):
        staff = await person(stack.settings, role)
        assert customer.email in await listed(stack, staff)
    reviewer = await person(stack.settings, Role.reviewer)
    refused = await stack.api.get(path(CUSTOMER_ACCOUNT), headers=reviewer.auth)
    assert refused.status_code == 403 and "may not manage the administrators" in refused.json()["detail"]


async def test_an_invitation_is_checked_sent_refused_for_an_address_in_use_and_resent(stack: Stack) -> None:
    await seed_accounts(stack.settings)
    me = await person(stack.settings, Role.customer)
    await person(stack.settings, Role.csm, "csm.two@provider.example")

    for body, field in (
        ({"email": "not an address"}, "email"),
        ({}, "email"),
        ({"email": "new@own-customer.example", "role": "admin"}, "role"),
    ):
        bad = await stack.api.post(path(CUSTOMER_ACCOUNT), headers=me.auth, json=body)
        assert bad.status_code == 422, bad.text
        assert [error["field"] for error in bad.json()["errors"]] == [field]

    invited = await stack.api.post(path(CUSTOMER_ACCOUNT), headers=me.auth, json={"email": "New@Own-Customer.example"})

    assert invited.status_code == 201, invited.text
    new = invited.json()
    assert set(new) == FIELDS
    assert (new["email"], new["status"], new["account_id"]) == ("new@own-customer.example", "Invited", CUSTOMER_ACCOUNT)
    for taken in (me.email, "csm.two@provider.example", "new@own-customer.example"):
        conflict = await stack.api.post(path(CUSTOMER_ACCOUNT), headers=me.auth, json={"email": taken})
        assert conflict.status_code == 409, conflict.text

    resent = await stack.api.post(path(CUSTOMER_ACCOUNT, new["user_id"], "resend"), headers=me.auth)

    assert resent.status_code == 200, resent.text
    assert resent.json()["status"] == "Invited"
    # An invited administrator is not an active one: I remain the last, and cannot disable myself.
    assert (await stack.api.post(path(CUSTOMER_ACCOUNT, me.user_id, "disable"), headers=me.auth)).status_code == 409


async def test_the_page_lists_the_administrators_recommends_two_and_says_why_a_change_is_refused(
    stack: Stack,
) -> None:
    await seed_accounts(stack.settings)
    me = await person(stack.settings, Role.customer)
    page = await stack.api.get("/account/administrators", headers=me.session)

    assert page.status_code == 200
    assert me.email in page.text and "We recommend at least two" in page.text
    assert 'name="csrf_token"' in page.text and '<label for="email">' in page.text

    refused = await stack.api.post(
        f"/accounts/{CUSTOMER_ACCOUNT}/administrators/{me.user_id}/disable",
        headers=me.session,
        data={"csrf_token": me.csrf},
    )

    assert refused.status_code == 409
    assert LAST_ONE in html.unescape(refused.text) and 'role="alert"' in refused.text

    other = await colleague(stack.settings)
    done = await stack.api.post(
        f"/accounts/{CUSTOMER_ACCOUNT}/administrators/{other.user_id}/disable",
        headers=me.session,
        data={"csrf_token": me.csrf},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/account/administrators?done=disabled&who={other.user_id}"
    after = await stack.api.get(done.headers["location"], headers=me.session)
    assert f"{other.email} is disabled" in after.text

    staff = await person(stack.settings, Role.csm, "csm.two@provider.example")
    account_page = await stack.api.get(f"/accounts/{CUSTOMER_ACCOUNT}", headers=staff.session)
    assert f'href="/accounts/{CUSTOMER_ACCOUNT}/administrators"' in account_page.text
    staff_page = await stack.api.get(f"/accounts/{CUSTOMER_ACCOUNT}/administrators", headers=staff.session)
    assert staff_page.status_code == 200 and me.email in staff_page.text
    reseller = await person(stack.settings, Role.reseller)
    elsewhere = await stack.api.get(f"/accounts/{CUSTOMER_ACCOUNT}/administrators", headers=reseller.session)
    assert elsewhere.status_code == 404 and me.email not in elsewhere.text
