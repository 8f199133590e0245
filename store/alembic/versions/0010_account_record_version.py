"""accounts.record_version: the workflow's event counter of the record a row holds

As 0009 for enrollments: a record of an account writes the row only when it is newer than the one the row
holds, so a timed-out attempt that is still running cannot overwrite a newer view. The counter grows across the
account workflow's runs (runs started before the `carried-handover` patch key by run and carry none). Existing
rows start with none (any record may write them). Added in place.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("record_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("accounts", "record_version")
