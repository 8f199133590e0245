"""A reseller's customers as a CSV download, which the API (`/api/accounts/{id}/customers.csv`) and the portal
(`/accounts/{id}/customers.csv`) both answer: one row per customer that is not Deleted, newest first, the figures
of the roll-up.

Streamed a page of customers at a time (a partner may have thousands). Every cell a spreadsheet could take for a
formula is prefixed with ', as in the audit export (`starter.audit_csv.cell`): an organization name typed as
`=HYPERLINK(...)` opens as text.

Empty cells: `users_purchased` and `users_available` are empty for a pay-as-you-go customer (display users
purchased is `no`), `users_existing` and `users_reported_at` for a customer whose usage was never reported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi.responses import StreamingResponse

from domain.models import AccountView
from starter.audit_csv import cell
from starter.services.accounts import AccountReader, AccountSummary
from starter.services.customers import customer_pages

COLUMNS = (
    "account_id",
    "organization_name",
    "status",
    "service_start_date",
    "service_end_date",
    "display_users_purchased",
    "users_purchased",
    "users_existing",
    "users_available",
    "users_over",
    "users_reported_at",
    "corporate_contact_email",
)


def _row(view: AccountView, summary: AccountSummary) -> list[str]:
    values: dict[str, object] = {
        "account_id": view.id,
        "organization_name": view.organization_name,
        "status": view.status.value,
        "service_start_date": view.service_start_date.isoformat(),
        "service_end_date": view.service_end_date.isoformat(),
        "display_users_purchased": "yes" if summary.display_users_purchased else "no",
        "users_purchased": summary.users_purchased,
        "users_existing": summary.users_existing,
        "users_available": summary.users_available,
        "users_over": summary.users_over,
        "users_reported_at": summary.users_reported_at,
        "corporate_contact_email": view.corporate_contact_email,
    }
    return [cell(values[column]) for column in COLUMNS]


async def _lines(reader: AccountReader, reseller_account_id: str) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    async for page in customer_pages(reader, reseller_account_id):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_row(view, summary) for view, summary in page)
        yield buffer.getvalue()


def filename(reseller_account_id: str) -> str:
    """`customers-<id>-<UTC time>.csv`, with nothing from the id that could break the header."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", reseller_account_id)[:64]
    return f"customers-{safe}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"


def customers_csv(reader: AccountReader, reseller_account_id: str) -> StreamingResponse:
    """The reseller's customers, streamed; the caller has checked that the viewer may see them
    (`starter.services.customers.visible_reseller`)."""
    return StreamingResponse(
        _lines(reader, reseller_account_id),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename(reseller_account_id)}"',
            "Cache-Control": "no-store",
        },
    )
