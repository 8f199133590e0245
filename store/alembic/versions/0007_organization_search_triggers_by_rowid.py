"""SQLite's name search kept in step by rowid: the update and delete triggers no longer scan enrollments_search

Migration 0004's triggers found an enrollment's row of the FTS5 table by `WHERE id = old.id`; `id` is an
UNINDEXED column of the virtual table, so FTS5 cannot look it up and every rename or delete read the whole
table (`SCAN enrollments_search VIRTUAL TABLE INDEX 0:`). Now each row is found by the FTS table's own rowid,
which FTS5 looks up directly (`INDEX 0:=`), through `enrollments_search_map` (enrollment id -> that rowid; its
primary key answers the lookup). The FTS rowid is used rather than enrollments' own rowid (an external-content
table), because enrollments has a text primary key, so its rowid is not stable: VACUUM and a batch migration's
table copy may renumber it, and the index would then silently point at other rows.

PostgreSQL: nothing to do (its trigram index is an ordinary index on the table).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = ("insert", "update", "delete")

SQLITE_UP = [
    *(f"DROP TRIGGER IF EXISTS enrollments_search_{trigger}" for trigger in TRIGGERS),
    "CREATE TABLE enrollments_search_map (id VARCHAR(64) NOT NULL PRIMARY KEY, search_rowid INTEGER NOT NULL)"
    " WITHOUT ROWID",
    "INSERT INTO enrollments_search_map (id, search_rowid) SELECT id, rowid FROM enrollments_search",
    # Within a trigger, last_insert_rowid() is the rowid of the row the trigger itself just inserted.
    """CREATE TRIGGER enrollments_search_insert AFTER INSERT ON enrollments BEGIN
        INSERT INTO enrollments_search (organization_key, id) VALUES (new.organization_key, new.id);
        INSERT INTO enrollments_search_map (id, search_rowid) VALUES (new.id, last_insert_rowid());
    END""",
    # The FTS row of enrollment old.id, by the map's primary key: a constant for FTS5's rowid lookup.
    """CREATE TRIGGER enrollments_search_update AFTER UPDATE OF organization_key ON enrollments
    WHEN old.organization_key IS NOT new.organization_key BEGIN
        UPDATE enrollments_search SET organization_key = new.organization_key
        WHERE rowid = (SELECT search_rowid FROM enrollments_search_map WHERE id = old.id);
    END""",
    """CREATE TRIGGER enrollments_search_delete AFTER DELETE ON enrollments BEGIN
        DELETE FROM enrollments_search
        WHERE rowid = (SELECT search_rowid FROM enrollments_search_map WHERE id = old.id);
        DELETE FROM enrollments_search_map WHERE id = old.id;
    END""",
]

# 0004's triggers, as they were.
SQLITE_DOWN = [
    *(f"DROP TRIGGER IF EXISTS enrollments_search_{trigger}" for trigger in TRIGGERS),
    "DROP TABLE IF EXISTS enrollments_search_map",
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


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
