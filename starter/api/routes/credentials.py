"""A manufacturer's token secrets through the API (README "For manufacturers", docs/access.md):

- `POST /api/accounts/{id}/credential-batches`: a PSKC file (multipart `file`, and `preshared_key` in hex or
  `passphrase`) → `202 {id, status: "Importing"}`; the same file again answers the batch it made.
- `GET /api/accounts/{id}/credential-batches/{batch_id}`: the batch's status, progress and rejected keys;
  `…/report.csv`: its report.
- `GET /api/accounts/{id}/credentials`: the inventory (a manufacturer's imported credentials, a customer's
  assigned ones), keyset pages; `POST /api/accounts/{id}/credentials/assign`: staff assign some to a customer.
- `POST /api/credentials/check {credential_id, code}` → `{valid}`.

The role is checked first (`credentials.read`, `credentials.upload`, `credentials.manage`); which accounts and
credentials one may see is `starter.services.credentials`' (another's is a 404). No answer carries a secret,
the file or its decryption input: ids, counts, serials and reasons only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import UploadFile

from domain.models import CredentialBatchStatus, CredentialState, FieldError
from starter.api.body import JsonBodyRoute
from starter.api.responses import BODY_RESPONSES
from starter.api.schemas import Detail, ErrorList, refused
from starter.credentials_csv import report_csv
from starter.deps import (
    CredentialManager,
    CredentialReader,
    CredentialServiceDep,
    CredentialUploader,
    SettingsDep,
    actor_of,
)
from starter.services.credentials import CheckThrottled
from starter.services.errors import InvalidInput
from store.credentials import BatchView, CredentialView, Rejection

router = APIRouter(prefix="/api", tags=["credentials"], route_class=JsonBodyRoute)
REJECTED_SHOWN = 1000
"""Rejected keys listed in a batch's answer; `rejected_count` counts them all and the report lists every one."""
MAX_IDS = 10_000
REFUSALS: dict[int | str, dict[str, Any]] = {403: {"model": Detail}, 404: {"model": Detail}}


class BatchAccepted(BaseModel):
    """The upload's answer: the batch (a new one, `Importing`; or the batch the same file made before)."""

    id: str
    status: CredentialBatchStatus
    sha256: str


class RejectedKey(BaseModel):
    credential_id: str | None
    """The key's serial in the file (None when it has none)."""
    index: int
    """The key's position in the file, from 0."""
    reason: str


class BatchOut(BaseModel):
    """A batch: its status (`Importing`, `Imported`, `Rejected`), progress, the keys it rejected one by one and,
    for a batch rejected as a whole, the reason. Never a secret or the file."""

    id: str
    account_id: str
    status: CredentialBatchStatus
    filename: str | None
    size: int
    sha256: str
    total: int | None
    """The keys in the file (None until the file has been read)."""
    processed: int
    accepted: int
    rejected: list[RejectedKey]
    """The keys rejected one by one, in file order (the first REJECTED_SHOWN; the report has all)."""
    rejected_count: int
    reason: str | None
    """Why the whole batch was rejected."""
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
    report: str
    """The path of the batch's report (CSV)."""


class CredentialOut(BaseModel):
    """A credential of the inventory: its id, the serial its file gave it, what kind of token; never its secret."""

    id: str
    credential_id: str
    """The serial (the token's credential id, as printed on it)."""
    account_id: str
    """The manufacturer's account."""
    algorithm: str
    digits: int
    period: int | None
    state: CredentialState
    assigned_account_id: str | None
    assigned_at: datetime | None
    batch_id: str
    imported_at: datetime

    @classmethod
    def of(cls, view: CredentialView) -> CredentialOut:
        return cls(
            id=view.id,
            credential_id=view.serial,
            account_id=view.account_id,
            algorithm=view.algorithm,
            digits=view.digits,
            period=view.period,
            state=view.state,
            assigned_account_id=view.assigned_account_id,
            assigned_at=view.assigned_at,
            batch_id=view.batch_id,
            imported_at=view.imported_at,
        )


class CredentialPage(BaseModel):
    items: list[CredentialOut]
    next_cursor: str | None


class AssignRequest(BaseModel):
    """The body of POST /api/accounts/{id}/credentials/assign: the customer's account, and either a `count` of
    Available credentials (first imported first) or their `ids` (the inventory's `id`)."""

    model_config = ConfigDict(extra="forbid")

    customer_account_id: str = Field(min_length=1, max_length=64)
    count: int | None = Field(default=None, ge=1, le=100_000)
    ids: list[Annotated[str, Field(min_length=1, max_length=32)]] | None = Field(default=None, max_length=MAX_IDS)

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and (data.get("count") is None) == (data.get("ids") is None):
            raise refused(cls, [FieldError(field="count", message="give either a count or ids (not both)")])
        return data


class Assigned(BaseModel):
    items: list[CredentialOut]


class CheckRequest(BaseModel):
    """The body of POST /api/credentials/check: the credential (its `id`, or its serial) and the code."""

    model_config = ConfigDict(extra="forbid")

    credential_id: str = Field(min_length=1, max_length=128)
    code: str = Field(min_length=1, max_length=16)

    @model_validator(mode="before")
    @classmethod
    def _code_as_text(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("code"), int) and not isinstance(data["code"], bool):
            return {**data, "code": str(data["code"])}  # leading zeros are lost in a number: send it as text
        return data


class CheckResult(BaseModel):
    valid: bool


def batch_path(account_id: str, batch_id: str) -> str:
    return f"/api/accounts/{account_id}/credential-batches/{batch_id}"


def _batch_out(batch: BatchView, rejected: list[Rejection], processed: int, total: int | None) -> BatchOut:
    return BatchOut(
        id=batch.id,
        account_id=batch.account_id,
        status=batch.status,
        filename=batch.filename,
        size=batch.size,
        sha256=batch.sha256,
        total=total,
        processed=processed,
        accepted=batch.accepted,
        rejected=[RejectedKey(credential_id=r.serial, index=r.key_index, reason=r.reason) for r in rejected],
        rejected_count=batch.rejected,
        reason=batch.reason,
        created_by=batch.created_by,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
        report=batch_path(batch.account_id, batch.id) + "/report.csv",
    )


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The PSKC file (RFC 6030)."},
                        "preshared_key": {
                            "type": "string",
                            "description": "The pre-shared AES key, hex (32, 48 or 64 digits); or:",
                        },
                        "passphrase": {"type": "string", "description": "The PBKDF2 passphrase."},
                    },
                }
            }
        },
    }
}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@router.post(
    "/accounts/{account_id}/credential-batches",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchAccepted,
    responses={
        200: {"model": BatchAccepted, "description": "The same file was uploaded before and its batch has ended."},
        422: {"model": ErrorList},
        409: {"model": Detail},
        503: {"model": Detail},
        **REFUSALS,
    },
    openapi_extra=UPLOAD_BODY,
)
async def upload_batch(
    account_id: str, request: Request, user: CredentialUploader, service: CredentialServiceDep
) -> Response:
    """Upload a PSKC file of token secrets to a manufacturer's account: 202 with the new batch, `Importing`; its
    CredentialImportWorkflow imports the keys. The same file again (by SHA-256) answers the batch it made (200
    once that batch has ended). A file that is too large, hostile XML or not PSKC, and a missing or bad key or
    passphrase are 422, naming the field; a wrong key or passphrase rejects the batch (its `reason`)."""
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput([FieldError(field="file", message="is required: the PSKC file, as a multipart file")])
        data = await upload.read()
        filename = upload.filename
        preshared_key, passphrase = _text(form.get("preshared_key")), _text(form.get("passphrase"))
    finally:
        await form.close()
    batch = await service.upload(
        user,
        account_id,
        data=data,
        filename=filename,
        preshared_key=preshared_key,
        passphrase=passphrase,
        actor=actor_of(user),
    )
    answer = BatchAccepted(id=batch.id, status=batch.status, sha256=batch.sha256)
    code = status.HTTP_202_ACCEPTED if batch.status == CredentialBatchStatus.importing else status.HTTP_200_OK
    return JSONResponse(
        answer.model_dump(mode="json"),
        status_code=code,
        headers={"Location": batch_path(batch.account_id, batch.id)},
    )


@router.get(
    "/accounts/{account_id}/credential-batches/{batch_id}",
    response_model=BatchOut,
    responses=REFUSALS,
)
async def get_batch(account_id: str, batch_id: str, user: CredentialReader, service: CredentialServiceDep) -> BatchOut:
    """The batch: `Importing` (with `processed` of `total` keys), `Imported`, or `Rejected` (with its `reason`);
    the keys rejected one by one as `rejected: [{credential_id, index, reason}]`."""
    progress = await service.progress(user, account_id, batch_id)
    batch = await service.batch(user, account_id, batch_id)
    rejected = (await service.rejections(user, account_id, batch_id))[:REJECTED_SHOWN]
    if batch.status == CredentialBatchStatus.importing:
        processed, total = max(progress.processed, batch.processed), progress.total or batch.total
    else:
        processed, total = batch.processed, batch.total
    return _batch_out(batch, rejected, processed, total)


@router.get(
    "/accounts/{account_id}/credential-batches/{batch_id}/report.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "batch_id, status, key_index, serial, reason"},
        **REFUSALS,
    },
)
async def batch_report(
    account_id: str, batch_id: str, user: CredentialReader, service: CredentialServiceDep, settings: SettingsDep
) -> StreamingResponse:
    """The batch's report as CSV: a row per key rejected (its index, serial and reason), or the reason of a batch
    rejected as a whole. Cells a spreadsheet would take for a formula are prefixed with '."""
    batch = await service.batch(user, account_id, batch_id)
    return report_csv(settings.effective_database_url, batch)


@router.get("/accounts/{account_id}/credentials", response_model=CredentialPage, responses=REFUSALS)
async def list_credentials(
    account_id: str,
    user: CredentialReader,
    service: CredentialServiceDep,
    q: Annotated[str | None, Query(max_length=128, description="part of the serial, any case")] = None,
    state: CredentialState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CredentialPage:
    """The inventory, newest import first, a page at a time (`next_cursor`): a manufacturer's account lists the
    credentials it imported, a customer's those assigned to it."""
    items, next_cursor = await service.credentials(user, account_id, q=q, state=state, limit=limit, cursor=cursor)
    return CredentialPage(items=[CredentialOut.of(c) for c in items], next_cursor=next_cursor)


@router.post(
    "/accounts/{account_id}/credentials/assign",
    response_model=Assigned,
    responses={**BODY_RESPONSES, **REFUSALS},
)
async def assign_credentials(
    account_id: str, body: AssignRequest, user: CredentialManager, service: CredentialServiceDep
) -> Assigned:
    """Assign Available credentials of the manufacturer `{id}` to a customer's account (staff): `count` of them,
    first imported first, or those of `ids`. All or nothing: 422 naming the field when too few are available or
    an id is not Available."""
    assigned = await service.assign(
        user,
        account_id,
        customer_account_id=body.customer_account_id,
        count=body.count,
        ids=body.ids,
        actor=actor_of(user),
    )
    return Assigned(items=[CredentialOut.of(c) for c in assigned])


@router.post(
    "/credentials/check",
    response_model=CheckResult,
    responses={**BODY_RESPONSES, **REFUSALS, 429: {"model": Detail, "description": "Too many checks of it."}},
)
async def check_credential(body: CheckRequest, user: CredentialReader, service: CredentialServiceDep) -> Response:
    """Whether `code` is the credential's code now (TOTP, ±1 time step) or next (HOTP, up to 10 ahead), and was
    not accepted before: a code is valid once. Staff check any credential, a manufacturer its own, a customer
    those assigned to it. Checks of a credential are limited (CHECKS_PER_MINUTE; over it 429 with Retry-After)."""
    try:
        valid = await service.check(user, body.credential_id, body.code)
    except CheckThrottled as throttled:
        return JSONResponse(
            {"detail": throttled.message},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(throttled.retry_after)},
        )
    return JSONResponse(CheckResult(valid=valid).model_dump())
