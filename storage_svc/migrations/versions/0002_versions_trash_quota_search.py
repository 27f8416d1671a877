"""Versions, trash trees, quota counters, upload conflict policy and finishing state, name search index.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("version_id", sa.String(36), nullable=False, server_default=""))
        batch.add_column(sa.Column("trash_root_id", sa.String(36), nullable=True))
    op.create_index("ix_nodes_trash", "nodes", ["owner_id", "trash_root_id"])
    op.create_index("ix_nodes_listing_size", "nodes", ["parent_id", "kind_rank", "size", "id"])
    op.create_index("ix_nodes_listing_modified", "nodes", ["parent_id", "kind_rank", "modified_at", "id"])
    op.create_index("ix_nodes_owner_name", "nodes", ["owner_id", "name_key", "id"])

    op.create_table(
        "versions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("node_id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_versions_node", "versions", ["node_id", "number"], unique=True)
    op.create_index("ix_versions_owner", "versions", ["owner_id"])
    op.create_table(
        "quotas",
        sa.Column("owner_id", sa.String(36), primary_key=True),
        sa.Column("used_bytes", sa.BigInteger, nullable=False),
        sa.Column("reserved_bytes", sa.BigInteger, nullable=False),
        sa.Column("limit_bytes", sa.BigInteger, nullable=True),
    )
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("on_conflict", sa.String(16), nullable=False, server_default="fail"))
        batch.add_column(sa.Column("target_node_id", sa.String(36), nullable=False, server_default=""))
        batch.add_column(sa.Column("failure", sa.String(1024), nullable=False, server_default=""))
    op.create_index("ix_uploads_state", "uploads", ["state"])

    # Files from revision 0001 become version 1 of themselves; usage is counted from them.
    op.execute(
        "INSERT INTO versions (id, node_id, owner_id, number, blob_id, size, sha256, content_type, created_at) "
        "SELECT id, id, owner_id, 1, blob_id, size, sha256, content_type, modified_at FROM nodes WHERE kind = 'file'"
    )
    op.execute("UPDATE nodes SET version_id = id WHERE kind = 'file'")
    op.execute(
        "INSERT INTO quotas (owner_id, used_bytes, reserved_bytes) "
        "SELECT owner_id, SUM(size), 0 FROM nodes GROUP BY owner_id"
    )

    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_nodes_name_trgm ON nodes USING gin (name_key gin_trgm_ops)")
    elif dialect == "sqlite":
        # FTS5 trigram index over name_key, kept in step by triggers (external content: no second copy of names).
        op.execute(
            "CREATE VIRTUAL TABLE nodes_fts USING fts5(name_key, content='nodes', content_rowid='rowid', "
            "tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER nodes_fts_ai AFTER INSERT ON nodes BEGIN "
            "INSERT INTO nodes_fts(rowid, name_key) VALUES (new.rowid, new.name_key); END"
        )
        op.execute(
            "CREATE TRIGGER nodes_fts_ad AFTER DELETE ON nodes BEGIN "
            "INSERT INTO nodes_fts(nodes_fts, rowid, name_key) VALUES ('delete', old.rowid, old.name_key); END"
        )
        op.execute(
            "CREATE TRIGGER nodes_fts_au AFTER UPDATE OF name_key ON nodes BEGIN "
            "INSERT INTO nodes_fts(nodes_fts, rowid, name_key) VALUES ('delete', old.rowid, old.name_key); "
            "INSERT INTO nodes_fts(rowid, name_key) VALUES (new.rowid, new.name_key); END"
        )
        op.execute("INSERT INTO nodes_fts(nodes_fts) VALUES ('rebuild')")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("nodes_fts_ai", "nodes_fts_ad", "nodes_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS nodes_fts")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_nodes_name_trgm")
    op.drop_index("ix_uploads_state", "uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("failure")
        batch.drop_column("target_node_id")
        batch.drop_column("on_conflict")
    op.drop_table("quotas")
    op.drop_table("versions")
    for index in ("ix_nodes_owner_name", "ix_nodes_listing_modified", "ix_nodes_listing_size", "ix_nodes_trash"):
        op.drop_index(index, "nodes")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("trash_root_id")
        batch.drop_column("version_id")
