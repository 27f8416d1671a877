"""The scrub's position and lease (one row), and versions by blob id (the order the scrub walks them in).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "scrub_state",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("position", sa.String(64), nullable=False, server_default=""),
        sa.Column("pass_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("credit", sa.Float, nullable=False, server_default="0"),
        sa.Column("ticked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("holder", sa.String(32), nullable=True),
        sa.Column("holder_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(table, [{"id": "blobs", "position": "", "credit": 0.0}])
    op.create_index("ix_versions_blob", "versions", ["blob_id"])


def downgrade() -> None:
    op.drop_index("ix_versions_blob", "versions")
    op.drop_table("scrub_state")
