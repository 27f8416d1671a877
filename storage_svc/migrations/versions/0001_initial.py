"""Folder tree and upload sessions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("parent_id", sa.String(36), sa.ForeignKey("nodes.id"), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("name_key", sa.String(1024), nullable=False),
        sa.Column("kind_rank", sa.SmallInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True),
    )
    live = sa.text("trashed_at IS NULL")
    # Names are unique among live siblings (case-insensitively: name_key), enforced by the database.
    op.create_index(
        "uq_nodes_live_sibling",
        "nodes",
        ["parent_id", "name_key"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    # One root per owner.
    root = sa.text("parent_id IS NULL")
    op.create_index("uq_nodes_root", "nodes", ["owner_id"], unique=True, sqlite_where=root, postgresql_where=root)
    # Listing: one keyset query per page (folders first, then name).
    op.create_index("ix_nodes_listing", "nodes", ["parent_id", "kind_rank", "name_key", "id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("committed_size", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("node_id", sa.String(36), nullable=False),
        sa.Column("writer", sa.String(32), nullable=True),
        sa.Column("writer_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_uploads_owner_id", "uploads", ["owner_id"])
    op.create_index("ix_uploads_expires_at", "uploads", ["expires_at"])


def downgrade() -> None:
    op.drop_table("uploads")
    op.drop_table("nodes")
