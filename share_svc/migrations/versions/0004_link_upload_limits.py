"""A file-drop link's own limits (files, bytes) set by its owner; 0 keeps the deployment's.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("max_upload_files", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("max_upload_bytes", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.drop_column("max_upload_bytes")
        batch.drop_column("max_upload_files")
