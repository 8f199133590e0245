"""enrollments.record_version: the workflow's event counter of the record a row holds

A record of an enrollment (the `record` activity) writes the row only when it is newer than the one the row
holds, so a timed-out attempt that is still running cannot overwrite a newer view. Existing rows start with
none (any record may write them). Added in place (no table copy on SQLite: its search triggers stay).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("enrollments", sa.Column("record_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("enrollments", "record_version")
