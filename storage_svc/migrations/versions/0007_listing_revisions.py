"""A revision number per folder, bumped by the database itself on every change to one of its children, so a
listing page cached by one process is known stale the moment any process or replica changes the folder
(storage_svc/readmodel.py, issue 15 item 4).

Triggers, not application code: every write path (uploads, moves, trash, purge, restore, versions, copies, and
whatever comes later) changes `nodes`, so none can forget to bump. The counter lives in a table of its own: a
column on the folder's own row would make the bump a change of that row, bumping its parent in turn, up to the root.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _bump(folder: str) -> str:
    """The upsert a trigger runs; `folder` is a trigger column reference (new/old.parent_id), never input."""
    return (
        f"INSERT INTO folder_revs (folder_id, rev) VALUES ({folder}, 1) "  # noqa: S608
        "ON CONFLICT (folder_id) DO UPDATE SET rev = folder_revs.rev + 1"
    )


def upgrade() -> None:
    op.create_table(
        "folder_revs",
        sa.Column("folder_id", sa.String(36), primary_key=True),
        sa.Column("rev", sa.BigInteger, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER nodes_rev_ai AFTER INSERT ON nodes WHEN new.parent_id IS NOT NULL "
            f"BEGIN {_bump('new.parent_id')}; END"
        )
        op.execute(
            "CREATE TRIGGER nodes_rev_ad AFTER DELETE ON nodes WHEN old.parent_id IS NOT NULL "
            f"BEGIN {_bump('old.parent_id')}; END"
        )
        op.execute(
            "CREATE TRIGGER nodes_rev_au_old AFTER UPDATE ON nodes WHEN old.parent_id IS NOT NULL "
            f"BEGIN {_bump('old.parent_id')}; END"
        )
        op.execute(
            "CREATE TRIGGER nodes_rev_au_new AFTER UPDATE ON nodes "
            "WHEN new.parent_id IS NOT NULL AND new.parent_id IS NOT old.parent_id "
            f"BEGIN {_bump('new.parent_id')}; END"
        )
    elif dialect == "postgresql":
        # OLD and NEW are read only where they exist (nested IFs: plpgsql does not promise short-circuit AND).
        op.execute(
            "CREATE FUNCTION nodes_rev() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF TG_OP = 'INSERT' THEN "
            f"IF NEW.parent_id IS NOT NULL THEN {_bump('NEW.parent_id')}; END IF; "
            "ELSIF TG_OP = 'DELETE' THEN "
            f"IF OLD.parent_id IS NOT NULL THEN {_bump('OLD.parent_id')}; END IF; "
            "ELSE "
            f"IF OLD.parent_id IS NOT NULL THEN {_bump('OLD.parent_id')}; END IF; "
            "IF NEW.parent_id IS NOT NULL AND NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN "
            f"{_bump('NEW.parent_id')}; END IF; "
            "END IF; "
            "RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER nodes_rev AFTER INSERT OR UPDATE OR DELETE ON nodes "
            "FOR EACH ROW EXECUTE FUNCTION nodes_rev()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("nodes_rev_ai", "nodes_rev_ad", "nodes_rev_au_old", "nodes_rev_au_new"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS nodes_rev ON nodes")
        op.execute("DROP FUNCTION IF EXISTS nodes_rev()")
    op.drop_table("folder_revs")
