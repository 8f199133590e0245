"""Portal sessions and status messages against the store alone (no Temporal): a disabled user's session is
treated as signed out, and a `?done=…&id=…` message names only a record the viewer may see. (Sessions and the
second factor: second_factor_test.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest_asyncio

from domain.models import (
    AccountStatus,
    AccountView,
    EnrollmentStatus,
    EnrollmentView,
    MemberType,
    RecordAccount,
    RecordEnrollment,
    Role,
    TimelineEvent,
)
from domain.settings import Settings
from starter.app import create_app
from store import users
from store.accounts import record_account
from store.enrollments import record_enrollment
from tests.security.conftest import CUSTOMER_ACCOUNT, PASSWORD, signed_in_session, turn_on_second_factor
from tests.support import make_settings

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ENROLLMENT = "0123456789abcdef"
ENROLLED_NAME = "Quiet Widgets Ltd"
OWN_NAME = "Own Customer Ltd"
OTHER_ACCOUNT = "acct-other"
OTHER_NAME = "Someone Else Ltd"


def portal_settings(tmp_path: Path, database_url: str) -> Settings:
    """The API's settings; nothing here talks to Temporal or SMTP."""
    return make_settings(
        tmp_path, database_url=database_url, temporal_address="127.0.0.1:1", smtp_port=1, task_queue="unused"
    )


async def seed(url: str) -> None:
    """An enrollment, the customer user's own account, and an account that is none of theirs."""
    enrollment = EnrollmentView(
        id=ENROLLMENT,
        status=EnrollmentStatus.new,
        service_end_date=date(2030, 1, 1),
        member_type=MemberType.customer,
        display_users_purchased=True,
        users_purchased=100,
        organization_name=ENROLLED_NAME,
        corporate_contact_email="pat@quiet.example",
        reseller_account_id=None,
        created_at=AT,
        created_by="csm@provider.example",
    )
    created = TimelineEvent(at=AT, event="created", actor="csm@provider.example")
    await record_enrollment(url, RecordEnrollment(view=enrollment, event_key=f"{ENROLLMENT}/created", event=created))
    for account_id, name in ((CUSTOMER_ACCOUNT, OWN_NAME), (OTHER_ACCOUNT, OTHER_NAME)):
        account = AccountView(
            id=account_id,
            enrollment_id=f"enr-{account_id}",
            status=AccountStatus.active,
            organization_name=name,
            member_type=MemberType.customer,
            service_start_date=date(2026, 1, 1),
            service_end_date=date(2030, 1, 1),
            display_users_purchased=False,
            users_purchased=None,
            corporate_contact_email="pat@customer.example",
            created_at=AT,
        )
        await record_account(url, RecordAccount(view=account, event_key=f"{account_id}/activated"))


@pytest_asyncio.fixture
async def portal(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = portal_settings(tmp_path, database_url)
    await seed(database_url)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield settings, client


async def signed_in(settings: Settings, role: Role, email: str) -> str:
    """A new user of `role` and the `Cookie` header of their signed-in session."""
    account = CUSTOMER_ACCOUNT if role == Role.customer else None
    user = await users.add_user(
        settings.effective_database_url, email=email, role=role, password=PASSWORD, account_id=account
    )
    await turn_on_second_factor(settings, user.id)
    return (await signed_in_session(settings, user.id))[0]


async def test_a_disabled_users_session_is_signed_out_and_gets_the_sign_in_form(
    portal: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = portal
    cookie = await signed_in(settings, Role.csm, "gone@provider.example")
    client.cookies.set(*cookie.split("=", 1))
    assert (await client.get("/enrollments")).status_code == 200
    await users.set_disabled(settings.effective_database_url, "gone@provider.example", True)

    landed = await client.get("/enrollments", follow_redirects=True)  # used to bounce /signin ⇄ /enrollments
    assert landed.status_code == 200 and landed.url.path == "/signin"
    assert 'name="password"' in landed.text
    # The stale session was replaced by a signed-out one: enabling the user again does not revive this browser.
    await users.set_disabled(settings.effective_database_url, "gone@provider.example", False)
    again = await client.get("/enrollments")
    assert again.status_code == 303 and again.headers["location"].startswith("/signin")


async def test_a_status_message_names_an_enrollment_only_to_staff(portal: tuple[Settings, httpx.AsyncClient]) -> None:
    settings, client = portal
    anonymous = await client.get(f"/signin?done=created&id={ENROLLMENT}")
    assert anonymous.status_code == 200
    assert ENROLLED_NAME not in anonymous.text
    assert "member account created" in anonymous.text  # the fixed sentence, without the name

    staff = {"Cookie": await signed_in(settings, Role.csm, "csm.user@provider.example")}
    shown = await client.get(f"/enrollments?done=created&id={ENROLLMENT}", headers=staff)
    assert shown.status_code == 200 and f"{ENROLLED_NAME}: member account created" in shown.text


async def test_a_status_message_never_names_another_customers_account(
    portal: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = portal
    customer = {"Cookie": await signed_in(settings, Role.customer, "pat@customer.example")}
    peek = await client.get(f"/accounts/{CUSTOMER_ACCOUNT}?done=suspended&id={OTHER_ACCOUNT}", headers=customer)
    assert peek.status_code == 200 and OWN_NAME in peek.text
    assert OTHER_NAME not in peek.text

    own = await client.get(f"/accounts/{CUSTOMER_ACCOUNT}?done=suspended&id={CUSTOMER_ACCOUNT}", headers=customer)
    assert f"{OWN_NAME}: suspended" in own.text

    staff = {"Cookie": await signed_in(settings, Role.csm, "csm.user@provider.example")}
    shown = await client.get(f"/accounts/{CUSTOMER_ACCOUNT}?done=suspended&id={OTHER_ACCOUNT}", headers=staff)
    assert f"{OTHER_NAME}: suspended" in shown.text
