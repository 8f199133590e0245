"""A relay greylisting the contact (`450 4.2.0 <pat@acme.example>: ... Greylisted` at RCPT): the public
`/healthz` says mail is failing with the SMTP code and enhanced status only, never the address or the reply's
text; admins read the whole reply on `GET /api/mail-health`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.models import Role
from starter.api.routes.health import public_reply
from store import users
from tests.faults.conftest import FaultyStack, eventually
from tests.faults.relay import Refusal, Relay

CONTACT = "pat@acme.example"
GREYLISTED = f"450 4.2.0 <{CONTACT}>: Recipient address rejected: Greylisted"
ADMIN = "admin@provider.example"


class GreylistingRelay(Relay):
    """The switchable relay, answering 450 4.2.0 naming the address for `CONTACT` at RCPT, every time."""

    def _rcpt_reply(self, address: str) -> str | None:
        if address.lower() != CONTACT:
            return super()._rcpt_reply(address)
        with self._lock:
            self._attempts[address.lower()] += 1
            self._refusals.append(Refusal("RCPT", address, GREYLISTED))
        return GREYLISTED


@pytest.fixture
def relay() -> Iterator[Relay]:
    with GreylistingRelay() as started:
        yield started


async def test_healthz_shows_the_code_and_admins_the_whole_reply(faulty_stack: FaultyStack) -> None:
    stack = faulty_stack
    await stack.enroll(corporate_contact_email=CONTACT)

    async def failing_with_codes_only() -> None:
        response = await stack.healthz()
        assert response.status_code == 200, response.text
        mail = str(response.json().get("mail", ""))
        assert mail.startswith("failing since "), f"/healthz mail is {mail!r}"
        assert mail.endswith(": 450 4.2.0"), f"/healthz mail is {mail!r}"

    await eventually(failing_with_codes_only, timeout=45, what="/healthz reporting the greylisting relay")
    body = (await stack.healthz()).text
    for leak in (CONTACT, "pat", "acme", "Greylisted", "Recipient"):
        assert leak not in body, f"/healthz shows {leak!r}: {body}"

    url = stack.settings.effective_database_url
    await users.add_user(url, email=ADMIN, role=Role.admin, password="correct horse battery")
    admin = {"Authorization": f"Bearer {await users.create_token(url, ADMIN)}"}
    response = await stack.api.get("/api/mail-health", headers=admin)
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["mail"] == "failing", health
    assert health["failing_since"], health
    assert health["last_reply"] == GREYLISTED, health

    assert (await stack.api.get("/api/mail-health")).status_code == 401
    assert (await stack.api.get("/api/mail-health", headers=stack.auth)).status_code == 403, "a CSM is not an admin"


@pytest.mark.parametrize(
    ("reply", "public"),
    [
        (GREYLISTED, "450 4.2.0"),
        ("554 5.7.1 Relay access denied", "554 5.7.1"),
        ("451 Try again, <pat@acme.example>", "451"),
        ("SMTPConnectError: Error connecting to relay.acme.example on port 25", "SMTPConnectError"),
        ("pat@acme.example: mailbox full", ""),
        ("", ""),
    ],
)
def test_public_reply_keeps_only_codes(reply: str, public: str) -> None:
    assert public_reply(reply) == public
