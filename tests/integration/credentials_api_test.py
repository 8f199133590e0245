"""The manufacturers' API on the whole stack (the Temporal dev server, the worker, the store on SQLite and
PostgreSQL): PSKC files made by python-pskc uploaded with a passphrase (PBKDF2) and with a pre-shared key, the
batch imported, the same file answering its first batch, a rejected file's reason and a rejected key's, who may
upload and see what, the inventory's pages, staff's assignment, and the check of a real code computed from a
file's secret: valid once, HOTP's look-ahead, TOTP, and the throttle. No answer carries a secret."""

from __future__ import annotations

import base64
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from domain.models import AccountStatus, AccountView, MemberType, RecordAccount, Role
from starter.dev.mailsink import MailSink
from starter.security import UPLOAD_OVERHEAD
from starter.services.credentials import CHECKS_PER_MINUTE
from store.accounts import record_account
from tests.credential_batches import PASSPHRASE, PRESHARED, Made, keys_value, make_pskc, secret_forms
from tests.integration.conftest import Stack, eventually, running, stack_settings

MAKER = "maker-1"
OTHER_MAKER = "maker-2"
CUSTOMER = "customer-1"
OTHER_CUSTOMER = "customer-2"
RESELLER = "reseller-1"
MAX_BYTES = 256 * 1024
"""ENROLL_PSKC_MAX_BYTES for these tests: small, so an oversized file is quick to make."""


@dataclass
class Makers:
    stack: Stack
    tokens: dict[str, str]
    answers: list[bytes] = field(default_factory=list)
    """Every answer's body, for the test that no answer carries a secret."""

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, method: str, url: str, who: str, **kwargs: Any) -> httpx.Response:
        response = await self.stack.api.request(method, url, headers=self.auth(who), **kwargs)
        self.answers.append(response.content)
        return response

    async def upload(
        self, made: Made | bytes, who: str = "maker", account: str = MAKER, **fields: str
    ) -> httpx.Response:
        data = made if isinstance(made, bytes) else made.data
        form = fields or {"passphrase": PASSPHRASE}
        files = {"file": ("batch.pskcxml", data, "application/xml")}
        return await self.call("POST", f"/api/accounts/{account}/credential-batches", who, data=form, files=files)

    async def batch(self, batch_id: str, who: str = "maker", account: str = MAKER) -> httpx.Response:
        return await self.call("GET", f"/api/accounts/{account}/credential-batches/{batch_id}", who)

    async def ended(self, batch_id: str, who: str = "maker", account: str = MAKER) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def done() -> bool:
            response = await self.batch(batch_id, who, account)
            assert response.status_code == 200, response.text
            found.update(response.json())
            return bool(found["status"] != "Importing")

        await eventually(done, timeout=60)
        return found

    async def inventory(self, who: str = "maker", account: str = MAKER, **params: Any) -> httpx.Response:
        return await self.call("GET", f"/api/accounts/{account}/credentials", who, params=params)

    async def credential(self, serial: str, who: str = "maker", account: str = MAKER) -> dict[str, Any]:
        response = await self.inventory(who, account, q=serial)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = [c for c in response.json()["items"] if c["credential_id"] == serial]
        assert len(items) == 1, response.text
        return items[0]

    async def check(self, credential_id: str, code: str, who: str = "maker") -> httpx.Response:
        body = {"credential_id": credential_id, "code": code}
        return await self.call("POST", "/api/credentials/check", who, json=body)


async def seed(url: str) -> None:
    for account_id, member_type, reseller in (
        (MAKER, MemberType.manufacturer, None),
        (OTHER_MAKER, MemberType.manufacturer, None),
        (CUSTOMER, MemberType.customer, None),
        (OTHER_CUSTOMER, MemberType.customer, None),
        (RESELLER, MemberType.reseller, None),
    ):
        view = AccountView(
            id=account_id,
            enrollment_id=f"enr-{account_id}",
            status=AccountStatus.active,
            organization_name=f"Org {account_id}",
            member_type=member_type,
            service_start_date=date(2026, 1, 1),
            service_end_date=date(2030, 1, 1),
            display_users_purchased=False,
            users_purchased=None,
            corporate_contact_email=f"pat@{account_id}.example",
            reseller_account_id=reseller,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        await record_account(url, RecordAccount(view=view, event_key=f"{account_id}/activated"))


@pytest_asyncio.fixture
async def makers(
    tmp_path: Path, database_url: str, temporal: WorkflowEnvironment, mail_sink: MailSink, task_queue: str
) -> AsyncIterator[Makers]:
    settings = stack_settings(
        tmp_path,
        database_url,
        temporal,
        mail_sink,
        task_queue,
        secrets_key=f"k1:{keys_value('k1')}",
        pskc_max_bytes=MAX_BYTES,
    )
    async with running(settings, temporal, mail_sink) as stack:
        await seed(settings.effective_database_url)
        tokens = {"csm": stack.token}
        for who, role, account in (
            ("maker", Role.manufacturer, MAKER),
            ("other maker", Role.manufacturer, OTHER_MAKER),
            ("customer", Role.customer, CUSTOMER),
            ("other customer", Role.customer, OTHER_CUSTOMER),
            ("reseller", Role.reseller, RESELLER),
            ("reviewer", Role.reviewer, None),
        ):
            tokens[who] = await stack.token_for(f"{who.replace(' ', '.')}@example.com", role, account)
        yield Makers(stack, tokens)


def hotp_code(secret: bytes, counter: int) -> str:
    return pyotp.HOTP(base64.b32encode(secret).decode()).at(counter)


def totp_code(secret: bytes, at: float | None = None) -> str:
    return pyotp.TOTP(base64.b32encode(secret).decode()).at(int(time.time() if at is None else at))


async def test_a_passphrase_file_imports_and_the_same_file_answers_its_first_batch(makers: Makers) -> None:
    made = make_pskc(30)
    first = await makers.upload(made)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "Importing"
    batch_id = first.json()["id"]
    assert first.headers["location"] == f"/api/accounts/{MAKER}/credential-batches/{batch_id}"

    again = await makers.upload(made)  # at once: the batch is still importing, or has just ended
    assert again.status_code in (200, 202) and again.json()["id"] == batch_id

    batch = await makers.ended(batch_id)
    assert batch["status"] == "Imported", batch
    assert (batch["total"], batch["processed"], batch["accepted"], batch["rejected"]) == (30, 30, 30, [])
    assert batch["reason"] is None
    assert batch["sha256"] == first.json()["sha256"] and len(batch["sha256"]) == 64

    later = await makers.upload(made, passphrase="another passphrase entirely")
    assert later.status_code == 200 and later.json() == {
        "id": batch_id,
        "status": "Imported",
        "sha256": batch["sha256"],
    }
    page = (await makers.inventory(limit=200)).json()
    assert len(page["items"]) == 30  # nothing imported twice


async def test_staff_upload_a_preshared_key_file_for_a_manufacturer(makers: Makers) -> None:
    made = make_pskc(12, prefix="PS", passphrase=None, preshared_key=PRESHARED)
    response = await makers.upload(made, who="csm", preshared_key=PRESHARED.hex().upper())
    assert response.status_code == 202, response.text
    batch = await makers.ended(response.json()["id"], who="csm")
    assert (batch["status"], batch["accepted"]) == ("Imported", 12)
    assert batch["created_by"] == "csm@provider.example"
    # the manufacturer sees the batch staff uploaded for it
    assert (await makers.batch(batch["id"])).json()["accepted"] == 12


async def test_a_wrong_passphrase_rejects_the_batch_with_its_reason_and_the_report_says_it(makers: Makers) -> None:
    made = make_pskc(5, prefix="WR")
    response = await makers.upload(made, passphrase="not the passphrase")
    assert response.status_code == 202, response.text
    batch = await makers.ended(response.json()["id"])
    assert batch["status"] == "Rejected"
    assert batch["reason"] and "passphrase" in batch["reason"].lower()
    assert batch["accepted"] == 0 and (await makers.inventory(q="WR")).json()["items"] == []
    report = await makers.call("GET", batch["report"], "maker")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["batch_id", "status", "key_index", "serial", "reason"]
    assert rows[1][0] == batch["id"] and rows[1][4] == batch["reason"]

    # the same file with the right passphrase is a new batch, which imports
    retried = await makers.upload(made)
    assert retried.status_code == 202 and retried.json()["id"] != batch["id"]
    assert (await makers.ended(retried.json()["id"]))["accepted"] == 5


async def test_rejected_keys_are_listed_with_their_serial_and_reason_in_the_answer_and_the_report(
    makers: Makers,
) -> None:
    made = make_pskc(8, prefix="=KL", repeat=(6,), short=(3,))  # a serial a spreadsheet would run as a formula
    response = await makers.upload(made)
    batch = await makers.ended(response.json()["id"])
    assert (batch["status"], batch["total"], batch["accepted"], batch["rejected_count"]) == ("Imported", 8, 6, 2)
    rejected = {r["credential_id"]: r["reason"] for r in batch["rejected"]}
    assert set(rejected) == {"=KL00000003", "=KL00000000"}
    assert "128 bits" in rejected["=KL00000003"]
    assert "repeated" in rejected["=KL00000000"]
    report = await makers.call("GET", batch["report"], "maker")
    rows = list(csv.reader(io.StringIO(report.text)))[1:]
    assert [(r[2], r[3]) for r in rows] == [("3", "'=KL00000003"), ("6", "'=KL00000000")]


async def test_bad_uploads_are_422_naming_the_field(makers: Makers) -> None:
    made = make_pskc(2, prefix="BAD")
    url = f"/api/accounts/{MAKER}/credential-batches"
    no_file = await makers.call("POST", url, "maker", data={"passphrase": PASSPHRASE})
    assert no_file.status_code == 422 and no_file.json()["errors"][0]["field"] == "file"
    for fields, named in (
        ({}, "preshared_key"),
        ({"preshared_key": PRESHARED.hex(), "passphrase": PASSPHRASE}, "preshared_key"),
        ({"preshared_key": "not hex at all"}, "preshared_key"),
        ({"preshared_key": "abcd"}, "preshared_key"),
        ({"passphrase": "x" * 2000}, "passphrase"),
    ):
        files = {"file": ("batch.pskcxml", made.data, "application/xml")}
        response = await makers.call("POST", url, "maker", data=fields or {"passphrase": ""}, files=files)
        assert response.status_code == 422, (fields, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [named], response.text
        assert "not hex at all" not in response.text and "x" * 100 not in response.text

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0">&lol2;</KeyContainer>'
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0">&e;</KeyContainer>'
    )
    for hostile in (bomb, external, b"<html>not pskc</html>", b"\x00\x01 binary"):
        response = await makers.upload(hostile)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "file"
        assert b"/etc/passwd" not in response.content

    just_over = made.data + b" " * (MAX_BYTES - len(made.data) + 10)  # the service's check
    response = await makers.upload(just_over)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "file", response.text
    assert "ENROLL_PSKC_MAX_BYTES" in response.text
    far_over = b" " * (MAX_BYTES + UPLOAD_OVERHEAD + 1)  # refused before it is read
    response = await makers.upload(far_over)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "file", response.text
    assert (await makers.inventory(q="BAD")).json()["items"] == []


async def test_who_may_upload_and_see_batches(makers: Makers) -> None:
    made = make_pskc(3, prefix="WHO")
    # a customer's account is refused, even to staff; a reseller's or reviewer's role may not upload at all
    response = await makers.upload(made, who="csm", account=CUSTOMER)
    assert response.status_code == 403 and "manufacturer" in response.json()["detail"]
    assert (await makers.upload(made, who="customer", account=CUSTOMER)).status_code == 403
    assert (await makers.upload(made, who="reseller", account=RESELLER)).status_code == 403
    assert (await makers.upload(made, who="reviewer")).status_code == 403
    # another manufacturer's account is as unknown as one that does not exist
    assert (await makers.upload(made, who="other maker")).status_code == 404
    assert (await makers.upload(made, account="no-such-account")).status_code == 404

    response = await makers.upload(made)
    batch_id = response.json()["id"]
    await makers.ended(batch_id)
    assert (await makers.batch(batch_id, who="other maker")).status_code == 404
    assert (await makers.batch(batch_id, who="other maker", account=OTHER_MAKER)).status_code == 404
    assert (await makers.batch(batch_id, who="customer")).status_code == 404
    assert (await makers.batch(batch_id, who="reviewer")).status_code == 200  # staff see every batch
    report = f"/api/accounts/{MAKER}/credential-batches/{batch_id}/report.csv"
    assert (await makers.call("GET", report, "other maker")).status_code == 404
    assert (await makers.inventory(who="other maker")).status_code == 404
    assert (await makers.inventory(who="reseller", account=RESELLER)).status_code == 403


async def test_the_inventory_pages_filters_and_assignment(makers: Makers) -> None:
    made = make_pskc(25, prefix="INV")
    batch = await makers.ended((await makers.upload(made)).json()["id"])
    assert batch["accepted"] == 25

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await makers.inventory(**params)).json()
        seen += [c["credential_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made.secrets) and len(seen) == 25
    first = (await makers.inventory(limit=1)).json()["items"][0]
    assert set(first) >= {"id", "credential_id", "algorithm", "digits", "state", "batch_id", "imported_at"}
    assert first["state"] == "Available" and first["batch_id"] == batch["id"]
    found = (await makers.inventory(q="inv0000001")).json()["items"]  # part of the serial, any case
    assert sorted(c["credential_id"] for c in found) == [f"INV000000{i}" for i in range(10, 20)]
    bad = await makers.inventory(cursor="not-a-cursor")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"

    # staff assign: a count (first imported first) and ids; the manufacturer may not
    assign = f"/api/accounts/{MAKER}/credentials/assign"
    refused = await makers.call("POST", assign, "maker", json={"customer_account_id": CUSTOMER, "count": 1})
    assert refused.status_code == 403
    by_count = await makers.call("POST", assign, "csm", json={"customer_account_id": CUSTOMER, "count": 3})
    assert by_count.status_code == 200, by_count.text
    assert [c["credential_id"] for c in by_count.json()["items"]] == ["INV00000000", "INV00000001", "INV00000002"]
    other = (await makers.credential("INV00000020"))["id"]
    by_ids = await makers.call("POST", assign, "csm", json={"customer_account_id": CUSTOMER, "ids": [other]})
    assert by_ids.status_code == 200 and by_ids.json()["items"][0]["state"] == "Assigned"
    again = await makers.call("POST", assign, "csm", json={"customer_account_id": CUSTOMER, "ids": [other]})
    assert again.status_code == 422 and again.json()["errors"][0]["field"] == "ids"
    too_many = await makers.call("POST", assign, "csm", json={"customer_account_id": CUSTOMER, "count": 1000})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "count"
    not_customer = await makers.call("POST", assign, "csm", json={"customer_account_id": OTHER_MAKER, "count": 1})
    assert not_customer.status_code == 422 and not_customer.json()["errors"][0]["field"] == "customer_account_id"
    both = await makers.call("POST", assign, "csm", json={"customer_account_id": CUSTOMER, "count": 1, "ids": []})
    assert both.status_code == 422
    to_customer = await makers.call("POST", f"/api/accounts/{CUSTOMER}/credentials/assign", "csm",
                                    json={"customer_account_id": CUSTOMER, "count": 1})  # fmt: skip
    assert to_customer.status_code == 403

    assigned = (await makers.inventory(state="Assigned")).json()["items"]
    assert len(assigned) == 4 and {c["assigned_account_id"] for c in assigned} == {CUSTOMER}
    assert len((await makers.inventory(state="Available", limit=200)).json()["items"]) == 21
    # the customer sees the four assigned to it, and nobody else's; the other customer none
    mine = (await makers.inventory(who="customer", account=CUSTOMER)).json()["items"]
    assert sorted(c["credential_id"] for c in mine) == sorted(c["credential_id"] for c in assigned)
    assert (await makers.inventory(who="other customer", account=OTHER_CUSTOMER)).json()["items"] == []
    assert (await makers.inventory(who="customer")).status_code == 404  # the manufacturer's own inventory


async def test_a_real_code_checks_valid_once_with_hotp_look_ahead_and_totp(makers: Makers) -> None:
    made = make_pskc(6, prefix="CHK")  # 0, 1, 3, 4: HOTP; 2, 5: TOTP
    await makers.ended((await makers.upload(made)).json()["id"])
    hotp = made.secrets["CHK00000000"]
    credential = await makers.credential("CHK00000000")

    async def valid(code: str, credential_id: str = credential["id"], who: str = "maker") -> bool:
        response = await makers.check(credential_id, code, who)
        assert response.status_code == 200, response.text
        return bool(response.json()["valid"])

    assert await valid(hotp_code(hotp, 0))
    assert not await valid(hotp_code(hotp, 0))  # a code is accepted once
    assert await valid(hotp_code(hotp, 5))  # a token pressed four times unseen: within the window
    assert not await valid(hotp_code(hotp, 3))  # the counter only moves forward
    assert not await valid(hotp_code(hotp, 17))  # beyond the window of 10 after counter 6
    assert await valid(hotp_code(hotp, 16), "CHK00000000")  # by serial too; at the window's edge

    totp = made.secrets["CHK00000002"]
    totp_id = (await makers.credential("CHK00000002"))["id"]
    now = time.time()
    assert await valid(totp_code(totp, now - 30), totp_id, "csm")  # the step before: clock drift
    assert await valid(totp_code(totp, now), totp_id, "csm")
    assert not await valid(totp_code(totp, now), totp_id, "csm")  # once
    assert not await valid(totp_code(totp, now - 30), totp_id, "csm")  # an earlier step after a later one

    # a customer checks only the credentials assigned to it; the other manufacturer none of these
    third = made.secrets["CHK00000003"]
    third_id = (await makers.credential("CHK00000003"))["id"]
    assert (await makers.check(third_id, hotp_code(third, 0), "customer")).status_code == 404
    assert (await makers.check(third_id, hotp_code(third, 0), "other maker")).status_code == 404
    assert (await makers.check(third_id, hotp_code(third, 0), "reseller")).status_code == 403
    assign = f"/api/accounts/{MAKER}/credentials/assign"
    await makers.call("POST", assign, "csm", json={"customer_account_id": CUSTOMER, "ids": [third_id]})
    assert await valid(hotp_code(third, 0), "CHK00000003", "customer")

    bad = await makers.check(third_id, "12ab56")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "code"
    assert (await makers.check("no-such-credential", "123456")).status_code == 404


async def test_checks_are_throttled_per_credential(makers: Makers) -> None:
    made = make_pskc(2, prefix="THR")
    await makers.ended((await makers.upload(made)).json()["id"])
    first = (await makers.credential("THR00000000"))["id"]
    second = (await makers.credential("THR00000001"))["id"]
    for _ in range(CHECKS_PER_MINUTE):
        response = await makers.check(first, "000000")
        assert response.status_code == 200 and response.json() == {"valid": False}
    throttled = await makers.check(first, hotp_code(made.secrets["THR00000000"], 0))
    assert throttled.status_code == 429, throttled.text
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert (await makers.check(second, hotp_code(made.secrets["THR00000001"], 0))).json() == {"valid": True}


async def test_no_answer_carries_a_secret(makers: Makers) -> None:
    """Every answer of an upload's life (both kinds of decryption input, the batch, the report, the inventory,
    assignment, checks) holds no secret in any form, nor the passphrase or pre-shared key."""
    with_passphrase = make_pskc(9, prefix="SEC")
    with_key = make_pskc(4, prefix="SEK", passphrase=None, preshared_key=PRESHARED)
    for made, fields in ((with_passphrase, {"passphrase": PASSPHRASE}), (with_key, {"preshared_key": PRESHARED.hex()})):
        response = await makers.upload(made, **fields)
        batch = await makers.ended(response.json()["id"])
        await makers.call("GET", batch["report"], "maker")
        await makers.upload(made, **fields)
    await makers.inventory(limit=200)
    serial = "SEC00000000"
    credential = await makers.credential(serial)
    await makers.call(
        "POST", f"/api/accounts/{MAKER}/credentials/assign", "csm", json={"customer_account_id": CUSTOMER, "count": 2}
    )
    await makers.inventory(who="customer", account=CUSTOMER)
    await makers.check(credential["id"], hotp_code(with_passphrase.secrets[serial], 0))
    await makers.check(credential["id"], hotp_code(with_passphrase.secrets[serial], 0))
    everything = b"\n".join(makers.answers)
    assert everything.count(b"SEC0000000") >= 9  # the answers were collected
    secrets = [*with_passphrase.secrets.values(), *with_key.secrets.values()]
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in everything
    for form in (PASSPHRASE.encode(), *secret_forms(PRESHARED)):
        assert form not in everything
