"""The portal's credential pages over HTTP, as real users of each kind: who reaches which manufacturer's batches,
what a refused or mistyped upload answers (the rule, the field, and never the passphrase typed), a batch whose
whole file is rejected (its reason, no refresh, the CSV's file-level row), and the check of a credential one may
not see. The browser test (tests/browser/credentials_test.py) walks the manufacturer's happy path."""

from __future__ import annotations

import asyncio
import base64
import csv
import html
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pyotp
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from domain.models import AccountStatus, AccountView, MemberType, RecordAccount, Role
from domain.settings import Settings
from starter.dev.mailsink import MailSink
from store import users
from store.accounts import record_account
from tests.credential_batches import PASSPHRASE, keys_value, make_pskc
from tests.integration.conftest import Stack
from tests.security.administrators_test import seed_accounts
from tests.security.conftest import (
    CUSTOMER_ACCOUNT,
    MANUFACTURER_ACCOUNT,
    PASSWORD,
    Person,
    person,
    signed_in_session,
    sqlite_stack,
    turn_on_second_factor,
)

OTHER_MANUFACTURER = "acct-manufacturer-2"
SECRETS_KEY = f"p1:{keys_value('p1')}"
BATCH_URL = re.compile(r"^/accounts/[\w-]+/credential-batches/(\w+)\?done=(uploaded|again)$")


@dataclass
class Env:
    stack: Stack
    manufacturer: Person
    other: Person
    csm: Person
    customer: Person
    reseller: Person

    @property
    def api(self) -> httpx.AsyncClient:
        return self.stack.api


@pytest_asyncio.fixture
async def env(
    tmp_path: Path, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Env]:
    async with sqlite_stack(tmp_path, temporal, mail_sink, task_queue, secrets_key=SECRETS_KEY) as stack:
        settings = stack.settings
        await seed_accounts(settings)
        view = AccountView(
            id=OTHER_MANUFACTURER,
            enrollment_id=f"enr-{OTHER_MANUFACTURER}",
            status=AccountStatus.active,
            organization_name="Other Tokens Ltd",
            member_type=MemberType.manufacturer,
            service_start_date=date(2026, 1, 1),
            service_end_date=date(2030, 1, 1),
            display_users_purchased=False,
            users_purchased=None,
            corporate_contact_email="pat@other-tokens.example",
            created_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
        await record_account(settings.effective_database_url, RecordAccount(view=view, event_key="m2/activated"))
        yield Env(
            stack,
            await person(settings, Role.manufacturer),
            await administrator_of(settings, OTHER_MANUFACTURER, "admin@other-tokens.example"),
            await person(settings, Role.csm, "csm.two@provider.example"),
            await person(settings, Role.customer),
            await person(settings, Role.reseller),
        )


async def administrator_of(settings: Settings, account_id: str, email: str) -> Person:
    """A signed-in manufacturer's administrator of `account_id` (not the seeded one)."""
    url = settings.effective_database_url
    user = await users.add_user(url, email=email, role=Role.manufacturer, password=PASSWORD, account_id=account_id)
    key = await turn_on_second_factor(settings, user.id)
    cookie, csrf = await signed_in_session(settings, user.id)
    return Person(Role.manufacturer, email, user.id, await users.create_token(url, email), cookie, csrf, key)


async def upload(
    env: Env, who: Person, account_id: str, data: bytes, *, passphrase: str | None = PASSPHRASE
) -> httpx.Response:
    env.api.cookies.clear()
    form = {"csrf_token": who.csrf, "decryption": "passphrase", "decryption_value": passphrase or ""}
    return await env.api.post(
        f"/accounts/{account_id}/credential-batches",
        headers=who.session,
        data=form,
        files={"file": ("batch.xml", data, "application/xml")},
    )


async def get(env: Env, who: Person, path: str) -> httpx.Response:
    env.api.cookies.clear()
    return await env.api.get(path, headers=who.session)


async def ended(env: Env, who: Person, path: str) -> httpx.Response:
    """The batch's page once it no longer refreshes itself."""
    for _ in range(200):
        page = await get(env, who, path)
        if 'http-equiv="refresh"' not in page.text:
            return page
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} still importing")


async def test_a_manufacturer_sees_its_own_batches_alone(env: Env) -> None:
    made = make_pskc(5, prefix="OWN")
    answer = await upload(env, env.manufacturer, MANUFACTURER_ACCOUNT, made.data)
    assert answer.status_code == 303, answer.text
    found = BATCH_URL.match(answer.headers["location"])
    assert found is not None and found.group(2) == "uploaded"
    batch = f"/accounts/{MANUFACTURER_ACCOUNT}/credential-batches/{found.group(1)}"
    page = await ended(env, env.manufacturer, batch)
    assert "Imported" in page.text and PASSPHRASE not in page.text

    # Another manufacturer's administrator: the 404 of an unknown account, everywhere; its upload too.
    for path in (f"/accounts/{MANUFACTURER_ACCOUNT}/credentials", batch, f"{batch}/report.csv"):
        assert (await get(env, env.other, path)).status_code == 404, path
    assert (await upload(env, env.other, MANUFACTURER_ACCOUNT, made.data)).status_code == 404
    # Staff see it; a customer (nothing assigned yet) sees no batch; a reseller's user has no credential pages.
    assert (await get(env, env.csm, batch)).status_code == 200
    assert (await get(env, env.customer, batch)).status_code == 404
    refused = await get(env, env.reseller, f"/accounts/{MANUFACTURER_ACCOUNT}/credentials")
    assert refused.status_code == 303 and not refused.headers["location"].startswith("/signin")


async def test_a_refused_or_mistyped_upload_names_why_and_never_echoes_the_passphrase(env: Env) -> None:
    made = make_pskc(3, prefix="BAD")
    # Staff may upload only to a manufacturer's account: the rule, on the page.
    refused = await upload(env, env.csm, CUSTOMER_ACCOUNT, made.data)
    assert refused.status_code == 403
    assert "uploaded to a manufacturer&#39;s member account only" in refused.text
    # No file, no passphrase: each field named.
    env.api.cookies.clear()
    empty = await env.api.post(
        f"/accounts/{MANUFACTURER_ACCOUNT}/credential-batches",
        headers=env.manufacturer.session,
        data={"csrf_token": env.manufacturer.csrf, "decryption": "passphrase", "decryption_value": ""},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert empty.status_code == 422
    assert "PSKC file is required" in html.unescape(empty.text)
    assert "Key or passphrase is required" in html.unescape(empty.text)
    # Not PSKC: the file's field says so; the passphrase typed is not in the page.
    typed = "a passphrase that must never be shown"
    wrong = await upload(env, env.manufacturer, MANUFACTURER_ACCOUNT, b"<html>not pskc</html>", passphrase=typed)
    assert wrong.status_code == 422
    assert "PSKC file was refused: The file is not PSKC" in html.unescape(wrong.text)
    assert typed not in wrong.text
    # A form without its CSRF token is refused before anything is read.
    env.api.cookies.clear()
    forged = await env.api.post(
        f"/accounts/{MANUFACTURER_ACCOUNT}/credential-batches",
        headers=env.manufacturer.session,
        data={"decryption": "passphrase", "decryption_value": PASSPHRASE},
        files={"file": ("batch.xml", made.data, "application/xml")},
    )
    assert forged.status_code == 403 and "This form has expired" in forged.text


async def test_a_wrong_passphrase_rejects_the_batch_with_one_reason_in_page_and_csv(env: Env) -> None:
    made = make_pskc(4, prefix="WRONG")
    answer = await upload(env, env.manufacturer, MANUFACTURER_ACCOUNT, made.data, passphrase="not the passphrase")
    assert answer.status_code == 303, answer.text
    found = BATCH_URL.match(answer.headers["location"])
    assert found is not None
    batch = f"/accounts/{MANUFACTURER_ACCOUNT}/credential-batches/{found.group(1)}"
    page = await ended(env, env.manufacturer, batch)
    assert "The whole batch was rejected" in page.text
    assert "not the passphrase" not in page.text
    report = await get(env, env.manufacturer, f"{batch}/report.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert len(rows) == 1 and rows[0]["status"] == "Rejected" and rows[0]["key_index"] == ""
    assert rows[0]["reason"] and rows[0]["reason"] in html.unescape(page.text)


async def test_the_check_page_answers_only_for_a_credential_one_may_see(env: Env) -> None:
    made = make_pskc(2, prefix="MINE")
    answer = await upload(env, env.manufacturer, MANUFACTURER_ACCOUNT, made.data)
    found = BATCH_URL.match(answer.headers["location"])
    assert found is not None
    await ended(env, env.manufacturer, f"/accounts/{MANUFACTURER_ACCOUNT}/credential-batches/{found.group(1)}")

    async def check(who: Person, code: str) -> httpx.Response:
        env.api.cookies.clear()
        form = {"csrf_token": who.csrf, "credential_id": "MINE00000000", "code": code}
        return await env.api.post("/credentials/check", headers=who.session, data=form)

    other = await check(env.other, "123456")
    assert other.status_code == 404 and "is not a credential you may check" in other.text
    letters = await check(env.manufacturer, "12ab56")
    assert letters.status_code == 422 and "Code must be digits only" in letters.text
    hotp = pyotp.HOTP(base64.b32encode(made.secrets["MINE00000000"]).decode())
    window = {hotp.at(counter) for counter in range(11)}
    wrong = next(code for code in (f"{n:06d}" for n in range(10**6)) if code not in window)
    answer = await check(env.manufacturer, wrong)
    assert answer.status_code == 200 and "<h2>Not valid</h2>" in answer.text
    answer = await check(env.manufacturer, hotp.at(0))
    assert answer.status_code == 200 and "<h2>Valid</h2>" in answer.text
