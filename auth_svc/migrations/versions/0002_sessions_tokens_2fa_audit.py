"""Sessions (device, IP, lifetimes, revocation), refresh tokens, single-use tokens, 2FA, rate limits, audit trail,
signing key rotation.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as t:
        t.add_column(sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()))
        t.add_column(sa.Column("totp_secret", sa.String(64), nullable=False, server_default=""))
        t.add_column(sa.Column("totp_enabled", sa.Boolean, nullable=False, server_default=sa.false()))
        t.add_column(sa.Column("totp_last_step", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("sessions") as t:
        t.add_column(sa.Column("ip", sa.String(64), nullable=False, server_default=""))
        t.add_column(sa.Column("user_agent", sa.String(200), nullable=False, server_default=""))
        t.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("revoke_reason", sa.String(32), nullable=False, server_default=""))
    with op.batch_alter_table("signing_keys") as t:
        t.add_column(sa.Column("activate_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("retire_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_table(
        "one_time_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.String(512), nullable=False, server_default=""),
    )
    op.create_index("ix_one_time_tokens_user_id", "one_time_tokens", ["user_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "rate_events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_rate_events_key_at", "rate_events", ["key", "at"])
    op.create_table(
        "audit_events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("subject_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("user_agent", sa.String(200), nullable=False, server_default=""),
        sa.Column("service", sa.String(32), nullable=False, server_default="auth"),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_events_subject_id", "audit_events", ["subject_id"])
    # Accounts made before verification existed keep working.
    op.execute(sa.text("UPDATE users SET email_verified = :t").bindparams(t=True))


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("rate_events")
    op.drop_table("recovery_codes")
    op.drop_table("one_time_tokens")
    op.drop_table("refresh_tokens")
    with op.batch_alter_table("signing_keys") as t:
        t.drop_column("retire_at")
        t.drop_column("activate_at")
    with op.batch_alter_table("sessions") as t:
        for name in ("revoke_reason", "revoked_at", "expires_at", "last_seen_at", "user_agent", "ip"):
            t.drop_column(name)
    with op.batch_alter_table("users") as t:
        for name in ("totp_last_step", "totp_enabled", "totp_secret", "email_verified"):
            t.drop_column(name)
