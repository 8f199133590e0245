"""/healthz: 200 once the API reaches Temporal and the store, 503 with what is down otherwise."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from starter.api.deps import SettingsDep, get_client
from store.db import transaction

router = APIRouter(tags=["health"])


async def _store_ok(url: str) -> bool:
    try:
        async with transaction(url) as session:
            await session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "down" here, and the reason goes to the log
        return False


async def _temporal_ok(request: Request) -> bool:
    try:
        client = await get_client(request)
        return await asyncio.wait_for(client.service_client.check_health(), timeout=3)
    except Exception:  # noqa: BLE001
        return False


@router.get("/healthz")
async def healthz(request: Request, settings: SettingsDep) -> JSONResponse:
    store_ok, temporal_ok = await asyncio.gather(_store_ok(settings.effective_database_url), _temporal_ok(request))
    ok = store_ok and temporal_ok
    body = {
        "status": "ok" if ok else "unavailable",
        "temporal": "ok" if temporal_ok else "unreachable",
        "store": "ok" if store_ok else "unreachable",
        "task_queue": settings.task_queue,
    }
    return JSONResponse(body, status_code=200 if ok else 503)
