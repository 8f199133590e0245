"""`python -m starter.cli`: the production commands (the embedded stack runs its roles this way)."""

from starter.cli import app

app()
