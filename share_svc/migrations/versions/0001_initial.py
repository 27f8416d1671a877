"""User shares.

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
        "shares",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("node_id", sa.String(36), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("grantee_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shares_grantee_node", "shares", ["grantee_id", "node_id"])
    op.create_index("ix_shares_owner", "shares", ["owner_id", "id"])
    op.create_index("uq_shares_node_grantee", "shares", ["node_id", "grantee_id"], unique=True)


def downgrade() -> None:
    op.drop_table("shares")
