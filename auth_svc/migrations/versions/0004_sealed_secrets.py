"""Room for sealed TOTP secrets (auth_svc/secretbox.py): the sealed form is longer than the 64 characters a plain
secret needed. Existing plaintext rows are sealed by auth_svc at start, where the key file is known.

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
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(255), existing_nullable=False, existing_server_default="")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(64), existing_nullable=False, existing_server_default="")
