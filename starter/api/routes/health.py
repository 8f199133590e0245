"""/healthz: 200 once the API reaches Temporal and the store, 503 with what is down otherwise.

`mail` says whether the relay is accepting mail: `ok`, or `failing since <time>: <SMTP code and enhanced status>`
while emails wait and retry (that alone is not a 503: the API itself works, and no email is lost). `/healthz`
is public, and a relay's reply can quote an address or a name (`450 4.2.0 <pat@acme.example>: Greylisted`), so
it shows only the codes (or the kind of connection failure); the whole reply is for admins, on
`GET /api/mail-health` and the portal's banner."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from domain.access import Permission
from starter.deps import SettingsDep, get_client, require
from store import outbox
from store.db import transaction
from store.tables import User

router = APIRouter(tags=["health"])


async def _store_ok(url: str) -> bool:
    try:
        async with transaction(url) as session:
            await session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "down" here, and the reason goes to the log
        return False


_CODES = re.compile(r"^\s*([2-5]\d\d)(?:[ -]+([2-5]\.\d{1,3}\.\d{1,3})\b)?")
_FAILURE_KIND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")


def public_reply(reply: str) -> str:
    """What of a relay's reply anyone may see: its SMTP code and enhanced status (`450 4.2.0`), or the kind of
    failure when there was no reply (`SMTPConnectError`); never the text, which may quote an address or name."""
    codes = _CODES.match(reply)
    if codes:
        return " ".join(part for part in codes.groups() if part)
    kind = _FAILURE_KIND.match(reply)
    return kind.group(1) if kind else ""


def _since(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


async def mail_status(url: str) -> str:
    """`ok`, or since when the relay has been failing and its SMTP code (`unknown` while the store is
    unreachable). Public: no text of the reply (see the module's docstring)."""
    try:
        trouble = await outbox.mail_trouble(url)
    except Exception:  # noqa: BLE001 - the store's own line says why
        return "unknown"
    if trouble is None:
        return "ok"
    since, reply = trouble
    code = public_reply(reply)
    return f"failing since {_since(since)}: {code}" if code else f"failing since {_since(since)}"


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


class MailHealthOut(BaseModel):
    """The relay's health as admins see it: the whole last reply, addresses and all."""

    mail: Literal["ok", "failing"]
    failing_since: datetime | None = None
    last_reply: str | None = None
    """The relay's last reply while failing (`450 4.2.0 <pat@acme.example>: ... Greylisted`), or why it could not
    be reached."""


MailHealthReader = Annotated[User, require(Permission.mail_health)]


@router.get("/api/mail-health", response_model=MailHealthOut)
async def mail_health(settings: SettingsDep, user: MailHealthReader) -> MailHealthOut:
    """Admins only: whether the relay is accepting mail and, while it is not, since when and its whole last
    reply (the public `/healthz` shows only the codes, as a reply can quote an address)."""
    trouble = await outbox.mail_trouble(settings.effective_database_url)
    if trouble is None:
        return MailHealthOut(mail="ok")
    since, reply = trouble
    return MailHealthOut(mail="failing", failing_since=since, last_reply=reply)
