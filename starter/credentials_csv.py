"""A credential batch's report as a CSV download, which the API
(`/api/accounts/{id}/credential-batches/{batch_id}/report.csv`) and the portal
(`/accounts/{id}/credential-batches/{batch_id}/report.csv`) both answer.

One row per key the batch rejected, in file order: its index in the file (0-based), its serial and the reason.
A batch rejected as a whole has one row instead, with no index or serial and the file's reason. The keys that
were imported are the inventory's (filter it by batch). Nothing secret is in it: ids, serials and reasons only.

Streamed a page of rejections at a time (a file may hold 100,000 keys). Every cell a spreadsheet could take for a
formula is prefixed with ', as in the audit export (`starter.audit_csv.cell`): a serial `=HYPERLINK(...)` in
a manufacturer's file opens as text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from domain.models import CredentialBatchStatus
from starter.audit_csv import cell
from store.credentials import BatchView, batch_rejections

COLUMNS = ("batch_id", "status", "key_index", "serial", "reason")
PAGE = 1000


async def _lines(url: str, batch: BatchView) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    if batch.status == CredentialBatchStatus.rejected and batch.reason:
        writer.writerow([cell(batch.id), batch.status.value, "", "", cell(batch.reason)])
    yield buffer.getvalue()
    after = -1
    while True:
        rows = await batch_rejections(url, batch.id, after=after, limit=PAGE)
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(
            [cell(batch.id), "Rejected key", str(r.key_index), cell(r.serial), cell(r.reason)] for r in rows
        )
        yield buffer.getvalue()
        after = rows[-1].key_index


def filename(batch_id: str) -> str:
    """`credential-batch-<id>-report.csv`, with nothing from the id that could break the header."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", batch_id)[:64]
    return f"credential-batch-{safe}-report.csv"


def report_csv(url: str, batch: BatchView) -> StreamingResponse:
    """The batch's report, streamed; the caller has checked that the viewer may see the batch
    (`CredentialService.batch`)."""
    return StreamingResponse(
        _lines(url, batch),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename(batch.id)}"',
            "Cache-Control": "no-store",
        },
    )
