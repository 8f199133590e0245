"""credentials: manufacturers' PSKC batches, their staged keys and rejections, and the imported credentials

A batch keeps its uploaded file and decryption input sealed until it ends (then both are NULLed); its keys are
staged once, sealed, and imported chunk by chunk. A credential's serial is unique within its manufacturer's
account; its secret is sealed under `ENROLL_SECRETS_KEY`, with the id of the key it is sealed under.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credential_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("processed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("accepted", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("file_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("decryption_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # One batch per file and account; a batch rejected as a whole does not hold the file (uploaded again, it starts
    # anew).
    op.create_index(
        "uq_credential_batches_account_sha256",
        "credential_batches",
        ["account_id", "sha256"],
        unique=True,
        sqlite_where=sa.text("status <> 'Rejected'"),
        postgresql_where=sa.text("status <> 'Rejected'"),
    )
    op.create_index(
        "ix_credential_batches_account_created", "credential_batches", ["account_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "credential_staging",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("key_index", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Text(), nullable=True),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=True),
        sa.Column("counter", sa.BigInteger(), nullable=True),
        sa.Column("period", sa.Integer(), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["credential_batches.id"]),
        sa.PrimaryKeyConstraint("batch_id", "key_index"),
    )
    op.create_table(
        "credential_rejections",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("key_index", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["credential_batches.id"]),
        sa.PrimaryKeyConstraint("batch_id", "key_index"),
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=True),
        sa.Column("period", sa.Integer(), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("assigned_account_id", sa.String(length=64), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("key_index", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_counter", sa.BigInteger(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["credential_batches.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "serial", name="uq_credentials_account_serial"),
    )
    op.create_index("ix_credentials_key_id", "credentials", ["key_id"], unique=False)
    op.create_index("ix_credentials_assigned_account_id", "credentials", ["assigned_account_id"], unique=False)
    op.create_index("ix_credentials_batch_id", "credentials", ["batch_id"], unique=False)
    op.create_index("ix_credentials_account_imported", "credentials", ["account_id", "imported_at", "id"], unique=False)
    op.create_index(
        "ix_credentials_account_state_imported",
        "credentials",
        ["account_id", "state", "imported_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_credentials_account_state_imported", table_name="credentials")
    op.drop_index("ix_credentials_account_imported", table_name="credentials")
    op.drop_index("ix_credentials_batch_id", table_name="credentials")
    op.drop_index("ix_credentials_assigned_account_id", table_name="credentials")
    op.drop_index("ix_credentials_key_id", table_name="credentials")
    op.drop_table("credentials")
    op.drop_table("credential_rejections")
    op.drop_table("credential_staging")
    op.drop_index("ix_credential_batches_account_created", table_name="credential_batches")
    op.drop_index("uq_credential_batches_account_sha256", table_name="credential_batches")
    op.drop_table("credential_batches")
