"""A user's own API tokens, over HTTP (the app on httpx's ASGI transport; the store on SQLite and PostgreSQL):
`/api/tokens` and the portal's `/me/tokens`. A token is made only for a current code from the second factor
(never a recovery code, never a replayed one) and shown once; nobody lists, sees or revokes another user's
tokens (404, like an unknown id); each token is throttled on its own; and a reseller's token authenticates as
that reseller user, with its account and every scoped rule."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest_asyncio
from fastapi import FastAPI

from domain.models import MemberType, RecordAccount, Role
from domain.settings import Settings
from starter.app import create_app
from starter.portal.ratelimit import RateLimit
from starter.portal.session import cookie_header, session_for
from starter.services.tokens import CODE_FORMAT, CODE_REFUSED, CODE_REQUIRED, MAX_LIVE_TOKENS, NO_SECOND_FACTOR
from store import second_factor, users
from store.accounts import record_account
from store.tables import User
from tests.security.second_factor_test import Authenticator, steady
from tests.support import account_view, make_settings

PASSWORD = "a long enough password"
RESELLER = "acct-r1"
CUSTOMER = "acct-c1"
OTHER_RESELLER = "acct-r2"
OTHER_CUSTOMER = "acct-c2"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r"enr_[A-Za-z0-9_-]{20,}")


@dataclass
class Member:
    """A user with a second factor turned on: their phone, a first token (as `enroll tokens create` makes), and
    a fully signed-in portal session."""

    user: User
    phone: Authenticator
    token: str
    cookie: str
    csrf: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Env:
    settings: Settings
    app: FastAPI
    api: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.settings.effective_database_url

    async def member(self, email: str, role: Role = Role.reseller, account_id: str | None = RESELLER) -> Member:
        user = await users.add_user(self.url, email=email, role=role, password=PASSWORD, account_id=account_id)
        steady()
        key = await second_factor.setup_key(self.url, self.settings.signing_key, user.id)
        totp = pyotp.TOTP(key)
        previous = totp.timecode(datetime.now(UTC)) - 1  # two later steps stay free for the test
        assert await second_factor.turn_on(self.url, self.settings.signing_key, user.id, totp.generate_otp(previous))
        fresh = await users.user_by_id(self.url, user.id)
        assert fresh is not None
        token = await users.create_token(self.url, email)
        session = session_for(fresh, second_factor=True)
        return Member(fresh, Authenticator(key, previous), token, cookie_header(self.settings, session), session.csrf)


def _env(tmp_path: Path, database_url: str, **extra: Any) -> tuple[Settings, FastAPI]:
    settings = make_settings(
        tmp_path, database_url=database_url, temporal_address="127.0.0.1:1", smtp_port=1, task_queue="x", **extra
    )
    app = create_app(settings)
    app.state.temporal = object()  # nothing here needs Temporal
    return settings, app


@pytest_asyncio.fixture
async def env(tmp_path: Path, database_url: str) -> AsyncIterator[Env]:
    settings, app = _env(tmp_path, database_url)
    accounts = [
        account_view(
            id=RESELLER, enrollment_id="e-r1", organization_name="Northwind Resale", member_type=MemberType.reseller
        ),
        account_view(
            id=CUSTOMER, enrollment_id="e-c1", organization_name="Acme Widgets Ltd", reseller_account_id=RESELLER
        ),
        account_view(
            id=OTHER_RESELLER,
            enrollment_id="e-r2",
            organization_name="Southwind Resale",
            member_type=MemberType.reseller,
        ),
        account_view(
            id=OTHER_CUSTOMER, enrollment_id="e-c2", organization_name="Globex Ltd", reseller_account_id=OTHER_RESELLER
        ),
    ]
    for view in accounts:
        await record_account(database_url, RecordAccount(view=view, event_key=f"{view.id}/activated"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
        yield Env(settings, app, api)


def fields(response: httpx.Response) -> dict[str, str]:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


# --- The API -------------------------------------------------------------------------------------------------


async def test_a_token_takes_a_current_code_once_and_its_secret_is_never_shown_again(env: Env) -> None:
    pat = await env.member("pat@northwind.example")
    post = env.api.post

    assert fields(await post("/api/tokens", json={}, headers=pat.auth)) == {"code": CODE_REQUIRED}
    recovery = await post("/api/tokens", json={"code": "abcde-12345"}, headers=pat.auth)
    assert recovery.status_code == 422 and fields(recovery) == {"code": CODE_FORMAT}
    unknown = await post("/api/tokens", json={"code": "123456", "description": "CRM sync"}, headers=pat.auth)
    assert unknown.status_code == 422 and list(fields(unknown)) == ["description"]
    too_long = await post("/api/tokens", json={"code": "123456", "expires_in_days": 366}, headers=pat.auth)
    assert fields(too_long) == {"expires_in_days": "must be a whole number of days from 1 to 365"}
    assert (await post("/api/tokens", json={"code": "123456"})).status_code == 401

    code = pat.phone.code()
    made = await post("/api/tokens", json={"code": code, "expires_in_days": 30}, headers=pat.auth)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["token"].startswith("enr_") and body["status"] == "Live" and body["last_used_at"] is None
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)

    replay = await post("/api/tokens", json={"code": code}, headers=pat.auth)
    assert replay.status_code == 422 and fields(replay) == {"code": CODE_REFUSED}

    new = {"Authorization": f"Bearer {body['token']}"}
    listed = await env.api.get("/api/tokens", headers=new)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [body["id"], items[1]["id"]] and len(items) == 2
    assert all(item["status"] == "Live" and "token" not in item for item in items)
    assert items[0]["last_used_at"] is not None  # the new token was just used to list them
    assert not SECRET.search(listed.text) and pat.token not in listed.text


async def test_nobody_lists_or_revokes_another_users_token(env: Env) -> None:
    pat = await env.member("pat@northwind.example")
    sam = await env.member("sam@southwind.example", account_id=OTHER_RESELLER)
    [pats] = (await env.api.get("/api/tokens", headers=pat.auth)).json()["items"]
    assert [t["id"] for t in (await env.api.get("/api/tokens", headers=sam.auth)).json()["items"]] != [pats["id"]]

    theirs = await env.api.delete(f"/api/tokens/{pats['id']}", headers=sam.auth)
    missing = await env.api.delete("/api/tokens/0123456789ab", headers=sam.auth)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace(pats["id"], "X") == missing.json()["detail"].replace("0123456789ab", "X")
    assert (await env.api.get("/api/tokens", headers=pat.auth)).status_code == 200  # still works

    revoked = await env.api.delete(f"/api/tokens/{pats['id']}", headers=pat.auth)
    assert revoked.status_code == 200 and revoked.json()["status"] == "Revoked" and "token" not in revoked.json()
    assert (await env.api.get("/api/tokens", headers=pat.auth)).status_code == 401


async def test_without_a_second_factor_a_token_is_refused_while_one_is_required(env: Env, tmp_path: Path) -> None:
    await users.add_user(env.url, email="csm@provider.example", role=Role.csm, password=PASSWORD)
    auth = {"Authorization": f"Bearer {await users.create_token(env.url, 'csm@provider.example')}"}
    refused = await env.api.post("/api/tokens", json={}, headers=auth)
    assert refused.status_code == 403 and refused.json() == {"detail": NO_SECOND_FACTOR}

    _, optional = _env(tmp_path, env.url, second_factor="optional")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=optional), base_url="http://testserver") as api:
        made = await api.post("/api/tokens", json={"expires_in_days": 7}, headers=auth)
    assert made.status_code == 201 and made.json()["token"].startswith("enr_")


async def test_live_tokens_are_capped_before_a_code_is_used_up(env: Env) -> None:
    pat = await env.member("pat@northwind.example")
    for _ in range(MAX_LIVE_TOKENS - 1):
        await users.issue_token(env.url, pat.user)
    code = pat.phone.code()
    full = await env.api.post("/api/tokens", json={"code": code}, headers=pat.auth)
    assert full.status_code == 409 and "revoke one" in full.json()["detail"]
    newest = (await env.api.get("/api/tokens", headers=pat.auth)).json()["items"][0]["id"]
    assert (await env.api.delete(f"/api/tokens/{newest}", headers=pat.auth)).status_code == 200
    assert (await env.api.post("/api/tokens", json={"code": code}, headers=pat.auth)).status_code == 201


async def test_each_token_is_throttled_on_its_own(env: Env) -> None:
    pat = await env.member("pat@northwind.example")
    _, second = await users.issue_token(env.url, pat.user)
    env.app.state.token_limit = RateLimit(3, 60)
    for _ in range(3):
        assert (await env.api.get("/api/tokens", headers=pat.auth)).status_code == 200
    over = await env.api.get(f"/api/accounts/{RESELLER}", headers=pat.auth)
    assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 60
    assert "its limit" in over.json()["detail"] and pat.token not in over.text
    assert (await env.api.get("/api/tokens", headers={"Authorization": f"Bearer {second}"})).status_code == 200
    assert (await env.api.get("/api/tokens", headers={"Authorization": "Bearer enr_forged"})).status_code == 401


async def test_a_resellers_token_authenticates_as_that_reseller_with_its_account(env: Env) -> None:
    pat = await env.member("pat@northwind.example")
    made = await env.api.post("/api/tokens", json={"code": pat.phone.code()}, headers=pat.auth)
    auth = {"Authorization": f"Bearer {made.json()['token']}"}
    listed = await env.api.get("/api/accounts", headers=auth)
    assert listed.status_code == 200 and {a["id"] for a in listed.json()["items"]} <= {RESELLER, CUSTOMER}
    for own in (RESELLER, CUSTOMER):
        assert (await env.api.get(f"/api/accounts/{own}", headers=auth)).status_code == 200
    assert (await env.api.get(f"/api/accounts/{RESELLER}/rollup", headers=auth)).status_code == 200
    for other in (OTHER_CUSTOMER, OTHER_RESELLER):
        answer = await env.api.get(f"/api/accounts/{other}", headers=auth)
        assert answer.status_code == 404 and "Globex" not in answer.text and "Southwind" not in answer.text
    assert (await env.api.get(f"/api/accounts/{OTHER_RESELLER}/rollup", headers=auth)).status_code == 404
    assert (await env.api.get("/api/audit.csv", headers=auth)).status_code == 403  # the role's own limits too


async def test_the_openapi_marks_the_token_calls_for_partners(env: Env) -> None:
    paths = (await env.api.get("/openapi.json")).json()["paths"]
    for path, method in (("/api/tokens", "post"), ("/api/tokens", "get"), ("/api/tokens/{token_id}", "delete")):
        operation = paths[path][method]
        assert operation["x-partner"] is True
        assert operation["description"].startswith("Partners (reseller tokens) may call this.")


# --- The portal: /me/tokens ----------------------------------------------------------------------------------


async def test_the_portal_makes_a_token_for_a_current_code_shows_it_once_and_revokes_after_asking(env: Env) -> None:
    pat = await env.member("pat@northwind.example")
    sam = await env.member("sam@southwind.example", account_id=OTHER_RESELLER)
    browser = {"Cookie": pat.cookie}

    assert 'href="/me/tokens"' in (await env.api.get("/me", headers=browser)).text
    page = await env.api.get("/me/tokens", headers=browser)
    assert page.status_code == 200 and '<label for="code">Current code' in page.text
    assert 'autocomplete="one-time-code"' in page.text and '<label for="expires_in_days">' in page.text
    assert (await env.api.post("/me/tokens", data={"code": "123456"}, headers=browser)).status_code == 403  # CSRF

    form = {"csrf_token": pat.csrf, "expires_in_days": "90"}
    missing = await env.api.post("/me/tokens", data=form, headers=browser)
    assert (
        missing.status_code == 422
        and 'aria-invalid="true"' in missing.text
        and "Current code is required" in missing.text
    )
    recovery = await env.api.post("/me/tokens", data={**form, "code": "abcde-12345"}, headers=browser)
    assert recovery.status_code == 422 and "recovery code is not accepted" in recovery.text
    bad_days = await env.api.post("/me/tokens", data={**form, "expires_in_days": "9999"}, headers=browser)
    assert bad_days.status_code == 422 and "from 1 to 365" in bad_days.text

    made = await env.api.post("/me/tokens", data={**form, "code": pat.phone.code()}, headers=browser)
    assert made.status_code == 200 and "shown only once" in made.text
    [secret] = set(SECRET.findall(made.text))
    assert secret != pat.token
    mine = await env.api.get("/api/tokens", headers={"Authorization": f"Bearer {secret}"})
    new_id = mine.json()["items"][0]["id"]
    listing = await env.api.get("/me/tokens", headers=browser)
    assert secret not in listing.text and not SECRET.search(listing.text)
    assert f"/me/tokens/{new_id}/revoke" in listing.text and "2 of at most 10 live" in listing.text

    # Another user's token is not found, by the page that asks nor by the form.
    [sams] = await users.tokens_of(env.url, sam.user.id)
    assert (await env.api.get(f"/me/tokens/{sams.id}/revoke", headers=browser)).status_code == 404
    theirs = await env.api.post(f"/me/tokens/{sams.id}/revoke", data={"csrf_token": pat.csrf}, headers=browser)
    assert theirs.status_code == 404 and (await env.api.get("/api/tokens", headers=sam.auth)).status_code == 200

    ask = await env.api.get(f"/me/tokens/{new_id}/revoke", headers=browser)
    assert ask.status_code == 200 and f'action="/me/tokens/{new_id}/revoke"' in ask.text and CSRF.search(ask.text)
    assert (await env.api.post(f"/me/tokens/{new_id}/revoke", headers=browser)).status_code == 403  # CSRF
    done = await env.api.post(f"/me/tokens/{new_id}/revoke", data={"csrf_token": pat.csrf}, headers=browser)
    assert done.status_code == 303 and done.headers["location"] == "/me/tokens?done=revoked"
    assert "The token is revoked" in (await env.api.get("/me/tokens?done=revoked", headers=browser)).text
    assert (await env.api.get("/api/tokens", headers={"Authorization": f"Bearer {secret}"})).status_code == 401


async def test_the_tokens_page_needs_a_full_sign_in(env: Env) -> None:
    page = await env.api.get("/me/tokens", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/signin?next=/me/tokens"
