"""The whole audit trail as a CSV download, for an admin: the API (/api/audit.csv) and the portal
(/admin/audit.csv) both answer it.

Every cell a spreadsheet could take for a formula (starting with = + - @, a tab or a carriage return) is
prefixed with ', so opening the file runs nothing that someone typed into an audit note or a name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi.responses import StreamingResponse

from store import audit
from store.tables import TimelineEntry

COLUMNS = ("at", "actor", "source", "event", "enrollment_id", "account_id", "note")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_BATCH = 1000


def cell(value: object) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _row(entry: TimelineEntry) -> list[str]:
    return [cell(getattr(entry, column)) for column in COLUMNS]


async def _lines(url: str) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    after = 0
    while True:
        batch = await audit.entries(url, after=after, limit=_BATCH)
        writer.writerows(_row(entry) for entry in batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(batch) < _BATCH:
            return
        after = batch[-1].id


def audit_csv(url: str) -> StreamingResponse:
    """The audit trail in the order it was recorded, streamed in batches (it grows without end)."""
    name = f"audit-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        _lines(url),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
