"""Uploads remember their creator (an editor or a file-drop link writes into the owner's tree and quota).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("creator_id", sa.String(80), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("creator_id")
