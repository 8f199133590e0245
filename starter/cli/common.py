"""Shared pieces of the `enroll` commands: running async jobs against the store, and reporting errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from domain.settings import Settings
from store.db import dispose_all
from store.migrate import upgrade_to_head

console = Console()
errors = Console(stderr=True)
T = TypeVar("T")


def run(make: Callable[[Settings], Awaitable[T]]) -> T:
    """Run one async job against the migrated store, and close its connections after."""
    settings = Settings()
    upgrade_to_head(settings.effective_database_url)

    async def job() -> T:
        try:
            return await make(settings)
        finally:
            await dispose_all()

    return asyncio.run(job())


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)
