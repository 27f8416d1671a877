"""Public links, failed link-password attempts, the link-session key; share grantee email and update time.

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
    with op.batch_alter_table("shares") as batch:
        batch.add_column(sa.Column("grantee_email", sa.String(320), nullable=False, server_default=""))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_shares_grantee", "shares", ["grantee_id", "id"])
    op.create_index("ix_shares_owner_node", "shares", ["owner_id", "node_id"])
    op.create_table(
        "links",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("node_id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("permission", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_downloads", sa.Integer, nullable=False),
        sa.Column("downloads", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_links_owner", "links", ["owner_id", "id"])
    op.create_index("ix_links_owner_node", "links", ["owner_id", "node_id"])
    op.create_table(
        "link_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_link_failures_key_at", "link_failures", ["key", "at"])
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_secrets")
    op.drop_table("link_failures")
    op.drop_table("links")
    op.drop_index("ix_shares_owner_node", "shares")
    op.drop_index("ix_shares_grantee", "shares")
    with op.batch_alter_table("shares") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("grantee_email")
