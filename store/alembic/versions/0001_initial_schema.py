"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:51:12.116286
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    
    op.create_table('accounts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('enrollment_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('organization_name', sa.String(length=200), nullable=False),
    sa.Column('organization_key', sa.String(length=200), nullable=False),
    sa.Column('member_type', sa.String(length=16), nullable=False),
    sa.Column('service_start_date', sa.Date(), nullable=False),
    sa.Column('service_end_date', sa.Date(), nullable=False),
    sa.Column('display_users_purchased', sa.Boolean(), nullable=False),
    sa.Column('users_purchased', sa.Integer(), nullable=True),
    sa.Column('users_existing', sa.Integer(), nullable=True),
    sa.Column('users_reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reseller_account_id', sa.String(length=64), nullable=True),
    sa.Column('contacts', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('enrollment_id')
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('ix_accounts_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_organization_key'), ['organization_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_accounts_reseller_account_id'), ['reseller_account_id'], unique=False)
        batch_op.create_index('ix_accounts_status_created', ['status', 'created_at', 'id'], unique=False)

    op.create_table('enrollments',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('organization_name', sa.String(length=200), nullable=False),
    sa.Column('organization_key', sa.String(length=200), nullable=False),
    sa.Column('member_type', sa.String(length=16), nullable=False),
    sa.Column('service_end_date', sa.Date(), nullable=False),
    sa.Column('display_users_purchased', sa.Boolean(), nullable=False),
    sa.Column('users_purchased', sa.Integer(), nullable=True),
    sa.Column('corporate_contact_email', sa.String(length=254), nullable=False),
    sa.Column('reseller_account_id', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.String(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('invitation_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('link_version', sa.Integer(), nullable=False),
    sa.Column('form', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index('ix_enrollments_created', ['created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_organization_key'), ['organization_key'], unique=False)
        batch_op.create_index('ix_enrollments_status_created', ['status', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_enrollments_type_created', ['member_type', 'created_at', 'id'], unique=False)

    op.create_table('form_links',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('enrollment_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('form_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_links_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table('organization_claims',
    sa.Column('organization_key', sa.String(length=200), nullable=False),
    sa.Column('enrollment_id', sa.String(length=64), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('organization_key')
    )
    op.create_table('outbox',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('enrollment_id', sa.String(length=64), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('recipients', sa.Text(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('message_id', sa.String(length=300), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table('timeline',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('enrollment_id', sa.String(length=64), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timeline_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_timeline_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
    with op.batch_alter_table('timeline', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timeline_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_timeline_account_id'))

    op.drop_table('timeline')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_account_id'))

    op.drop_table('outbox')
    op.drop_table('organization_claims')
    with op.batch_alter_table('form_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_links_enrollment_id'))

    op.drop_table('form_links')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_type_created')
        batch_op.drop_index('ix_enrollments_status_created')
        batch_op.drop_index(batch_op.f('ix_enrollments_organization_key'))
        batch_op.drop_index('ix_enrollments_created')

    op.drop_table('enrollments')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_status_created')
        batch_op.drop_index(batch_op.f('ix_accounts_reseller_account_id'))
        batch_op.drop_index(batch_op.f('ix_accounts_organization_key'))
        batch_op.drop_index('ix_accounts_created')

    op.drop_table('accounts')
    
