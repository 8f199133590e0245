"""The credentials store on SQLite and PostgreSQL: batches once per file, the idempotent import of a chunk, the
check against keys already imported, the end of a batch (its file and decryption input deleted), the inventory's
keyset pages, assignment, and the re-sealing under a new key."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from credentials.pskc import KeyEntry
from credentials.sealing import key_id_of
from domain.models import (
    AccountStatus,
    Actor,
    CredentialBatchStatus,
    CredentialState,
    MemberType,
    RecordAccount,
    TimelineEvent,
)
from store import credentials as store
from store.accounts import record_account
from store.db import transaction
from store.paging import BadCursor
from store.tables import Credential, CredentialBatch, CredentialStaged
from tests.credential_batches import secret_forms, secrets_keys_of
from tests.support import account_view

KEYS = secrets_keys_of("k1")
STAFF = Actor(kind="admin", email="staff@provider.example")
MAKER = "m1"
OTHER_MAKER = "m2"
CUSTOMER = "c1"


async def accounts(url: str) -> None:
    for account_id, member_type, status in (
        (MAKER, MemberType.manufacturer, AccountStatus.active),
        (OTHER_MAKER, MemberType.manufacturer, AccountStatus.active),
        (CUSTOMER, MemberType.customer, AccountStatus.active),
        ("c2", MemberType.customer, AccountStatus.suspended),
    ):
        view = account_view(
            id=account_id,
            enrollment_id=f"e-{account_id}",
            member_type=member_type,
            status=status,
            organization_name=f"Org {account_id}",
        )
        event = TimelineEvent(at=view.created_at, event="activated", actor="system")
        await record_account(url, RecordAccount(view=view, event_key=f"account-{account_id}/event-1", event=event))


def entries(count: int, *, prefix: str = "SN", start: int = 0) -> list[KeyEntry]:
    return [
        KeyEntry(
            index=i,
            serial=f"{prefix}{start + i:05d}",
            algorithm="HOTP" if i % 2 else "TOTP",
            digits=6,
            counter=0 if i % 2 else None,
            period=None if i % 2 else 30,
            secret=os.urandom(20),
        )
        for i in range(count)
    ]


async def new_batch(url: str, data: bytes = b"<file/>", account: str = MAKER) -> store.BatchView:
    view, created = await store.create_batch(
        url, KEYS, account_id=account, data=data, filename="batch.pskc", preshared_key=None, passphrase="pw", by=STAFF
    )
    assert created
    return view


async def imported(url: str, batch_id: str, keys: list[KeyEntry], chunk: int = 4) -> store.BatchView:
    await store.stage_keys(url, KEYS, batch_id, keys)
    for start in range(0, len(keys), chunk):
        await store.import_chunk(url, batch_id, start, min(chunk, len(keys) - start))
    return await store.finish_batch(url, batch_id)


async def test_the_same_file_again_answers_its_batch_and_a_rejected_one_starts_anew(database_url: str) -> None:
    await accounts(database_url)
    first = await new_batch(database_url, b"<pskc one/>")
    again, created = await store.create_batch(
        database_url,
        KEYS,
        account_id=MAKER,
        data=b"<pskc one/>",
        filename="other-name.pskc",
        preshared_key=bytes(16),
        passphrase=None,
        by=STAFF,
    )
    assert (again.id, created) == (first.id, False)
    assert (first.status, first.total, first.sha256) == (
        CredentialBatchStatus.importing,
        None,
        store.file_sha256(b"<pskc one/>"),
    )
    # Another manufacturer may upload the same file: batches are per account.
    assert (await new_batch(database_url, b"<pskc one/>", OTHER_MAKER)).id != first.id

    rejected = await store.reject_batch(database_url, first.id, "The passphrase is wrong.")
    assert (rejected.status, rejected.reason) == (CredentialBatchStatus.rejected, "The passphrase is wrong.")
    retry = await new_batch(database_url, b"<pskc one/>")
    assert retry.id != first.id, "a file rejected as a whole (a wrong passphrase) can be uploaded again"
    assert [b.id for b in await store.list_batches(database_url, MAKER)] == [retry.id, first.id]


async def test_a_batch_is_for_a_manufacturer_with_one_way_to_decrypt(database_url: str) -> None:
    await accounts(database_url)
    for account in (CUSTOMER, "nobody"):
        with pytest.raises(store.CredentialError) as refused:
            await new_batch(database_url, account=account)
        assert refused.value.field == "account_id"
    for preshared, passphrase in ((None, None), (bytes(16), "pw")):
        with pytest.raises(store.CredentialError) as refused:
            await store.create_batch(
                database_url,
                KEYS,
                account_id=MAKER,
                data=b"x",
                filename=None,
                preshared_key=preshared,
                passphrase=passphrase,
                by=STAFF,
            )
        assert refused.value.field == "decryption"


async def test_the_file_and_decryption_input_wait_sealed_and_are_deleted_when_the_batch_ends(database_url: str) -> None:
    await accounts(database_url)
    data = b"<KeyContainer>secret-looking file body</KeyContainer>"
    view, _ = await store.create_batch(
        database_url,
        KEYS,
        account_id=MAKER,
        data=data,
        filename="f.pskc",
        preshared_key=bytes.fromhex("00112233445566778899aabbccddeeff"),
        passphrase=None,
        by=STAFF,
    )
    async with transaction(database_url) as session:
        row = await session.get(CredentialBatch, view.id)
        assert row is not None and row.file_sealed is not None and row.decryption_sealed is not None
        assert data not in row.file_sealed and b"00112233445566778899aabbccddeeff" not in row.decryption_sealed
        assert key_id_of(row.file_sealed) == "k1"
    given = await store.import_input(database_url, KEYS, view.id)
    assert given is not None
    assert (given.data, given.preshared_key, given.passphrase) == (
        data,
        bytes.fromhex("00112233445566778899aabbccddeeff"),
        None,
    )
    assert "secret" not in repr(given) and "0011" not in repr(given)

    await store.stage_keys(database_url, KEYS, view.id, entries(3))
    ended = await store.finish_batch(database_url, view.id)
    assert ended.status == CredentialBatchStatus.imported and ended.finished_at is not None
    async with transaction(database_url) as session:
        row = await session.get(CredentialBatch, view.id)
        assert row is not None and row.file_sealed is None and row.decryption_sealed is None
        staged = await session.scalar(select(func.count()).select_from(CredentialStaged))
        assert staged == 0, "the staged keys go with the batch's end"
    assert await store.import_input(database_url, KEYS, view.id) is None
    assert (await store.finish_batch(database_url, view.id)).status == CredentialBatchStatus.imported, "safe again"


async def test_a_chunk_run_twice_imports_nothing_twice_and_records_each_rejection_once(database_url: str) -> None:
    await accounts(database_url)
    batch = await new_batch(database_url)
    keys = entries(10)
    keys[3] = KeyEntry(
        index=3,
        serial="SN00003",
        algorithm="HOTP",
        digits=7,
        counter=0,
        period=None,
        secret=None,
        problem="digits 7, not 6 or 8",
    )
    keys[7] = KeyEntry(
        index=7, serial="SN00001", algorithm="HOTP", digits=6, counter=0, period=None, secret=os.urandom(20)
    )
    assert await store.stage_keys(database_url, KEYS, batch.id, keys) == 10
    assert await store.stage_keys(database_url, KEYS, batch.id, keys) == 10, "staging again keeps what is staged"

    first = await store.import_chunk(database_url, batch.id, 0, 5)
    assert (first.processed, first.accepted) == (5, 4)
    again = await store.import_chunk(database_url, batch.id, 0, 5)
    assert (again.processed, again.accepted) == (5, 4), "the retried chunk imported nothing twice"
    second = await store.import_chunk(database_url, batch.id, 5, 5)
    assert (second.processed, second.accepted) == (10, 8)

    view = await store.finish_batch(database_url, batch.id)
    assert (view.total, view.processed, view.accepted, view.rejected) == (10, 10, 8, 2)
    report = await store.batch_rejections(database_url, batch.id)
    assert [(r.key_index, r.serial, r.reason) for r in report] == [
        (3, "SN00003", "digits 7, not 6 or 8"),
        (7, "SN00001", store.REPEATED_IN_FILE),
    ]
    page, _ = await store.list_credentials(database_url, batch_id=batch.id, limit=200)
    assert sorted(c.serial for c in page) == sorted(
        {k.serial or "" for k in keys if k.problem is None and k.index != 7}
    )
    assert len(page) == 8


async def test_a_key_already_imported_is_rejected_and_another_manufacturer_may_hold_the_same_serial(
    database_url: str,
) -> None:
    await accounts(database_url)
    first = await imported(database_url, (await new_batch(database_url, b"a")).id, entries(6))
    assert first.accepted == 6
    overlapping = entries(6, start=3)  # SN00003..SN00008: three of them imported already
    second = await imported(database_url, (await new_batch(database_url, b"b")).id, overlapping)
    assert (second.accepted, second.rejected) == (3, 3)
    rejected = await store.batch_rejections(database_url, second.id)
    assert [(r.serial, r.reason) for r in rejected] == [(f"SN{i:05d}", store.ALREADY_IMPORTED) for i in (3, 4, 5)]
    third = await imported(database_url, (await new_batch(database_url, b"a", OTHER_MAKER)).id, entries(6))
    assert third.accepted == 6, "a serial is unique within its manufacturer's account only"


async def test_a_secret_is_sealed_at_rest_and_opens_for_its_credential_only(database_url: str) -> None:
    await accounts(database_url)
    keys = entries(3)
    batch = await imported(database_url, (await new_batch(database_url)).id, keys)
    page, _ = await store.list_credentials(database_url, account_id=MAKER)
    by_serial = {c.serial: c for c in page}
    for key in keys:
        assert key.secret is not None
        assert await store.credential_secret(database_url, KEYS, by_serial[key.serial or ""].id) == key.secret
    async with transaction(database_url) as session:
        rows = list(await session.scalars(select(Credential).where(Credential.batch_id == batch.id)))
    for row in rows:
        assert row.key_id == "k1" and key_id_of(row.secret_sealed) == "k1"
        secret = next(k.secret for k in keys if k.serial == row.serial)
        assert secret is not None
        assert not any(form in row.secret_sealed for form in secret_forms(secret))
    assert "secret" not in repr(page[0])


async def test_the_inventory_pages_by_keyset_and_filters_by_serial_and_state(database_url: str) -> None:
    await accounts(database_url)
    await imported(database_url, (await new_batch(database_url)).id, entries(7, prefix="AB"), chunk=7)
    await imported(database_url, (await new_batch(database_url, b"two")).id, entries(3, prefix="XY"), chunk=3)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await store.list_credentials(database_url, account_id=MAKER, limit=4, cursor=cursor)
        seen.extend(c.serial for c in page)
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10, "every credential once, across pages of one import instant"
    assert set(seen[:3]) == {"XY00002", "XY00001", "XY00000"}, "newest import first"
    found, _ = await store.list_credentials(database_url, account_id=MAKER, q="xy0000")
    assert sorted(c.serial for c in found) == ["XY00000", "XY00001", "XY00002"]
    found, _ = await store.list_credentials(database_url, account_id=MAKER, q="%")
    assert found == [], "a LIKE wildcard in q is taken literally"
    assert (await store.list_credentials(database_url, account_id=OTHER_MAKER))[0] == []
    with pytest.raises(BadCursor):
        await store.list_credentials(database_url, account_id=MAKER, cursor="not-a-cursor")
    available, _ = await store.list_credentials(database_url, account_id=MAKER, state=CredentialState.assigned)
    assert available == []


async def test_staff_assign_available_credentials_by_count_or_by_ids(database_url: str) -> None:
    await accounts(database_url)
    await imported(database_url, (await new_batch(database_url)).id, entries(6))
    by_count = await store.assign_credentials(database_url, customer_account_id=CUSTOMER, by=STAFF, count=2)
    assert [c.serial for c in by_count] == ["SN00000", "SN00001"], "the oldest first"
    assert all(c.state == CredentialState.assigned and c.assigned_account_id == CUSTOMER for c in by_count)
    mine, _ = await store.list_credentials(database_url, assigned_account_id=CUSTOMER)
    assert sorted(c.serial for c in mine) == ["SN00000", "SN00001"]

    page, _ = await store.list_credentials(database_url, account_id=MAKER, state=CredentialState.available)
    ids = [c.id for c in page[:2]]
    by_ids = await store.assign_credentials(database_url, customer_account_id=CUSTOMER, by=STAFF, ids=ids)
    assert sorted(c.id for c in by_ids) == sorted(ids)

    with pytest.raises(store.CredentialError) as refused:
        await store.assign_credentials(database_url, customer_account_id=CUSTOMER, by=STAFF, ids=[ids[0]])
    assert refused.value.field == "ids", "an assigned credential is not available"
    with pytest.raises(store.CredentialError) as refused:
        await store.assign_credentials(database_url, customer_account_id=CUSTOMER, by=STAFF, count=3)
    assert (refused.value.field, refused.value.message) == ("count", "only 2 credentials are available")
    for customer in (MAKER, "c2", "nobody"):
        with pytest.raises(store.CredentialError) as refused:
            await store.assign_credentials(database_url, customer_account_id=customer, by=STAFF, count=1)
        assert refused.value.field == "customer_account_id"
    with pytest.raises(store.CredentialError):
        await store.assign_credentials(database_url, customer_account_id=CUSTOMER, by=STAFF)
    left, _ = await store.list_credentials(database_url, account_id=MAKER, state=CredentialState.available)
    assert len(left) == 2, "a refused assignment assigns nothing"


async def test_rekey_reseals_every_secret_under_the_new_key_once(database_url: str) -> None:
    await accounts(database_url)
    keys = entries(5)
    await imported(database_url, (await new_batch(database_url)).id, keys)
    waiting = await new_batch(database_url, b"still importing")
    await store.stage_keys(database_url, KEYS, waiting.id, entries(3, prefix="W"))

    with pytest.raises(store.RekeyError) as refused:
        await store.rekey(database_url, secrets_keys_of("k2"), batch=2)
    assert "'k1'" in str(refused.value)

    rotated = secrets_keys_of("k2", "k1")
    done = await store.rekey(database_url, rotated, batch=2)
    assert (done.credentials, done.staged, done.batches) == (5, 3, 1)
    again = await store.rekey(database_url, rotated, batch=2)
    assert (again.credentials, again.staged, again.batches) == (0, 0, 0), "idempotent"

    only_new = secrets_keys_of("k2")
    page, _ = await store.list_credentials(database_url, account_id=MAKER)
    for credential in page:
        secret = next(k.secret for k in keys if k.serial == credential.serial)
        assert await store.credential_secret(database_url, only_new, credential.id) == secret
    given = await store.import_input(database_url, only_new, waiting.id)
    assert given is not None and given.data == b"still importing" and given.passphrase == "pw"
    async with transaction(database_url) as session:
        assert set(await session.scalars(select(Credential.key_id))) == {"k2"}
        assert set(await session.scalars(select(CredentialStaged.key_id))) == {"k2"}
