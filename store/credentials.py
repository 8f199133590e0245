"""Manufacturers' credentials: the PSKC batches they upload, the import of each batch's keys, the inventory,
the assignment of credentials to customers, and the re-sealing of every secret under a new key.

A batch is created once per file (by SHA-256, per account): the same file again answers the batch it made,
unless that batch was rejected as a whole (a wrong passphrase, say), when it starts a new one. Until the batch
ends, the file and its decryption input wait here sealed (credentials.sealing, under `ENROLL_SECRETS_KEY`);
`prepare_batch` reads the file once and stages its keys, sealed; `import_chunk` moves a range of staged keys
into `credentials`, in one transaction, so a chunk retried after a crash imports nothing twice and loses nothing;
`finish_batch` (or `reject_batch`) ends it and deletes the file, the decryption input and the staged keys.

A credential's serial is unique within its manufacturer's account: a key repeated within a file, or against the
keys already imported, is rejected with that reason (`credential_rejections`). Its secret is sealed with the
associated data `credential:<account id>:<serial>`, so a sealed secret moved to another row does not open.

Nothing here returns, logs or raises a secret: views carry ids, counts and reasons.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import String, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from credentials.pskc import KeyEntry
from credentials.sealing import SecretsKeys, key_id_of, seal, unseal
from domain.models import Actor, CredentialBatchStatus, CredentialState, MemberType
from domain.webhooks import EventType
from store import audit, events
from store.db import transaction
from store.paging import NEWEST, BadCursor, decode_cursor, encode_cursor, escape_like, instant, now, page_size
from store.tables import Account, Credential, CredentialBatch, CredentialRejection, CredentialStaged, TimelineEntry

__all__ = ["BadCursor"]

MAX_SERIAL = 128
"""The longest serial (credential id) kept; a longer one rejects its key."""
STAGE_BATCH = 1000
"""Staged keys written per transaction while a file is read."""
INSERT_BATCH = 500
"""Rows per INSERT statement (well inside both databases' limit on bound parameters)."""
REKEY_BATCH = 500
"""Secrets re-sealed per transaction by `rekey`."""
ALGORITHMS = ("HOTP", "TOTP")
WITHOUT_FILE = (defer(CredentialBatch.file_sealed), defer(CredentialBatch.decryption_sealed))
"""Load options for a batch read without its sealed file (up to ENROLL_PSKC_MAX_BYTES, read twice over on the way
in): only `import_input` and `rekey` need it; every other read would copy it for nothing, each chunk included."""

ALREADY_IMPORTED = "serial already imported in an earlier batch"
REPEATED_IN_FILE = "serial repeated within the file"
SERIAL_TOO_LONG = f"serial longer than {MAX_SERIAL} characters"


class CredentialError(ValueError):
    """A request the store refuses: `field` names what is wrong, the message says it in a sentence."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class BatchView:
    """A batch as the API and portal show it: ids, counts, the reason of a rejected batch. No secret, no file."""

    id: str
    account_id: str
    sha256: str
    filename: str | None
    size: int
    status: CredentialBatchStatus
    total: int | None
    processed: int
    accepted: int
    rejected: int
    """Keys rejected one by one (`batch_rejections` lists them)."""
    reason: str | None
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Rejection:
    key_index: int
    serial: str | None
    reason: str


@dataclass(frozen=True)
class CredentialView:
    id: str
    account_id: str
    """The manufacturer's account."""
    serial: str
    algorithm: str
    digits: int
    counter: int | None
    period: int | None
    state: CredentialState
    assigned_account_id: str | None
    assigned_at: datetime | None
    batch_id: str
    imported_at: datetime


@dataclass(frozen=True)
class ImportInput:
    """A batch's file and decryption input, unsealed for `prepare_batch` only."""

    data: bytes = field(repr=False)
    preshared_key: bytes | None = field(repr=False)
    passphrase: str | None = field(repr=False)


@dataclass(frozen=True)
class ChunkImported:
    processed: int
    accepted: int


@dataclass(frozen=True)
class Rekeyed:
    credentials: int
    """Credentials re-sealed under the current key."""
    staged: int
    """Staged keys of batches still importing re-sealed."""
    batches: int
    """Batches still importing whose file and decryption input were re-sealed."""


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def credential_aad(account_id: str, serial: str) -> bytes:
    """The associated data a credential's secret is sealed with."""
    return f"credential:{account_id}:{serial}".encode()


def _file_aad(batch_id: str) -> bytes:
    return f"credential-batch:{batch_id}:file".encode()


def _decryption_aad(batch_id: str) -> bytes:
    return f"credential-batch:{batch_id}:decryption".encode()


def _insert(url: str) -> Any:
    return sqlite_insert if url.startswith("sqlite") else pg_insert


async def _rejected_counts(session: AsyncSession, batch_ids: Sequence[str]) -> dict[str, int]:
    if not batch_ids:
        return {}
    query = (
        select(CredentialRejection.batch_id, func.count())
        .where(CredentialRejection.batch_id.in_(batch_ids))
        .group_by(CredentialRejection.batch_id)
    )
    return {batch_id: int(n) for batch_id, n in (await session.execute(query)).all()}


def _batch_view(row: CredentialBatch, rejected: int) -> BatchView:
    return BatchView(
        id=row.id,
        account_id=row.account_id,
        sha256=row.sha256,
        filename=row.filename,
        size=row.size,
        status=CredentialBatchStatus(row.status),
        total=row.total,
        processed=row.processed,
        accepted=row.accepted,
        rejected=rejected,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _credential_view(row: Credential) -> CredentialView:
    return CredentialView(
        id=row.id,
        account_id=row.account_id,
        serial=row.serial,
        algorithm=row.algorithm,
        digits=row.digits,
        counter=row.counter,
        period=row.period,
        state=CredentialState(row.state),
        assigned_account_id=row.assigned_account_id,
        assigned_at=row.assigned_at,
        batch_id=row.batch_id,
        imported_at=row.imported_at,
    )


async def _view(session: AsyncSession, row: CredentialBatch) -> BatchView:
    return _batch_view(row, (await _rejected_counts(session, [row.id])).get(row.id, 0))


async def _live_batch(session: AsyncSession, account_id: str, sha256: str) -> CredentialBatch | None:
    """The batch of this file that was not rejected as a whole (at most one: a partial unique index)."""
    query = (
        select(CredentialBatch)
        .options(*WITHOUT_FILE)
        .where(
            CredentialBatch.account_id == account_id,
            CredentialBatch.sha256 == sha256,
            CredentialBatch.status != CredentialBatchStatus.rejected.value,
        )
    )
    return await session.scalar(query)


async def _recorded(session: AsyncSession, key: str) -> bool:
    return await session.scalar(select(TimelineEntry.id).where(TimelineEntry.key == key)) is not None


# --- batches -----------------------------------------------------------------------------------------------------


async def create_batch(
    url: str,
    keys: SecretsKeys,
    *,
    account_id: str,
    data: bytes,
    filename: str | None,
    preshared_key: bytes | None,
    passphrase: str | None,
    by: Actor,
) -> tuple[BatchView, bool]:
    """A new batch of the manufacturer's account for the file `data`, with the file and the decryption input
    sealed until it ends: (its view, True). The same file again (by SHA-256) answers the batch it made,
    (view, False), whatever decryption input comes with it; one whose batch was rejected as a whole starts anew.
    CredentialError (`account_id`) for an account that is not a manufacturer's."""
    if (preshared_key is None) == (passphrase is None):
        raise CredentialError("decryption", "give either a pre-shared key or a passphrase")
    digest = file_sha256(data)
    async with transaction(url) as session:
        account = await session.get(Account, account_id)
        if account is None or account.member_type != MemberType.manufacturer.value:
            raise CredentialError("account_id", "credentials are uploaded to a manufacturer's member account only")
        existing = await _live_batch(session, account_id, digest)
        if existing is not None:
            return await _view(session, existing), False
    batch_id = secrets.token_hex(8)
    decryption = json.dumps(
        {"preshared_key": preshared_key.hex() if preshared_key is not None else None, "passphrase": passphrase}
    ).encode()
    row = CredentialBatch(
        id=batch_id,
        account_id=account_id,
        sha256=digest,
        filename=(filename or None) and filename[-255:],
        size=len(data),
        status=CredentialBatchStatus.importing.value,
        total=None,
        processed=0,
        accepted=0,
        created_by=by.label[:254],
        created_at=now(),
        file_sealed=seal(keys, data, aad=_file_aad(batch_id)),
        decryption_sealed=seal(keys, decryption, aad=_decryption_aad(batch_id)),
    )
    try:
        async with transaction(url) as session:
            session.add(row)
            await session.flush()
            audit.append(
                session,
                event="credential batch uploaded",
                by=by,
                note=f"batch {batch_id}: {len(data)} bytes, SHA-256 {digest}",
                account_id=account_id,
                key=f"credential-batch/{batch_id}/uploaded",
            )
    except IntegrityError:
        # The same file arrived twice at once: the other upload's batch is the one.
        async with transaction(url) as session:
            existing = await _live_batch(session, account_id, digest)
            if existing is None:
                raise
            return await _view(session, existing), False
    return _batch_view(row, 0), True


async def get_batch(url: str, batch_id: str, *, account_id: str | None = None) -> BatchView | None:
    """The batch (None when unknown, or not of `account_id` when given)."""
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch_id, options=WITHOUT_FILE)
        if row is None or (account_id is not None and row.account_id != account_id):
            return None
        return await _view(session, row)


async def list_batches(url: str, account_id: str, *, limit: int = 50) -> list[BatchView]:
    """The account's batches, newest first."""
    query = (
        select(CredentialBatch)
        .options(*WITHOUT_FILE)
        .where(CredentialBatch.account_id == account_id)
        .order_by(CredentialBatch.created_at.desc(), CredentialBatch.id.desc())
        .limit(page_size(limit))
    )
    async with transaction(url) as session:
        rows = list(await session.scalars(query))
        counts = await _rejected_counts(session, [r.id for r in rows])
    return [_batch_view(r, counts.get(r.id, 0)) for r in rows]


async def batch_rejections(url: str, batch_id: str, *, after: int = -1, limit: int | None = None) -> list[Rejection]:
    """The batch's rejected keys in file order, from the key after index `after` (the report; `limit` per page)."""
    query = (
        select(CredentialRejection)
        .where(CredentialRejection.batch_id == batch_id, CredentialRejection.key_index > after)
        .order_by(CredentialRejection.key_index)
    )
    if limit is not None:
        query = query.limit(limit)
    async with transaction(url) as session:
        rows = list(await session.scalars(query))
    return [Rejection(key_index=r.key_index, serial=r.serial, reason=r.reason) for r in rows]


async def import_input(url: str, keys: SecretsKeys, batch_id: str) -> ImportInput | None:
    """The file and decryption input of a batch still importing, unsealed (None once the batch has ended)."""
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch_id)
        if row is None:
            raise LookupError(f"no credential batch {batch_id}")
        if row.status != CredentialBatchStatus.importing.value or row.file_sealed is None:
            return None
        file_sealed, decryption_sealed = row.file_sealed, row.decryption_sealed
    assert decryption_sealed is not None
    decryption = json.loads(unseal(keys, decryption_sealed, aad=_decryption_aad(batch_id)))
    preshared = decryption.get("preshared_key")
    return ImportInput(
        data=unseal(keys, file_sealed, aad=_file_aad(batch_id)),
        preshared_key=bytes.fromhex(preshared) if preshared is not None else None,
        passphrase=decryption.get("passphrase"),
    )


def _staged_row(batch_id: str, account_id: str, entry: KeyEntry, keys: SecretsKeys) -> dict[str, Any]:
    problem = entry.problem
    serial = entry.serial
    if problem is None and (serial is None or entry.secret is None or entry.algorithm not in ALGORITHMS):
        problem = "no serial" if serial is None else "the key could not be read"
    if problem is None and serial is not None and len(serial) > MAX_SERIAL:
        problem = SERIAL_TOO_LONG
    sealed = None
    if problem is None and serial is not None and entry.secret is not None:
        sealed = seal(keys, entry.secret, aad=credential_aad(account_id, serial))
    return {
        "batch_id": batch_id,
        "key_index": entry.index,
        "serial": serial,
        "algorithm": entry.algorithm[:200],
        "digits": entry.digits,
        "counter": entry.counter,
        "period": entry.period,
        "secret_sealed": sealed,
        "key_id": keys.current_id if sealed is not None else None,
        "problem": problem,
    }


async def stage_keys(
    url: str,
    keys: SecretsKeys,
    batch_id: str,
    entries: Sequence[KeyEntry],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Stage the keys the file gave (`credentials.pskc.read_keys`), each secret sealed, `STAGE_BATCH` per
    transaction (`progress` is told the count after each), and record their number as the batch's total.
    Safe to run again: a key staged already is kept. Answers the total."""
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch_id, options=WITHOUT_FILE)
        if row is None:
            raise LookupError(f"no credential batch {batch_id}")
        account_id = row.account_id
    insert = _insert(url)
    for start in range(0, len(entries), STAGE_BATCH):
        rows = [_staged_row(batch_id, account_id, e, keys) for e in entries[start : start + STAGE_BATCH]]
        async with transaction(url) as session:
            for part in range(0, len(rows), INSERT_BATCH):
                statement = insert(CredentialStaged).values(rows[part : part + INSERT_BATCH])
                await session.execute(statement.on_conflict_do_nothing(index_elements=["batch_id", "key_index"]))
        if progress is not None:
            progress(start + len(rows))
    async with transaction(url) as session:
        await session.execute(
            update(CredentialBatch)
            .where(CredentialBatch.id == batch_id, CredentialBatch.status == CredentialBatchStatus.importing.value)
            .values(total=len(entries))
        )
    return len(entries)


async def _end(session: AsyncSession, row: CredentialBatch) -> None:
    """Delete what waited for the batch to end: the sealed file, the decryption input, the staged keys."""
    row.file_sealed = None
    row.decryption_sealed = None
    await session.execute(delete(CredentialStaged).where(CredentialStaged.batch_id == row.id))


async def reject_batch(url: str, batch_id: str, reason: str, *, by: Actor | None = None) -> BatchView:
    """Reject the whole batch (a file-level problem) with `reason`, one sentence that carries no secret; nothing
    of it is imported. A batch that has ended already is left as it is."""
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch_id, with_for_update=True, options=WITHOUT_FILE)
        if row is None:
            raise LookupError(f"no credential batch {batch_id}")
        if row.status == CredentialBatchStatus.importing.value:
            row.status = CredentialBatchStatus.rejected.value
            row.reason = reason
            row.finished_at = now()
            await _end(session, row)
            key = f"credential-batch/{batch_id}/ended"
            if not await _recorded(session, key):
                audit.append(
                    session,
                    event="credential batch rejected",
                    by=by or Actor(kind="system"),
                    note=f"batch {batch_id}: {reason}",
                    account_id=row.account_id,
                    key=key,
                )
            view = await _view(session, row)
            await _ended_event(session, key, view, EventType.credential_batch_rejected)
            return view
        return await _view(session, row)


async def import_chunk(url: str, batch_id: str, start: int, count: int) -> ChunkImported:
    """Import the staged keys [start, start + count) of the batch, in one transaction: each becomes a credential
    unless its key was rejected, or its serial is one the account holds already (from an earlier batch, or from
    earlier in this file), when it is recorded as a rejection. Idempotent: a key imported already by an earlier
    attempt is found by its batch and index, and its rejection is recorded once."""
    insert = _insert(url)
    async with transaction(url) as session:
        batch = await session.get(CredentialBatch, batch_id, with_for_update=True, options=WITHOUT_FILE)
        if batch is None:
            raise LookupError(f"no credential batch {batch_id}")
        if batch.status != CredentialBatchStatus.importing.value:
            return ChunkImported(processed=batch.processed, accepted=batch.accepted)
        staged = list(
            await session.scalars(
                select(CredentialStaged)
                .where(
                    CredentialStaged.batch_id == batch_id,
                    CredentialStaged.key_index >= start,
                    CredentialStaged.key_index < start + count,
                )
                .order_by(CredentialStaged.key_index)
            )
        )
        serials = [s.serial for s in staged if s.problem is None and s.serial is not None]
        holders = await _holders(session, batch.account_id, serials)
        at = now()
        rows: list[dict[str, Any]] = []
        rejections: list[dict[str, Any]] = []
        for key in staged:
            if key.problem is not None or key.serial is None or key.secret_sealed is None or key.key_id is None:
                rejections.append(_rejection(key, key.problem or "the key could not be read"))
                continue
            holder = holders.get(key.serial)
            if holder == (batch_id, key.key_index):
                continue  # imported by an earlier attempt of this chunk
            if holder is not None:
                rejections.append(_rejection(key, REPEATED_IN_FILE if holder[0] == batch_id else ALREADY_IMPORTED))
                continue
            holders[key.serial] = (batch_id, key.key_index)
            rows.append(
                {
                    "id": secrets.token_hex(8),
                    "account_id": batch.account_id,
                    "serial": key.serial,
                    "algorithm": key.algorithm,
                    "digits": key.digits,
                    "counter": key.counter,
                    "period": key.period,
                    "secret_sealed": key.secret_sealed,
                    "key_id": key.key_id,
                    "state": CredentialState.available.value,
                    "batch_id": batch_id,
                    "key_index": key.key_index,
                    "imported_at": at,
                }
            )
        inserted: set[str] = set()
        for part in range(0, len(rows), INSERT_BATCH):
            statement = insert(Credential).values(rows[part : part + INSERT_BATCH])
            statement = statement.on_conflict_do_nothing(index_elements=["account_id", "serial"])
            inserted.update(await session.scalars(statement.returning(Credential.serial)))
        if lost := [r for r in rows if r["serial"] not in inserted]:
            # Another batch of the account imported the same serial at the same moment: it holds it.
            by_index = {k.key_index: k for k in staged}
            rejections.extend(_rejection(by_index[r["key_index"]], ALREADY_IMPORTED) for r in lost)
        for part in range(0, len(rejections), INSERT_BATCH):
            statement = insert(CredentialRejection).values(rejections[part : part + INSERT_BATCH])
            await session.execute(statement.on_conflict_do_nothing(index_elements=["batch_id", "key_index"]))
        accepted = await session.scalar(select(func.count()).where(Credential.batch_id == batch_id))
        batch.accepted = int(accepted or 0)
        end = start + count if batch.total is None else min(start + count, batch.total)
        batch.processed = max(batch.processed, end)
        return ChunkImported(processed=batch.processed, accepted=batch.accepted)


async def _holders(session: AsyncSession, account_id: str, serials: list[str]) -> dict[str, tuple[str, int]]:
    """serial → (batch id, key index) of the account's credentials among `serials`."""
    found: dict[str, tuple[str, int]] = {}
    for part in range(0, len(serials), INSERT_BATCH):
        query = select(Credential.serial, Credential.batch_id, Credential.key_index).where(
            Credential.account_id == account_id, Credential.serial.in_(serials[part : part + INSERT_BATCH])
        )
        found.update({serial: (batch, index) for serial, batch, index in (await session.execute(query)).all()})
    return found


def _rejection(key: CredentialStaged, reason: str) -> dict[str, Any]:
    return {"batch_id": key.batch_id, "key_index": key.key_index, "serial": key.serial, "reason": reason}


async def finish_batch(url: str, batch_id: str) -> BatchView:
    """End the batch: Imported (unless it was rejected as a whole), and its file, decryption input and staged keys
    deleted. Safe to run again."""
    async with transaction(url) as session:
        row = await session.get(CredentialBatch, batch_id, with_for_update=True, options=WITHOUT_FILE)
        if row is None:
            raise LookupError(f"no credential batch {batch_id}")
        ended = row.status == CredentialBatchStatus.importing.value
        key = f"credential-batch/{batch_id}/ended"
        if ended:
            row.status = CredentialBatchStatus.imported.value
            row.finished_at = now()
            rejected = (await _rejected_counts(session, [batch_id])).get(batch_id, 0)
            if not await _recorded(session, key):
                audit.append(
                    session,
                    event="credential batch imported",
                    by=Actor(kind="system"),
                    note=f"batch {batch_id}: {row.accepted} of {row.total or 0} keys imported, {rejected} rejected",
                    account_id=row.account_id,
                    key=key,
                )
        await _end(session, row)
        view = await _view(session, row)
        if ended:
            await _ended_event(session, key, view, EventType.credential_batch_imported)
        return view


REJECTED_SHOWN = 1000
"""Keys rejected one by one that a batch's JSON lists (`GET …/credential-batches/{id}` and its event); its
`rejected_count` counts them all and its report lists every one."""


def batch_path(account_id: str, batch_id: str) -> str:
    return f"/api/accounts/{account_id}/credential-batches/{batch_id}"


def batch_data(view: BatchView, rejected: Sequence[Rejection]) -> dict[str, Any]:
    """An ended batch as `GET /api/accounts/{id}/credential-batches/{batch_id}` shows it (`BatchOut`): ids,
    counts, the keys rejected (the first REJECTED_SHOWN) and the reason of a batch rejected as a whole. Never a
    secret or the file."""
    return {
        "id": view.id,
        "account_id": view.account_id,
        "status": view.status.value,
        "filename": view.filename,
        "size": view.size,
        "sha256": view.sha256,
        "total": view.total,
        "processed": view.processed,
        "accepted": view.accepted,
        "rejected": [{"credential_id": r.serial, "index": r.key_index, "reason": r.reason} for r in rejected],
        "rejected_count": view.rejected,
        "reason": view.reason,
        "created_by": view.created_by,
        "created_at": _json_time(view.created_at),
        "finished_at": _json_time(view.finished_at) if view.finished_at else None,
        "report": batch_path(view.account_id, view.id) + "/report.csv",
    }


def _json_time(at: datetime) -> str:
    """A time as the API's JSON writes it (pydantic: ISO 8601, UTC as `Z`)."""
    text: str = _TIME_JSON.dump_python(at, mode="json")
    return text


_TIME_JSON = TypeAdapter(datetime)


async def _ended_event(session: AsyncSession, key: str, view: BatchView, kind: EventType) -> None:
    """`credential_batch.imported` or `.rejected`, last in the transaction that ends the batch (store/events.py):
    about the manufacturer's account (and its reseller, if it has one)."""
    rows = await session.scalars(
        select(CredentialRejection)
        .where(CredentialRejection.batch_id == view.id)
        .order_by(CredentialRejection.key_index)
        .limit(REJECTED_SHOWN)
    )
    rejected = [Rejection(key_index=r.key_index, serial=r.serial, reason=r.reason) for r in rows]
    reseller = await session.scalar(select(Account.reseller_account_id).where(Account.id == view.account_id))
    await events.add_event(
        session,
        key=key,
        type=kind,
        created_at=view.finished_at or now(),
        data=batch_data(view, rejected),
        account_id=view.account_id,
        reseller_account_id=reseller,
    )


# --- the inventory -----------------------------------------------------------------------------------------------


async def list_credentials(
    url: str,
    *,
    account_id: str | None = None,
    assigned_account_id: str | None = None,
    batch_id: str | None = None,
    q: str | None = None,
    state: CredentialState | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[CredentialView], str | None]:
    """A page of credentials, newest import first, keyset-paginated on (imported_at, id): a manufacturer's
    (`account_id`), a customer's (`assigned_account_id`), a batch's; `q` is part of the serial (any case).
    BadCursor for a cursor this list did not hand out."""
    query = select(Credential)
    if account_id is not None:
        query = query.where(Credential.account_id == account_id)
    if assigned_account_id is not None:
        query = query.where(Credential.assigned_account_id == assigned_account_id)
    if batch_id is not None:
        query = query.where(Credential.batch_id == batch_id)
    if state is not None:
        query = query.where(Credential.state == state.value)
    if q:
        pattern = bindparam("serial_pattern", f"%{escape_like(q.strip().lower())}%", type_=String(), unique=True)
        query = query.where(func.lower(Credential.serial).like(pattern, escape="\\"))
    if cursor:
        stop = decode_cursor(cursor, NEWEST, instant)
        query = query.where(
            or_(
                Credential.imported_at < stop.key,
                and_(Credential.imported_at == stop.key, Credential.id < stop.row_id),
            )
        )
    size = page_size(limit)
    query = query.order_by(Credential.imported_at.desc(), Credential.id.desc()).limit(size + 1)
    async with transaction(url) as session:
        rows = list(await session.scalars(query))
    page = rows[:size]
    following = encode_cursor(NEWEST, page[-1].imported_at, page[-1].id) if len(rows) > size else None
    return [_credential_view(r) for r in page], following


async def get_credential(url: str, credential_id: str) -> CredentialView | None:
    async with transaction(url) as session:
        row = await session.get(Credential, credential_id)
        return _credential_view(row) if row is not None else None


async def credential_secret(url: str, keys: SecretsKeys, credential_id: str) -> bytes:
    """The credential's secret, unsealed: for the check of a code only, never to be shown or logged."""
    async with transaction(url) as session:
        row = await session.get(Credential, credential_id)
        if row is None:
            raise LookupError(f"no credential {credential_id}")
        return unseal(keys, row.secret_sealed, aad=credential_aad(row.account_id, row.serial))


@dataclass(frozen=True)
class CheckMaterial:
    """What the check of a code needs: the credential's parameters, the last code accepted, and its secret,
    unsealed. For `starter.services.credentials.CredentialService.check` only: never shown, logged or kept."""

    view: CredentialView
    last_counter: int | None
    last_step: int | None
    secret: bytes = field(repr=False)


async def credentials_by_serial(url: str, serial: str, *, limit: int = 10) -> list[CredentialView]:
    """The credentials whose serial is exactly `serial` (one per manufacturer's account at most)."""
    query = select(Credential).where(Credential.serial == serial[:MAX_SERIAL]).order_by(Credential.id).limit(limit)
    async with transaction(url) as session:
        return [_credential_view(r) for r in await session.scalars(query)]


async def check_material(url: str, keys: SecretsKeys, credential_id: str) -> CheckMaterial | None:
    """The credential and its secret unsealed, for the check of a code (None for an unknown id)."""
    async with transaction(url) as session:
        row = await session.get(Credential, credential_id)
        if row is None:
            return None
        view, sealed, last_counter, last_step = (
            _credential_view(row),
            row.secret_sealed,
            row.last_counter,
            row.last_step,
        )
    secret = unseal(keys, sealed, aad=credential_aad(view.account_id, view.serial))
    return CheckMaterial(view=view, last_counter=last_counter, last_step=last_step, secret=secret)


async def accept_counter(url: str, credential_id: str, counter: int) -> bool:
    """Record that the HOTP code at `counter` was accepted, if no code at `counter` or later was: True when this
    call moved the counter forward. One conditional UPDATE, so of two checks of the same code only one wins."""
    statement = (
        update(Credential)
        .where(
            Credential.id == credential_id,
            or_(Credential.last_counter.is_(None), Credential.last_counter < counter),
        )
        .values(last_counter=counter)
    )
    async with transaction(url) as session:
        result = await session.execute(statement)
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def accept_step(url: str, credential_id: str, step: int) -> bool:
    """Record that the TOTP code of time step `step` was accepted, if none of `step` or later was: True when this
    call did. One conditional UPDATE, so a code is accepted once even by two checks at the same moment."""
    statement = (
        update(Credential)
        .where(Credential.id == credential_id, or_(Credential.last_step.is_(None), Credential.last_step < step))
        .values(last_step=step)
    )
    async with transaction(url) as session:
        result = await session.execute(statement)
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def assign_credentials(
    url: str,
    *,
    customer_account_id: str,
    by: Actor,
    count: int | None = None,
    ids: Sequence[str] | None = None,
    manufacturer_account_id: str | None = None,
) -> list[CredentialView]:
    """Assign Available credentials to a customer's member account: `count` of them (the first imported first,
    in file order; of `manufacturer_account_id` when given), or exactly those of `ids`. All or nothing:
    CredentialError naming the field when the customer account is not an active customer's, when fewer are
    available than `count`, or when one of `ids` is unknown, of another manufacturer, or not Available."""
    if (count is None) == (ids is None):
        raise CredentialError("count", "give either a count or the ids of the credentials to assign")
    if count is not None and count < 1:
        raise CredentialError("count", "count must be a whole number of at least 1")
    if ids is not None and not ids:
        raise CredentialError("ids", "give at least one credential id")
    async with transaction(url) as session:
        customer = await session.get(Account, customer_account_id)
        if customer is None or customer.member_type != MemberType.customer.value:
            raise CredentialError("customer_account_id", "credentials are assigned to a customer's member account")
        if customer.status != "Active":
            raise CredentialError("customer_account_id", f"the customer's account is {customer.status}")
        available = select(Credential).where(Credential.state == CredentialState.available.value)
        if manufacturer_account_id is not None:
            available = available.where(Credential.account_id == manufacturer_account_id)
        if count is not None:
            query = available.order_by(Credential.imported_at, Credential.batch_id, Credential.key_index).limit(count)
            if not url.startswith("sqlite"):
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.scalars(query))
            if len(rows) < count:
                raise CredentialError("count", f"only {len(rows)} credentials are available")
        else:
            assert ids is not None
            wanted = list(dict.fromkeys(ids))
            query = available.where(Credential.id.in_(wanted))
            if not url.startswith("sqlite"):
                query = query.with_for_update()
            rows = list(await session.scalars(query))
            if missing := sorted(set(wanted) - {r.id for r in rows}):
                raise CredentialError("ids", f"not available to assign: {', '.join(missing[:20])}")
        at = now()
        for row in rows:
            result = await session.execute(
                update(Credential)
                .where(Credential.id == row.id, Credential.state == CredentialState.available.value)
                .values(state=CredentialState.assigned.value, assigned_account_id=customer_account_id, assigned_at=at)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise CredentialError("ids", f"credential {row.id} was assigned meanwhile; try again")
            row.state, row.assigned_account_id, row.assigned_at = (
                CredentialState.assigned.value,
                customer_account_id,
                at,
            )
        for manufacturer in sorted({r.account_id for r in rows}):
            serials = [r.serial for r in rows if r.account_id == manufacturer]
            note = f"{len(serials)} credentials assigned to account {customer_account_id}: {', '.join(serials[:20])}"
            if len(serials) > 20:
                note += ", …"
            audit.append(session, event="credentials assigned", by=by, note=note, account_id=manufacturer)
        audit.append(
            session,
            event="credentials assigned",
            by=by,
            note=f"{len(rows)} credentials assigned to this account",
            account_id=customer_account_id,
        )
        return [_credential_view(r) for r in rows]


# --- rotation ----------------------------------------------------------------------------------------------------


class RekeyError(RuntimeError):
    """A sealed value that the keys given cannot open (its key id is not among them): named by row, never by value."""


def _reseal(keys: SecretsKeys, blob: bytes, aad: bytes, what: str) -> bytes:
    if key_id_of(blob) not in keys.keys:
        raise RekeyError(
            f"{what} is sealed under key id {key_id_of(blob)!r}, which ENROLL_SECRETS_KEY does not hold: "
            "keep the old key in ENROLL_SECRETS_KEY (after the new one) until rekey has run"
        )
    return seal(keys, unseal(keys, blob, aad=aad), aad=aad)


async def rekey(
    url: str, keys: SecretsKeys, *, batch: int = REKEY_BATCH, progress: Callable[[int], None] | None = None
) -> Rekeyed:
    """Re-seal every secret not sealed under the current key id (`keys.current_id`): the credentials, the keys
    staged by batches still importing, and those batches' files and decryption inputs. `batch` rows per
    transaction (`progress` is told the credentials done so far). Idempotent: what is under the current key is
    left alone, so a rekey stopped halfway is simply run again. RekeyError names a row whose key id `keys` lacks."""
    current = keys.current_id
    credentials = 0
    while True:
        async with transaction(url) as session:
            query = (
                select(Credential.id, Credential.account_id, Credential.serial, Credential.secret_sealed)
                .where(Credential.key_id != current)
                .order_by(Credential.id)
                .limit(batch)
            )
            rows = (await session.execute(query)).all()
            for credential_id, account_id, serial, sealed in rows:
                resealed = _reseal(keys, sealed, credential_aad(account_id, serial), f"credential {credential_id}")
                await session.execute(
                    update(Credential)
                    .where(Credential.id == credential_id, Credential.secret_sealed == sealed)
                    .values(secret_sealed=resealed, key_id=current)
                )
        credentials += len(rows)
        if progress is not None and rows:
            progress(credentials)
        if len(rows) < batch:
            break
    staged = 0
    while True:
        async with transaction(url) as session:
            staged_query = (
                select(
                    CredentialStaged.batch_id,
                    CredentialStaged.key_index,
                    CredentialStaged.secret_sealed,
                    CredentialBatch.account_id,
                    CredentialStaged.serial,
                )
                .join(CredentialBatch, CredentialBatch.id == CredentialStaged.batch_id)
                .where(CredentialStaged.key_id.is_not(None), CredentialStaged.key_id != current)
                .limit(batch)
            )
            staged_rows = (await session.execute(staged_query)).all()
            for batch_id, index, staged_blob, owner, staged_serial in staged_rows:
                if staged_blob is None:
                    continue
                resealed = _reseal(
                    keys, staged_blob, credential_aad(owner, staged_serial or ""), f"staged key {batch_id}/{index}"
                )
                await session.execute(
                    update(CredentialStaged)
                    .where(CredentialStaged.batch_id == batch_id, CredentialStaged.key_index == index)
                    .values(secret_sealed=resealed, key_id=current)
                )
        staged += len(staged_rows)
        if len(staged_rows) < batch:
            break
    batches = 0
    async with transaction(url) as session:
        waiting = (
            await session.execute(select(CredentialBatch.id).where(CredentialBatch.file_sealed.is_not(None)))
        ).all()
    for (batch_id,) in waiting:
        async with transaction(url) as session:
            row = await session.get(CredentialBatch, batch_id, with_for_update=True)
            if row is None or row.file_sealed is None or row.decryption_sealed is None:
                continue
            if key_id_of(row.file_sealed) == current and key_id_of(row.decryption_sealed) == current:
                continue
            row.file_sealed = _reseal(keys, row.file_sealed, _file_aad(batch_id), f"the file of batch {batch_id}")
            row.decryption_sealed = _reseal(
                keys, row.decryption_sealed, _decryption_aad(batch_id), f"the decryption input of batch {batch_id}"
            )
            batches += 1
    return Rekeyed(credentials=credentials, staged=staged, batches=batches)
