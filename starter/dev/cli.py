"""The `enroll` console script: the production commands of `starter.cli`, plus `enroll up`."""

from __future__ import annotations

import typer

from domain.settings import Settings
from starter.cli import app
from starter.dev.stack import run_up


@app.command()
def up() -> None:
    """Run the whole stack on embedded defaults (Temporal dev server + UI, worker, API, dev mail sink)."""
    raise typer.Exit(run_up(Settings()))


__all__ = ["app"]
