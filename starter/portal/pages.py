"""Server-rendered pages: the Jinja2 environment and static files the portal shares, and the `record` path
convertor its routes use for ids."""

from __future__ import annotations

from pathlib import Path

from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.convertors import Convertor, register_url_convertor

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
static_files = StaticFiles(directory=HERE / "static")


class RecordId(Convertor[str]):
    """An id in a portal path (`{account_id:record}`): one segment, but never a fixed one beside it
    (`/accounts/new`, `/enroll/thanks`), so which route answers never depends on the order of registration."""

    regex = "(?!(?:new|thanks)(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("record", RecordId())
