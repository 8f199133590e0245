"""A manufacturer's credentials in the portal: upload a PSKC file, follow its batch's import, read its report
(and download it as CSV), the inventory of credentials, staff's assignment of credentials to a customer, and the
check of a code.

- `/accounts/{id}/credentials`: a manufacturer's account (its administrators, and staff): the upload form, its
  batches and its inventory; staff also assign available credentials to a customer there. A customer's account
  (its administrators, and staff): the credentials assigned to it. Anyone else: the 404 of an unknown account.
- `POST /accounts/{id}/credential-batches` (multipart: `file`, `decryption` = `preshared_key` | `passphrase`
  and `decryption_value`): the batch's page, with a status message.
- `/accounts/{id}/credential-batches/{batch_id}`: its status and a progress bar that refreshes itself every 2 s
  while the batch is Importing (`<meta http-equiv="refresh">`: no JavaScript), then its report.
- `/accounts/{id}/credential-batches/{batch_id}/report.csv`: the report, streamed.
- `/credentials/check`: a credential id (its serial) and a code → "Valid" or "Not valid" at the top.

Who may open them: `credentials.read` (staff, a manufacturer's and a customer's administrators) for the pages,
the report and the check, `credentials.upload` for the upload, `credentials.manage` for assigning; which account's
is the service's rule (`starter.services.credentials.CredentialService`): another account is the 404 of an unknown
one. These pages only show its answers. No page shows, echoes or keeps a secret: the key or passphrase typed is
never put back in the form.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from domain.access import STAFF, Permission, allows
from domain.models import AccountView, CredentialBatchStatus, CredentialState, MemberType, Role
from domain.settings import Settings
from starter.credentials_csv import report_csv
from starter.deps import AccountReaderDep, CredentialServiceDep, SettingsDep, actor_of, visible
from starter.portal.common import PortalRoute, choice, form_text, page, redirect
from starter.portal.session import PortalUser, require_portal
from starter.services.accounts import AccountReader
from starter.services.credentials import CredentialService
from starter.services.errors import InvalidInput, NotFound, ServiceError
from store.credentials import BatchView, batch_rejections
from store.tables import User

router = APIRouter(include_in_schema=False, route_class=PortalRoute)
CredentialReader = Annotated[User, require_portal(Permission.credentials_read)]
"""Staff, and the administrators of a manufacturer or a customer (which account's: the service decides)."""
CredentialUploader = Annotated[User, require_portal(Permission.credentials_upload)]
CredentialManager = Annotated[User, require_portal(Permission.credentials_manage)]
PAGE_SIZE = 50
REPORT_ROWS = 200
"""Rejected keys listed on the batch's page; the CSV has every one."""
REFRESH_SECONDS = 2
MAX_CODE = 16
MAX_ID = 128

LABELS = {
    "file": "PSKC file",
    "decryption": "Decryption",
    "decryption_value": "Key or passphrase",
    "customer_account_id": "Customer account id",
    "count": "Number of credentials",
    "credential_id": "Credential id",
    "code": "Code",
}
DECRYPTION = {"preshared_key": "Pre-shared key (hex)", "passphrase": "Passphrase"}
DECRYPTION_HELP = {
    "preshared_key": "The AES key agreed with the provider in advance, as 32, 48 or 64 hexadecimal digits.",
    "passphrase": "The passphrase the file's key was derived from (PBKDF2).",
}
STATE_CLASS = {"Available": "active", "Assigned": "in_review", "Disabled": "deleted"}
BATCH_CLASS = {"Importing": "new", "Imported": "active", "Rejected": "rejected"}

# `?done=` names one of these fixed sentences, filled in from the store, never from the URL.
BATCH_DONE = {
    "uploaded": "{file}: uploaded.",
    "again": "{file} was uploaded before, on {when}: this is its batch. Nothing is imported twice.",
}
ASSIGNED = "{count} credential{s} assigned to {customer}."


def member_links(user: User) -> list[tuple[str, str]] | None:
    """The Links pane of a member administrator (layout.html adds the credential pages for its role); None for
    staff, whose pane is the usual one."""
    if user.role in STAFF or not user.account_id:
        return None
    links = [(f"/accounts/{user.account_id}", "Account Summary"), ("/account/administrators", "Administrators")]
    if user.role == Role.reseller:
        links.insert(0, (f"/accounts/{user.account_id}/customers", "Your customers"))
    return links


def with_links(user: User, context: dict[str, object]) -> dict[str, object]:
    links = member_links(user)
    return context if links is None else {**context, "links": links}


def file_name(batch: BatchView) -> str:
    return batch.filename or "The file"


def may_upload(user: User, account: AccountView) -> bool:
    """Who sees the upload form: staff creators, and the manufacturer's own administrators (the service decides)."""
    if account.member_type != MemberType.manufacturer or not allows(user.role, Permission.credentials_upload):
        return False
    return user.role in STAFF or user.account_id == account.id


async def _assigned_message(request: Request, reader: AccountReader) -> str | None:
    params = request.query_params
    if params.get("done") != "assigned":
        return None
    raw = params.get("count", "")
    count = int(raw) if raw.isdigit() and len(raw) <= 7 else 0
    customer = "the customer"
    to = params.get("to", "")
    if 0 < len(to) <= 64:
        with contextlib.suppress(NotFound):
            customer = (await reader.get(to)).organization_name
    return ASSIGNED.format(count=f"{count:,}", s="" if count == 1 else "s", customer=customer)


async def credentials_page(
    request: Request,
    user: User,
    account: AccountView,
    service: CredentialService,
    settings: Settings,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    message: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    params = request.query_params
    q = (params.get("q") or "").strip()[:MAX_ID] or None
    state = choice(CredentialState, params.get("state"))
    filters: dict[str, object] = {"q": q, "state": state}
    cursor = (params.get("cursor") or "")[:500] or None
    found, next_cursor = await service.credentials(user, account.id, q=q, state=state, limit=PAGE_SIZE, cursor=cursor)
    manufacturer = account.member_type == MemberType.manufacturer
    batches = await service.batches(user, account.id) if manufacturer else []
    shown = {name: str(value) for name, value in filters.items() if value}
    base = f"/accounts/{account.id}/credentials"

    def link(cursor: str | None = None) -> str:
        query = {**shown, **({"cursor": cursor} if cursor else {})}
        return base + (f"?{urlencode(query)}#inventory" if query else "#inventory")

    context: dict[str, object] = {
        "a": account,
        "manufacturer": manufacturer,
        "staff_view": user.role in STAFF,
        "may_upload": may_upload(user, account),
        "may_assign": manufacturer and allows(user.role, Permission.credentials_manage),
        "batches": batches,
        "credentials": found,
        "next_cursor": next_cursor,
        "first_page": cursor is None,
        "filters": filters,
        "filtered": bool(shown),
        "link": link,
        "states": list(CredentialState),
        "state_class": STATE_CLASS,
        "batch_class": BATCH_CLASS,
        "decryption": DECRYPTION,
        "decryption_help": DECRYPTION_HELP,
        "max_mb": settings.pskc_max_bytes // (1024 * 1024),
        "values": values or {"decryption": "passphrase"},
        "errors": errors or {},
        "field_labels": LABELS,
        "problem": problem,
        "message": message,
    }
    return page(request, "portal/credentials.html", with_links(user, context), status_code=status)


async def seen_account(account_id: str, user: PortalUser, reader: AccountReaderDep) -> AccountView:
    """The account the page is about, if `user` may see it (else the 404 of an unknown account)."""
    return await visible(reader, user, account_id[:64])


SeenAccount = Annotated[AccountView, Depends(seen_account)]


@router.get("/accounts/{account_id}/credentials", response_class=HTMLResponse)
async def credentials(
    request: Request,
    user: CredentialReader,
    account: SeenAccount,
    service: CredentialServiceDep,
    reader: AccountReaderDep,
    settings: SettingsDep,
) -> Response:
    message = await _assigned_message(request, reader)
    return await credentials_page(request, user, account, service, settings, message=message)


def _field_of(name: str) -> str:
    """The form's field for a field the service names."""
    return "decryption_value" if name in ("preshared_key", "passphrase", "decryption") else name


@router.post("/accounts/{account_id}/credential-batches", response_class=HTMLResponse)
async def upload(
    request: Request,
    user: CredentialUploader,
    account: SeenAccount,
    service: CredentialServiceDep,
    settings: SettingsDep,
) -> Response:
    form = await request.form()
    kind = form_text(form, "decryption") or ""
    secret = form_text(form, "decryption_value") or ""
    values = {"decryption": kind if kind in DECRYPTION else ""}
    errors: dict[str, str] = {}
    upload = form.get("file")
    data = b""
    filename: str | None = None
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["file"] = "is required: choose the PSKC file of the batch."
    else:
        filename = upload.filename[-200:]
        data = await upload.read(settings.pskc_max_bytes + 1)
        if not data:
            errors["file"] = "is empty: choose the PSKC file of the batch."
    if kind not in DECRYPTION:
        errors["decryption"] = "is required: choose a pre-shared key or a passphrase."
    elif not secret:
        errors["decryption_value"] = f"is required: type the {DECRYPTION[kind].lower()}."
    if errors:
        return await credentials_page(
            request, user, account, service, settings, values=values, errors=errors, status=422
        )
    manufacturer = account.member_type == MemberType.manufacturer
    earlier = await _earlier_batch(service, user, account.id, data) if manufacturer else None
    try:
        batch = await service.upload(
            user,
            account.id,
            data=data,
            filename=filename,
            preshared_key=secret if kind == "preshared_key" else None,
            passphrase=secret if kind == "passphrase" else None,
            actor=actor_of(user),
        )
    except InvalidInput as exc:
        errors = {}
        for error in exc.errors:
            message = f"was refused: {error.message}" if error.field == "file" else error.message
            errors.setdefault(_field_of(error.field), message)
        return await credentials_page(
            request, user, account, service, settings, values=values, errors=errors, status=422
        )
    except NotFound:
        raise
    except ServiceError as exc:
        return await credentials_page(
            request, user, account, service, settings, values=values, problem=exc.message, status=exc.status
        )
    done = "again" if earlier is not None and earlier == batch.id else "uploaded"
    return redirect(f"/accounts/{account.id}/credential-batches/{batch.id}?done={done}")


async def _earlier_batch(service: CredentialService, user: User, account_id: str, data: bytes) -> str | None:
    """The id of a batch of this very file, not rejected as a whole, among the account's latest (for the status
    message only: the service decides)."""
    digest = hashlib.sha256(data).hexdigest()
    for batch in await service.batches(user, account_id):
        if batch.sha256 == digest and batch.status != CredentialBatchStatus.rejected:
            return batch.id
    return None


@router.get("/accounts/{account_id}/credential-batches/{batch_id}", response_class=HTMLResponse)
async def batch_page(
    request: Request,
    batch_id: str,
    user: CredentialReader,
    account: SeenAccount,
    service: CredentialServiceDep,
    settings: SettingsDep,
) -> Response:
    batch = await service.batch(user, account.id, batch_id[:64])
    progress = await service.progress(user, account.id, batch.id)
    status = progress.status
    if status != CredentialBatchStatus.importing and batch.status == CredentialBatchStatus.importing:
        batch = await service.batch(user, account.id, batch.id)  # it ended meanwhile: its final counts
    ended = status != CredentialBatchStatus.importing
    rejections = await batch_rejections(settings.effective_database_url, batch.id, limit=REPORT_ROWS) if ended else []
    template = BATCH_DONE.get(request.query_params.get("done", ""))
    message = (
        template.format(file=file_name(batch), when=batch.created_at.strftime("%d %b %Y, %H:%M UTC"))
        if (template)
        else None
    )
    if message is not None and status == CredentialBatchStatus.importing:
        message += " Its keys are being imported; this page follows the import."
    total = progress.total if progress.total is not None else batch.total
    context: dict[str, object] = {
        "a": account,
        "b": batch,
        "status": status,
        "processed": progress.processed,
        "total": total,
        "percent": (100 * progress.processed // total) if total else 0,
        "refresh": REFRESH_SECONDS if status == CredentialBatchStatus.importing else None,
        "rejections": rejections,
        "more_rejections": max(0, batch.rejected - len(rejections)),
        "batch_class": BATCH_CLASS,
        "staff_view": user.role in STAFF,
        "message": message,
    }
    return page(request, "portal/credential_batch.html", with_links(user, context))


@router.get("/accounts/{account_id}/credential-batches/{batch_id}/report.csv", response_class=StreamingResponse)
async def batch_report(
    batch_id: str, user: CredentialReader, account: SeenAccount, service: CredentialServiceDep, settings: SettingsDep
) -> StreamingResponse:
    """The batch's report as CSV (the API's `/api/accounts/{id}/credential-batches/{batch_id}/report.csv`):
    same access as the batch's page."""
    batch = await service.batch(user, account.id, batch_id[:64])
    return report_csv(settings.effective_database_url, batch)


# --- assigning credentials (staff) --------------------------------------------------------------------------------


@router.post("/accounts/{account_id}/credentials/assign", response_class=HTMLResponse)
async def assign(
    request: Request,
    user: CredentialManager,
    account: SeenAccount,
    service: CredentialServiceDep,
    settings: SettingsDep,
) -> Response:
    form = await request.form()
    customer = (form_text(form, "customer_account_id") or "").strip()[:64]
    raw_count = (form_text(form, "count") or "").strip().replace(",", "")[:9]
    values = {"customer_account_id": customer, "count": raw_count, "decryption": "passphrase"}
    errors: dict[str, str] = {}
    if not customer:
        errors["customer_account_id"] = "is required: the id of the customer's member account."
    if not re.fullmatch(r"[0-9]+", raw_count) or int(raw_count) < 1:
        errors["count"] = "must be a whole number of at least 1."
    if errors:
        return await credentials_page(
            request, user, account, service, settings, values=values, errors=errors, status=422
        )
    try:
        assigned = await service.assign(
            user, account.id, customer_account_id=customer, count=int(raw_count), ids=None, actor=actor_of(user)
        )
    except InvalidInput as exc:
        errors = {}
        for error in exc.errors:
            errors.setdefault(error.field if error.field in LABELS else "count", error.message)
        return await credentials_page(
            request, user, account, service, settings, values=values, errors=errors, status=422
        )
    except NotFound:
        raise
    except ServiceError as exc:
        return await credentials_page(
            request, user, account, service, settings, values=values, problem=exc.message, status=exc.status
        )
    query = urlencode({"done": "assigned", "count": len(assigned), "to": customer})
    return redirect(f"/accounts/{account.id}/credentials?{query}")


# --- checking a code ----------------------------------------------------------------------------------------------


def _check_page(
    request: Request,
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    valid: bool | None = None,
    problem: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    context: dict[str, object] = {
        "values": values or {},
        "errors": errors or {},
        "field_labels": LABELS,
        "valid": valid,
        "problem": problem,
    }
    return page(request, "portal/credential_check.html", with_links(user, context), status_code=status)


@router.get("/credentials/check", response_class=HTMLResponse)
async def check_form(request: Request, user: CredentialReader) -> Response:
    values = {"credential_id": (request.query_params.get("credential_id") or "").strip()[:MAX_ID]}
    return _check_page(request, user, values=values)


@router.post("/credentials/check", response_class=HTMLResponse)
async def check(request: Request, user: CredentialReader, service: CredentialServiceDep) -> Response:
    """The answer on the page itself (a code is used up once accepted: a reload must not check it again)."""
    form = await request.form()
    credential_id = (form_text(form, "credential_id") or "").strip()[:MAX_ID]
    code = re.sub(r"\s", "", form_text(form, "code") or "")[:MAX_CODE]
    values = {"credential_id": credential_id}
    errors: dict[str, str] = {}
    if not credential_id:
        errors["credential_id"] = "is required: the serial printed on the token."
    if not code:
        errors["code"] = "is required: the code the token shows now."
    elif not code.isdigit():
        errors["code"] = "must be digits only."
    if errors:
        return _check_page(request, user, values=values, errors=errors, status=422)
    try:
        valid = await service.check(user, credential_id, code)
    except NotFound:
        errors = {"credential_id": "is not a credential you may check. Check the serial and try again."}
        return _check_page(request, user, values=values, errors=errors, status=404)
    except InvalidInput as exc:
        errors = {e.field if e.field in LABELS else "code": e.message for e in exc.errors}
        return _check_page(request, user, values=values, errors=errors, status=422)
    except ServiceError as exc:
        return _check_page(request, user, values=values, problem=exc.message, status=exc.status)
    return _check_page(request, user, values=values, valid=valid)
