"""/dev/mailbox: the emails the embedded dev mail sink received (mounted only while it runs)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from starter.deps import SettingsDep
from starter.dev.mailsink import get_message, list_messages
from starter.portal.pages import HERE as PORTAL_PAGES

router = APIRouter(prefix="/dev/mailbox", include_in_schema=False)
# The mailbox's own pages, in the portal's base layout.
templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", PORTAL_PAGES / "templates"])
_URL = re.compile(r"https?://[^\s<>\"']+")


@router.get("", response_class=HTMLResponse)
async def mailbox(request: Request, settings: SettingsDep) -> HTMLResponse:
    messages = list_messages(settings.mailbox_dir)
    return templates.TemplateResponse(request, "mailbox.html", {"messages": messages})


@router.get("/{message_id}", response_class=HTMLResponse)
async def message(request: Request, message_id: str, settings: SettingsDep) -> HTMLResponse:
    found = get_message(settings.mailbox_dir, message_id)
    if found is None:
        raise HTTPException(404, "No such email in the dev mailbox.")
    links = list(dict.fromkeys(_URL.findall(found.text or "")))
    return templates.TemplateResponse(request, "mailbox_message.html", {"message": found, "links": links})
