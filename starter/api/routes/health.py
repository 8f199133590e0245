"""/healthz: 200 once the API reaches Temporal and the store, 503 with what is down otherwise.

`mail` says whether the relay is accepting mail: `ok`, or `failing since <time>: <its last reply>` while
emails wait and retry (that alone is not a 503: the API itself works, and no email is lost)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from starter.deps import SettingsDep, get_client
from store import outbox
from store.db import transaction

router = APIRouter(tags=["health"])


async def _store_ok(url: str) -> bool:
    try:
        async with transaction(url) as session:
            await session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "down" here, and the reason goes to the log
        return False


async def mail_status(url: str) -> str:
    """`ok`, or since when and how the relay has been failing (`unknown` while the store is unreachable)."""
    try:
        trouble = await outbox.mail_trouble(url)
    except Exception:  # noqa: BLE001 - the store's own line says why
        return "unknown"
    if trouble is None:
        return "ok"
    since, reply = trouble
    return f"failing since {since.isoformat(timespec='seconds')}: {reply}"


async def _temporal_ok(request: Request) -> bool:
    try:
        client = await get_client(request)
        return await asyncio.wait_for(client.service_client.check_health(), timeout=3)
    except Exception:  # noqa: BLE001
        return False


@router.get("/healthz")
async def healthz(request: Request, settings: SettingsDep) -> JSONResponse:
    url = settings.effective_database_url
    store_ok, temporal_ok, mail = await asyncio.gather(_store_ok(url), _temporal_ok(request), mail_status(url))
    ok = store_ok and temporal_ok
    body = {
        "status": "ok" if ok else "unavailable",
        "temporal": "ok" if temporal_ok else "unreachable",
        "store": "ok" if store_ok else "unreachable",
        "task_queue": settings.task_queue,
        "mail": mail,
    }
    return JSONResponse(body, status_code=200 if ok else 503)
