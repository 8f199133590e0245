"""The back-office portal and the contact's form: server-rendered pages, their templates, static files and the
signed-cookie session. Pages ask `starter.deps` and `domain.access` what the viewer may do."""

from __future__ import annotations

from starter.portal.pages import static_files
from starter.portal.routes import router

__all__ = ["router", "static_files"]
