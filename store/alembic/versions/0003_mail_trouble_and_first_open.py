"""mail trouble, first open of a form link, reseller index

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 05:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounced', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('bounce_reason', sa.Text(), nullable=True))
        batch_op.create_index('ix_enrollments_reseller_account_id', ['reseller_account_id'], unique=False)

    with op.batch_alter_table('form_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('event_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_message_id', ['message_id'], unique=False)

    op.create_table('mail_health',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_reply', sa.Text(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('mail_health')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_id')
        batch_op.drop_column('event_at')
        batch_op.drop_column('attempts')
    with op.batch_alter_table('form_links', schema=None) as batch_op:
        batch_op.drop_column('opened_at')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_reseller_account_id')
        batch_op.drop_column('bounce_reason')
        batch_op.drop_column('bounced')
