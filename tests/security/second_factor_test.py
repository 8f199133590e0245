"""The second factor, the forgotten password and the administrator's activation, attacked through the portal
over HTTP (the app on httpx's ASGI transport; the store on SQLite and PostgreSQL; a real SMTP sink): wrong,
reused and replayed codes, brute force (throttled, one sentence), sessions renewed at every step and ended by
every change, links used twice, after expiry or after a resend, and weak passwords. Each refusal changes
nothing."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from activities.email import activation_token
from domain.models import AccountStatus, AccountView, Actor, InvitationRound, MemberType, RecordAccount, Role
from domain.settings import Settings
from starter.app import create_app
from starter.dev.mailsink import MailSink, list_messages
from starter.portal.session import COOKIE
from store import administrators, second_factor, users
from store.accounts import record_account
from store.db import transaction
from store.tables import User, UserLink
from tests.support import account_view, make_settings

PASSWORD = "a long enough password"
NEW_PASSWORD = "quartz lantern migrates softly"
ACCOUNT = "acct-admins"
ORGANIZATION = "Harbour Lights Ltd"
CODE_REFUSED = "The code is not right or was already used, or sign-in is paused for 15 minutes"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RECOVERY = re.compile(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>")
TEMPLATES = Path(__file__).resolve().parents[2] / "activities" / "templates" / "email"


class Authenticator:
    """The user's phone: the key, and the last time step whose code was used (each is accepted once)."""

    def __init__(self, key: str, last: int) -> None:
        self.totp = pyotp.TOTP(key)
        self.last = last

    def code(self) -> str:
        """A code of a step never used, inside the server's ±1 window (waiting for the next step if needed)."""
        while True:
            current = self.totp.timecode(datetime.now(UTC))
            step = max(current - 1, self.last + 1)
            if step <= current + 1 and 30 - time.time() % 30 > 2:
                self.last = step
                return self.totp.generate_otp(step)
            time.sleep(0.5)


def steady() -> None:
    """Stay clear of a 30 s step boundary, so "the previous step" means the same here and in the app."""
    while 30 - time.time() % 30 < 3:
        time.sleep(0.5)


@dataclass
class Browser:
    """A client with its own cookie jar, and what it last read of a page."""

    client: httpx.AsyncClient
    csrf: str = ""
    seen: list[str] = field(default_factory=list)

    def cookie(self) -> str | None:
        return self.client.cookies.get(COOKIE)

    async def get(self, path: str) -> httpx.Response:
        response = await self.client.get(path)
        if found := CSRF.search(response.text):
            self.csrf = found.group(1)
        return response

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        response = await self.client.post(path, data={"csrf_token": self.csrf, **(data or {})})
        if found := CSRF.search(response.text):
            self.csrf = found.group(1)
        return response

    async def password(self, email: str, password: str = PASSWORD, target: str = "/enrollments") -> httpx.Response:
        """The sign-in form, and then (as a browser does) the page its answer sends to."""
        await self.get(f"/signin?next={target}")
        response = await self.post("/signin", {"email": email, "password": password, "next": target})
        if response.status_code == 303:
            await self.get(response.headers["location"])
        return response


@dataclass
class Portal:
    settings: Settings
    app: Any
    sink: MailSink

    @property
    def url(self) -> str:
        return self.settings.effective_database_url

    def browser(self) -> Browser:
        transport = httpx.ASGITransport(app=self.app)
        return Browser(httpx.AsyncClient(transport=transport, base_url="http://testserver"))


@pytest_asyncio.fixture
async def portal(tmp_path: Path, database_url: str, mail_sink: MailSink) -> AsyncIterator[Portal]:
    settings = make_settings(
        tmp_path, database_url=database_url, temporal_address="127.0.0.1:1", smtp_port=mail_sink.port, task_queue="x"
    )
    app = create_app(settings)
    app.state.temporal = object()  # not a client: telling the workflow of an activation fails at once (and is let be)
    account = AccountView(
        id=ACCOUNT,
        enrollment_id="enr-admins",
        status=AccountStatus.active,
        organization_name=ORGANIZATION,
        member_type=MemberType.customer,
        service_start_date=date(2026, 1, 1),
        service_end_date=date(2030, 1, 1),
        display_users_purchased=False,
        users_purchased=None,
        corporate_contact_email="pat@harbour.example",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    await record_account(database_url, RecordAccount(view=account, event_key=f"{ACCOUNT}/activated"))
    yield Portal(settings, app, mail_sink)


async def staff(portal: Portal, email: str, role: Role = Role.csm, *, factor: bool = True) -> Authenticator | None:
    """A user the CLI made; with `factor`, their second factor is on (turned on with the previous step's code,
    so two more steps are free for the test)."""
    user = await users.add_user(portal.url, email=email, role=role, password=PASSWORD)
    if not factor:
        return None
    steady()
    key = await second_factor.setup_key(portal.url, portal.settings.signing_key, user.id)
    totp = pyotp.TOTP(key)
    previous = totp.timecode(datetime.now(UTC)) - 1
    assert await second_factor.turn_on(portal.url, portal.settings.signing_key, user.id, totp.generate_otp(previous))
    return Authenticator(key, previous)


async def fully_signed_in(portal: Portal, email: str, phone: Authenticator) -> Browser:
    browser = portal.browser()
    await browser.password(email)
    done = await browser.post("/signin/second-factor", {"code": phone.code(), "next": "/enrollments"})
    assert done.status_code == 303 and done.headers["location"] == "/enrollments"
    return browser


async def user(portal: Portal, email: str) -> User:
    found = await users.user_by_email(portal.url, email)
    assert found is not None
    return found


# --- Setting it up, and signing in with it ---------------------------------------------------------------------


async def test_a_first_sign_in_sets_up_the_factor_and_every_step_renews_the_session(portal: Portal) -> None:
    await staff(portal, "new.csm@provider.example", factor=False)
    browser = portal.browser()
    await browser.get("/signin?next=/enrollments/abc")
    visitor_cookie, visitor_csrf = browser.cookie(), browser.csrf

    step = await browser.post(
        "/signin", {"email": "new.csm@provider.example", "password": PASSWORD, "next": "/enrollments/abc"}
    )
    assert step.status_code == 303 and step.headers["location"] == "/me/second-factor?next=/enrollments/abc"
    password_cookie = browser.cookie()
    assert password_cookie != visitor_cookie
    # The password alone opens no page: each sends to the setup, and back afterwards.
    held = await browser.client.get("/enrollments")
    assert held.status_code == 303 and held.headers["location"] == "/me/second-factor?next=/enrollments"

    setup = await browser.get("/me/second-factor?next=/enrollments/abc")
    assert setup.status_code == 200 and browser.csrf != visitor_csrf
    key_shown = re.search(r'<code id="setup-key">([A-Z2-7 ]+)</code>', setup.text)
    assert key_shown and "<svg" in setup.text and "<script" not in setup.text.split("<main", 1)[1]
    assert 'autocomplete="one-time-code"' in setup.text and 'inputmode="numeric"' in setup.text
    key = key_shown.group(1).replace(" ", "")
    assert (await browser.get("/me/second-factor")).text.count(key_shown.group(1)) == 1  # the same key on reload

    wrong = await browser.post("/me/second-factor", {"code": "000000", "next": "/enrollments/abc"})
    assert wrong.status_code == 422 and "does not match" in wrong.text
    assert not second_factor.has_second_factor(await user(portal, "new.csm@provider.example"))

    steady()
    on = await browser.post("/me/second-factor", {"code": pyotp.TOTP(key).now(), "next": "/enrollments/abc"})
    assert on.status_code == 200
    codes = RECOVERY.findall(on.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert browser.cookie() != password_cookie
    assert 'href="/enrollments/abc"' in on.text
    assert (await browser.client.get("/enrollments")).status_code == 200
    me = await browser.get("/me")
    assert "10 of 10" in me.text and codes[0] not in me.text  # shown once, never again
    assert (await user(portal, "new.csm@provider.example")).last_signed_in_at is not None

    # The next sign-in asks for a code.
    phone = Authenticator(key, pyotp.TOTP(key).timecode(datetime.now(UTC)))
    again = portal.browser()
    asked = await again.password("new.csm@provider.example")
    assert asked.status_code == 303 and asked.headers["location"] == "/signin/second-factor?next=/enrollments"
    before = again.cookie()
    form = await again.get("/signin/second-factor?next=/enrollments")
    assert 'autocomplete="one-time-code"' in form.text and 'name="code"' in form.text
    held = await again.client.get("/me")
    assert held.status_code == 303 and held.headers["location"] == "/signin/second-factor?next=/me"
    done = await again.post("/signin/second-factor", {"code": phone.code(), "next": "/enrollments"})
    assert done.status_code == 303 and done.headers["location"] == "/enrollments"
    assert again.cookie() != before
    assert (await again.client.get("/enrollments")).status_code == 200


async def test_a_code_is_accepted_once_and_a_recovery_code_once(portal: Portal) -> None:
    email = "once@provider.example"
    phone = await staff(portal, email)
    assert phone is not None
    first = portal.browser()
    await first.password(email)
    code = phone.code()
    assert (await first.post("/signin/second-factor", {"code": code})).status_code == 303

    replay = portal.browser()  # the same code, seen over a shoulder, in another browser
    await replay.password(email)
    refused = await replay.post("/signin/second-factor", {"code": code})
    assert refused.status_code == 401 and CODE_REFUSED in refused.text
    assert (await replay.client.get("/enrollments")).headers["location"].startswith("/signin/second-factor")

    # Recovery codes: one each, once (a fresh set, made from /me with a current code).
    await first.get("/me")
    made = await first.post("/me/second-factor/recovery-codes", {"code": phone.code()})
    codes = RECOVERY.findall(made.text)
    assert len(codes) == 10
    assert (await first.client.get("/enrollments")).status_code == 200  # this browser got the new session
    # New codes end the user's other sessions, even one between password and code.
    ended = await replay.post("/signin/second-factor", {"code": codes[0]})
    assert ended.status_code == 303 and ended.headers["location"].startswith("/signin?")
    await replay.password(email)
    ok = await replay.post("/signin/second-factor", {"code": codes[0].upper()})  # as typed, capitals and all
    assert ok.status_code == 303 and ok.headers["location"] == "/enrollments"
    third = portal.browser()
    await third.password(email)
    used = await third.post("/signin/second-factor", {"code": codes[0]})
    assert used.status_code == 401 and CODE_REFUSED in used.text
    me = await replay.get("/me")
    assert "9 of 10" in me.text


async def test_five_wrong_codes_lock_sign_in_with_one_sentence(portal: Portal) -> None:
    email = "guessed@provider.example"
    phone = await staff(portal, email)
    assert phone is not None
    victim = await fully_signed_in(portal, email, phone)
    attacker = portal.browser()  # knows the password, not the phone
    await attacker.password(email)
    answers = []
    for guess in ("123456", "654321", "111111", "222222", "333333"):
        answers.append(await attacker.post("/signin/second-factor", {"code": guess}))
    assert {a.status_code for a in answers} == {401}
    locked = await attacker.post("/signin/second-factor", {"code": phone.code()})  # even the right code now
    assert locked.status_code == 401
    sentences = {re.sub(r"\s+", " ", a.text.split('role="alert"><p>')[1].split("</p>")[0]) for a in [*answers, locked]}
    assert len(sentences) == 1 and CODE_REFUSED in sentences.pop()
    # The locked user's session (the victim's browser) is refused too, and so is the password meanwhile.
    assert (await victim.client.get("/enrollments")).headers["location"].startswith("/signin")
    assert (await portal.browser().password(email)).status_code == 401
    assert email in await users.locked_emails(portal.url, [email])


async def test_sessions_end_when_the_user_is_disabled_or_their_factor_changes(portal: Portal) -> None:
    admin_phone = await staff(portal, "boss@provider.example", Role.admin)
    csm_phone = await staff(portal, "worker@provider.example")
    assert admin_phone is not None and csm_phone is not None
    admin = await fully_signed_in(portal, "boss@provider.example", admin_phone)
    csm = await fully_signed_in(portal, "worker@provider.example", csm_phone)
    worker = await user(portal, "worker@provider.example")

    # An admin resets the csm's second factor (a lost phone): the csm's session ends; the next sign-in sets up.
    page = await admin.get(f"/admin/users/{worker.id}")
    assert "Reset the second factor" in page.text
    reset = await admin.post(f"/admin/users/{worker.id}/second-factor/reset")
    assert reset.status_code == 303 and reset.headers["location"].endswith("done=second_factor_reset")
    assert not second_factor.has_second_factor(await user(portal, "worker@provider.example"))
    assert (await csm.client.get("/enrollments")).headers["location"].startswith("/signin")
    relog = await portal.browser().password("worker@provider.example")
    assert relog.headers["location"].startswith("/me/second-factor")
    # Their own reset is on /me (with a code), never here.
    boss = await user(portal, "boss@provider.example")
    own = await admin.post(f"/admin/users/{boss.id}/second-factor/reset")
    assert own.status_code == 409

    # A disabled user's cookie is refused, and stays refused when they are enabled again.
    await users.set_disabled(portal.url, "boss@provider.example", True)
    assert (await admin.client.get("/enrollments")).headers["location"].startswith("/signin")


async def test_resetting_ones_own_factor_needs_a_code_and_renews_the_session(portal: Portal) -> None:
    email = "self@provider.example"
    phone = await staff(portal, email)
    assert phone is not None
    browser = await fully_signed_in(portal, email, phone)
    other = await fully_signed_in(portal, email, phone)  # another browser of the same user
    before, csrf = browser.cookie(), browser.csrf
    await browser.get("/me")
    wrong = await browser.post("/me/second-factor/reset", {"code": "000000"})
    assert wrong.status_code == 401 and CODE_REFUSED in wrong.text
    assert second_factor.has_second_factor(await user(portal, email))
    regenerate_wrong = await browser.post("/me/second-factor/recovery-codes", {"code": "000000"})
    assert regenerate_wrong.status_code == 401 and second_factor.has_second_factor(await user(portal, email))

    done = await browser.post("/me/second-factor/reset", {"code": phone.code()})
    assert done.status_code == 303 and done.headers["location"] == "/me/second-factor?next=/me"
    assert browser.cookie() != before
    setup = await browser.get("/me/second-factor?next=/me")
    assert setup.status_code == 200 and browser.csrf != csrf and 'id="setup-key"' in setup.text
    assert (await other.client.get("/enrollments")).headers["location"].startswith("/signin")
    # A stale form of the old session is refused.
    stale = await browser.client.post("/me/second-factor", data={"csrf_token": csrf, "code": "123456"})
    assert stale.status_code == 403


async def test_optional_mode_signs_in_without_a_factor_but_asks_those_who_have_one(
    tmp_path: Path, database_url: str, mail_sink: MailSink
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address="127.0.0.1:1",
        smtp_port=mail_sink.port,
        task_queue="x",
        second_factor="optional",
    )
    portal = Portal(settings, create_app(settings), mail_sink)
    await staff(portal, "plain@provider.example", factor=False)
    browser = portal.browser()
    signed = await browser.password("plain@provider.example")
    assert signed.status_code == 303 and signed.headers["location"] == "/enrollments"
    assert (await browser.client.get("/enrollments")).status_code == 200
    me = await browser.get("/me")
    assert "Set up a second factor" in me.text
    assert (await browser.get("/me/second-factor")).status_code == 200  # turning one on is offered

    phone = await staff(portal, "careful@provider.example")
    assert phone is not None
    asked = await portal.browser().password("careful@provider.example")
    assert asked.headers["location"].startswith("/signin/second-factor")


# --- Forgotten password ----------------------------------------------------------------------------------------


def reset_links(portal: Portal, address: str) -> list[str]:
    found = []
    for message in list_messages(portal.sink.mailbox_dir):
        if address in message.rcpt_tos:
            found += re.findall(r"/reset/([A-Za-z0-9_-]+)", message.text or "")
    return found


async def test_forgot_password_answers_alike_and_the_link_works_once(portal: Portal) -> None:
    email = "forgetful@provider.example"
    phone = await staff(portal, email)
    assert phone is not None
    browser = portal.browser()
    await browser.get("/signin/forgot")
    known = await browser.post("/signin/forgot", {"email": email})
    unknown = await browser.post("/signin/forgot", {"email": "nobody@provider.example"})
    assert known.status_code == unknown.status_code == 200

    def body(response: httpx.Response) -> str:
        return CSRF.sub("", response.text)

    assert body(known) == body(unknown) and "If an account uses that address" in known.text

    if not (TEMPLATES / "password_reset.txt").exists():
        pytest.skip("the password_reset email template is not there yet (another change adds it)")
    tokens = reset_links(portal, email)
    assert len(tokens) == 1 and reset_links(portal, "nobody@provider.example") == []
    token = tokens[0]
    async with transaction(portal.url) as session:
        link = await session.scalar(select(UserLink).where(UserLink.purpose == "reset"))
        assert link is not None and link.expires_at - link.created_at == timedelta(minutes=30)

    # Scanner-safe: the GET only shows, as often as it is opened.
    for _ in range(2):
        shown = await browser.get(f"/reset/{token}")
        assert shown.status_code == 200 and 'name="code"' in shown.text
    # A weak or breached password, or no code, changes nothing.
    weak = await browser.post(f"/reset/{token}", {"password": "password1234", "password_confirm": "password1234"})
    assert weak.status_code == 422 and "breached" in weak.text
    short = await browser.post(f"/reset/{token}", {"password": "short", "password_confirm": "short"})
    assert short.status_code == 422 and "at least 12" in short.text
    no_code = await browser.post(
        f"/reset/{token}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "code": "000000"}
    )
    assert no_code.status_code == 401 and CODE_REFUSED in no_code.text
    assert await users.check_password(portal.url, email, PASSWORD) is not None
    assert (await browser.get(f"/reset/{token}")).status_code == 200  # still live

    changed = await browser.post(
        f"/reset/{token}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "code": phone.code()}
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/signin?done=password_reset"
    assert await users.check_password(portal.url, email, NEW_PASSWORD) is not None
    await browser.get("/signin")
    again = await browser.post(f"/reset/{token}", {"password": PASSWORD, "password_confirm": PASSWORD})
    assert again.status_code == 410 and "already used" in again.text
    assert await users.check_password(portal.url, email, NEW_PASSWORD) is not None
    assert (await browser.get("/reset/not-a-real-token")).status_code == 404


async def test_a_reset_link_expires_after_30_minutes(portal: Portal) -> None:
    email = "late@provider.example"
    await staff(portal, email, factor=False)
    made = await administrators.create_reset_link(portal.url, email)
    assert made is not None
    token, _ = made
    async with transaction(portal.url) as session:
        await session.execute(
            update(UserLink).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))  # 30 minutes later
        )
    browser = portal.browser()
    await browser.get("/signin/forgot")
    shown = await browser.get(f"/reset/{token}")
    assert shown.status_code == 410 and "expired" in shown.text
    refused = await browser.post(f"/reset/{token}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert refused.status_code == 410
    assert await users.check_password(portal.url, email, PASSWORD) is not None
    # A newer link replaces it.
    older = await administrators.create_reset_link(portal.url, email)
    newest = await administrators.create_reset_link(portal.url, email)
    assert older is not None and newest is not None
    assert (await browser.get(f"/reset/{newest[0]}")).status_code == 200
    replaced = await browser.get(f"/reset/{older[0]}")
    assert replaced.status_code == 410 and "replaced by a newer one" in replaced.text


async def test_asking_for_reset_links_is_throttled_without_locking_sign_in(portal: Portal) -> None:
    email = "spammed@provider.example"
    await staff(portal, email, factor=False)
    browser = portal.browser()
    await browser.get("/signin/forgot")
    for _ in range(7):
        assert (await browser.post("/signin/forgot", {"email": email})).status_code == 200
    async with transaction(portal.url) as session:
        links = list(await session.scalars(select(UserLink).where(UserLink.purpose == "reset")))
    assert len(links) == 5  # the sixth and seventh were throttled
    assert await users.locked_emails(portal.url, [email]) == set()


# --- Activation ------------------------------------------------------------------------------------------------


async def invited(portal: Portal, email: str, *, version: int = 0) -> tuple[User, str]:
    """An administrator invited by staff, and the token of their live activation link (of `version`)."""
    by = Actor(email="csm@provider.example", kind="csm")
    found = await users.user_by_email(portal.url, email)
    person = found or await administrators.invite(
        portal.url, account_id=ACCOUNT, member_type=MemberType.customer, email=email, by=by
    )
    async with transaction(portal.url) as session:
        row = await session.get(User, person.id)
        assert row is not None
        row.invitation, row.invitation_version = "invited", version
        row.invitation_expires_at = datetime.now(UTC) + timedelta(days=7)
    token = activation_token(portal.settings.signing_key, person.id, version)
    round_ = InvitationRound(user_id=person.id, account_id=ACCOUNT, link_version=version)
    assert await administrators.open_activation_link(portal.url, token=token, round=round_)
    return person, token


async def test_a_resellers_administrator_lands_on_its_roll_up_after_activating(portal: Portal) -> None:
    """The README's "For partners": after the password and the second factor, Your customers opens."""
    reseller = account_view(
        id="acct-reseller",
        enrollment_id="enr-reseller",
        organization_name="Northwind Resale Ltd",
        member_type=MemberType.reseller,
        display_users_purchased=False,
        users_purchased=None,
    )
    await record_account(portal.url, RecordAccount(view=reseller, event_key="acct-reseller/activated"))
    by = Actor(email="csm@provider.example", kind="csm")
    person = await administrators.invite(
        portal.url, account_id=reseller.id, member_type=MemberType.reseller, email="lee@northwind.example", by=by
    )
    async with transaction(portal.url) as session:
        row = await session.get(User, person.id)
        assert row is not None
        row.invitation, row.invitation_version = "invited", 0
        row.invitation_expires_at = datetime.now(UTC) + timedelta(days=7)
    token = activation_token(portal.settings.signing_key, person.id, 0)
    round_ = InvitationRound(user_id=person.id, account_id=reseller.id, link_version=0)
    assert await administrators.open_activation_link(portal.url, token=token, round=round_)
    browser = portal.browser()
    await browser.get(f"/activate/{token}")
    done = await browser.post(f"/activate/{token}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert done.status_code == 303
    assert done.headers["location"] == "/me/second-factor?next=/accounts/acct-reseller/customers"


async def test_activation_shows_then_consumes_once_and_signs_in(portal: Portal) -> None:
    person, token = await invited(portal, "kim@harbour.example")
    browser = portal.browser()
    for _ in range(2):  # a mail scanner, then the person: nothing is used up
        shown = await browser.get(f"/activate/{token}")
        assert shown.status_code == 200 and ORGANIZATION in shown.text and "kim@harbour.example" in shown.text
    weak = await browser.post(f"/activate/{token}", {"password": "harbourlights", "password_confirm": "harbourlights"})
    assert weak.status_code == 422
    breached = await browser.post(
        f"/activate/{token}", {"password": "password1234", "password_confirm": "password1234"}
    )
    assert breached.status_code == 422 and "breached" in breached.text
    mismatch = await browser.post(
        f"/activate/{token}", {"password": NEW_PASSWORD, "password_confirm": "something else"}
    )
    assert mismatch.status_code == 422 and "not the same" in mismatch.text
    assert (await user(portal, "kim@harbour.example")).password_hash == ""

    done = await browser.post(f"/activate/{token}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["location"] == f"/me/second-factor?next=/accounts/{ACCOUNT}"
    activated = await user(portal, "kim@harbour.example")
    assert activated.invitation == "activated" and activated.password_hash
    setup = await browser.get(f"/me/second-factor?next=/accounts/{ACCOUNT}")
    assert setup.status_code == 200 and 'id="setup-key"' in setup.text
    assert (await browser.client.get(f"/accounts/{ACCOUNT}")).headers["location"].startswith("/me/second-factor")

    other = portal.browser()
    twice = await other.get(f"/activate/{token}")
    assert twice.status_code == 410 and "already used" in twice.text
    await other.get("/signin")
    again = await other.post(f"/activate/{token}", {"password": PASSWORD, "password_confirm": PASSWORD})
    assert again.status_code == 410
    assert await users.check_password(portal.url, "kim@harbour.example", NEW_PASSWORD) is not None
    assert person.id == activated.id


async def test_an_expired_or_replaced_activation_link_says_so_and_changes_nothing(portal: Portal) -> None:
    _, old = await invited(portal, "lee@harbour.example")
    _, new = await invited(portal, "lee@harbour.example", version=1)  # a resend
    browser = portal.browser()
    replaced = await browser.get(f"/activate/{old}")
    assert replaced.status_code == 410 and "replaced by a newer one" in replaced.text
    await browser.get("/signin")
    refused = await browser.post(f"/activate/{old}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert refused.status_code == 410 and (await user(portal, "lee@harbour.example")).password_hash == ""

    async with transaction(portal.url) as session:
        await session.execute(update(UserLink).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    expired = await browser.get(f"/activate/{new}")
    assert expired.status_code == 410 and "expired" in expired.text and "csm@provider.example" in expired.text
    refused = await browser.post(f"/activate/{new}", {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert refused.status_code == 410 and (await user(portal, "lee@harbour.example")).password_hash == ""
    unknown = await browser.get("/activate/nothing-like-a-token")
    assert unknown.status_code == 404


async def test_the_forms_before_sign_in_need_their_csrf_token(portal: Portal) -> None:
    _, token = await invited(portal, "sam@harbour.example")
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=portal.app), base_url="http://testserver")
    data = {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "csrf_token": "guessed"}
    assert (await bare.post(f"/activate/{token}", data=data)).status_code == 403
    assert (await bare.post("/signin/forgot", data={"email": "x@y.example", "csrf_token": "g"})).status_code == 403
    assert (await user(portal, "sam@harbour.example")).password_hash == ""
