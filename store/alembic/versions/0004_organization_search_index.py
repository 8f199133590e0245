"""organization name search without a scan: a trigram index; indexes for the organization sorts

PostgreSQL: pg_trgm and a GIN trigram index on enrollments.organization_key (LIKE '%…%' uses it).
SQLite: an FTS5 table with the trigram tokenizer, kept in step by triggers (GLOB '*…*' uses it).
Either way a search of three characters or more reads the index; one or two characters scan (too short for a
trigram), which the README states.

The trigram index is built CONCURRENTLY (outside a transaction, in Alembic's autocommit block): a plain CREATE
INDEX holds a SHARE lock on enrollments for the whole build, so on a database with many enrollments every
insert and update (new enrollments, the workflows' records) would wait for it. This migration was first
released without CONCURRENTLY; changing it here is safe because databases that already ran it have the index
and never run it again, and only a database upgrading past 0003 from now on builds it this new way. The
autocommit block commits what came before it, so the steps around it are written to be run again after a
failure (IF NOT EXISTS / IF EXISTS, and an invalid index a failed concurrent build leaves is dropped first).
The SQLite triggers below are replaced by migration 0007 (keyed on the FTS rowid, not a full scan).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 14:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE enrollments_search USING fts5(organization_key, id UNINDEXED, tokenize='trigram')",
    "INSERT INTO enrollments_search (organization_key, id) SELECT organization_key, id FROM enrollments",
    """CREATE TRIGGER enrollments_search_insert AFTER INSERT ON enrollments BEGIN
        INSERT INTO enrollments_search (organization_key, id) VALUES (new.organization_key, new.id);
    END""",
    """CREATE TRIGGER enrollments_search_update AFTER UPDATE OF organization_key ON enrollments
    WHEN old.organization_key IS NOT new.organization_key BEGIN
        UPDATE enrollments_search SET organization_key = new.organization_key WHERE id = old.id;
    END""",
    """CREATE TRIGGER enrollments_search_delete AFTER DELETE ON enrollments BEGIN
        DELETE FROM enrollments_search WHERE id = old.id;
    END""",
]


ORGANIZATION_INDEXES = {
    "ix_enrollments_organization": ["organization_key", "id"],
    "ix_enrollments_status_organization": ["status", "organization_key", "id"],
    "ix_enrollments_type_organization": ["member_type", "organization_key", "id"],
}


TRIGRAM_INDEX = "ix_enrollments_organization_key_trgm"


def upgrade() -> None:
    for name, columns in ORGANIZATION_INDEXES.items():
        op.create_index(name, "enrollments", columns, if_not_exists=True)
    # (organization_key, id) serves what this one did
    op.drop_index("ix_enrollments_organization_key", table_name="enrollments", if_exists=True)
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # Outside any transaction: CREATE INDEX CONCURRENTLY lets writes to enrollments go on during the build.
        with op.get_context().autocommit_block():
            # A concurrent build that failed leaves an INVALID index of this name behind: start again.
            op.drop_index(TRIGRAM_INDEX, table_name="enrollments", if_exists=True, postgresql_concurrently=True)
            op.create_index(
                TRIGRAM_INDEX,
                "enrollments",
                ["organization_key"],
                postgresql_using="gin",
                postgresql_ops={"organization_key": "gin_trgm_ops"},
                postgresql_concurrently=True,
            )
    elif dialect == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    op.create_index("ix_enrollments_organization_key", "enrollments", ["organization_key"])
    for name in ORGANIZATION_INDEXES:
        op.drop_index(name, table_name="enrollments")
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_enrollments_organization_key_trgm")
    elif dialect == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS enrollments_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS enrollments_search")
