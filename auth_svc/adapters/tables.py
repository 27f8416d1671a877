"""auth_svc's tables (SQLAlchemy Core; Alembic migrations own the schema) and the helpers every repository uses."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()),
    # Sealed (auth_svc/secretbox.py): longer than the secret itself.
    sa.Column("totp_secret", sa.String(255), nullable=False, server_default=""),
    sa.Column("totp_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("totp_last_step", sa.BigInteger, nullable=False, server_default="0"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("device_name", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ip", sa.String(64), nullable=False, server_default=""),
    sa.Column("user_agent", sa.String(200), nullable=False, server_default=""),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoke_reason", sa.String(32), nullable=False, server_default=""),
    # login, app_password or basic_password (domain.SessionKind).
    sa.Column("kind", sa.String(16), nullable=False, server_default="login"),
    # An app password's secret, hashed (SHA-256 hex); NULL for other kinds. Unique: the lookup of every HTTP Basic
    # request.
    sa.Column("secret_hash", sa.String(64), nullable=True),
    sa.Index("ux_sessions_secret_hash", "secret_hash", unique=True),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("private_pem", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("activate_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("retire_at", sa.DateTime(timezone=True), nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
)

one_time_tokens = sa.Table(
    "one_time_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("data", sa.String(512), nullable=False, server_default=""),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
)

rate_events = sa.Table(
    "rate_events",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_rate_events_key_at", "key", "at"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("actor_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("subject_id", sa.String(36), nullable=False, server_default="", index=True),
    sa.Column("ip", sa.String(64), nullable=False, server_default=""),
    sa.Column("user_agent", sa.String(200), nullable=False, server_default=""),
    sa.Column("service", sa.String(32), nullable=False, server_default="auth"),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
)


oidc_states = sa.Table(
    "oidc_states",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(128), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("redirect_uri", sa.String(512), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
)

user_identities = sa.Table(
    "user_identities",
    metadata,
    sa.Column("provider", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite gives naive ones back)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def must(value: datetime | None) -> datetime:
    """`aware` for a NOT NULL column."""
    out = aware(value)
    assert out is not None
    return out


def totp_context(user_id: str) -> str:
    """What `users.totp_secret` is sealed with (auth_svc/secretbox.py): a secret moved to another row won't open."""
    return f"totp:{user_id}"


def signing_context(kid: str) -> str:
    """What `signing_keys.private_pem` is sealed with."""
    return f"signing:{kid}"
