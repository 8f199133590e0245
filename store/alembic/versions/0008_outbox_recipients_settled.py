"""an email to several recipients remembers who has it: a 4xx at RCPT for one retries only that one

`delivered_to`: the recipients the relay accepted the message for (one address a line), so a retry after a
4xx for another recipient sends only to those still owed, under the same Message-ID. `refused_to`: the
recipients refused for good (5xx at RCPT) meanwhile, `address: reply` a line, reported when the email is sent.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_to", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("refused_to", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("refused_to")
        batch_op.drop_column("delivered_to")
