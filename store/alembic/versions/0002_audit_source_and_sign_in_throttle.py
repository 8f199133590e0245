"""audit source and sign-in throttle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:12:40.854308
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The timeline is the audit trail: the code only inserts, and the database refuses anything else.
POSTGRES_APPEND_ONLY = [
    """CREATE FUNCTION timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the timeline is an append-only audit trail';
    END $$""",
    """CREATE TRIGGER timeline_append_only BEFORE UPDATE OR DELETE ON timeline
    FOR EACH ROW EXECUTE FUNCTION timeline_append_only()""",
]
SQLITE_APPEND_ONLY = [
    f"""CREATE TRIGGER timeline_no_{verb.lower()} BEFORE {verb} ON timeline
    BEGIN SELECT RAISE(ABORT, 'the timeline is an append-only audit trail'); END"""
    for verb in ("UPDATE", "DELETE")
]


def upgrade() -> None:
    
    op.create_table('sign_in_throttle',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=64), nullable=True))

    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_APPEND_ONLY if dialect == 'postgresql' else SQLITE_APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER timeline_append_only ON timeline')
        op.execute('DROP FUNCTION timeline_append_only()')
    else:
        op.execute('DROP TRIGGER timeline_no_update')
        op.execute('DROP TRIGGER timeline_no_delete')
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.drop_column('source')

    op.drop_table('sign_in_throttle')
    
