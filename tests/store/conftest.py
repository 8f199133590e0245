"""What the store's tests share beyond tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from store.db import dispose_all
from store.migrate import upgrade_to_head


@pytest_asyncio.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated SQLite file, for the tests that are about SQLite alone."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'enroll.db'}"
    upgrade_to_head(url)
    yield url
    await dispose_all()
