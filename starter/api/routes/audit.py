"""GET /api/audit.csv: the whole audit trail as CSV, for an admin (the portal serves it at /admin/audit.csv;
both answer `starter.audit_csv`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from starter.audit_csv import audit_csv
from starter.deps import AuditExporter, SettingsDep

router = APIRouter(prefix="/api", tags=["audit"])


@router.get(
    "/audit.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "at, actor, source, event, ids, note"}},
)
async def export_audit(user: AuditExporter, settings: SettingsDep) -> StreamingResponse:
    """Every change ever recorded: enrollments, accounts, users and API tokens (admins only)."""
    return audit_csv(settings.effective_database_url)
