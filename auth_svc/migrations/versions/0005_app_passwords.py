"""App passwords: a session's kind (login, app_password, basic_password) and an app password's hashed secret,
unique (every HTTP Basic request looks one up by it). Existing sessions are logins.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as t:
        t.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="login"))
        t.add_column(sa.Column("secret_hash", sa.String(64), nullable=True))
    op.create_index("ux_sessions_secret_hash", "sessions", ["secret_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_sessions_secret_hash", "sessions")
    with op.batch_alter_table("sessions") as t:
        t.drop_column("secret_hash")
        t.drop_column("kind")
