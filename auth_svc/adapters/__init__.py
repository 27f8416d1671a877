"""auth_svc's adapters, one module per technology; bootstrap.py composes them.

- `tables`: the tables (SQLAlchemy Core metadata, what Alembic migrates) and the contexts sealed columns use
- `sql`: repositories, the unit of work, the audit trail, housekeeping
- `signing`: the Ed25519 signing keyring (access tokens, JWKS) and key rotation
- `hashing`: Argon2id password hashing, the common-password list
- `totp`: one-time passwords (RFC 6238)
- `ratelimit`: sliding-window rate limits in Redis or the database
- `mail`: SMTP and the file outbox
- `oidc`: the OpenID Connect relying party
- `peers`: clients of storage_svc's and share_svc's internal admin APIs

The names below are re-exported for tests and tools that import them from `auth_svc.adapters`."""

from auth_svc.adapters.hashing import Argon2Hasher, common_passwords
from auth_svc.adapters.mail import OutboxMailer, SmtpMailer
from auth_svc.adapters.oidc import ID_TOKEN_ALGORITHMS, HttpOidcClient
from auth_svc.adapters.peers import GrpcShareAdmin, GrpcStorageAdmin
from auth_svc.adapters.ratelimit import RedisRateLimiter, SqlRateLimiter
from auth_svc.adapters.signing import SigningKeyring, rotate_signing_key
from auth_svc.adapters.sql import (
    SqlAuditLog,
    SqlHousekeeping,
    SqlIdentities,
    SqlOidcStates,
    SqlOneTimeTokens,
    SqlRecoveryCodes,
    SqlRefreshTokens,
    SqlSessions,
    SqlUnitOfWork,
    SqlUsers,
    seal_legacy_rows,
)
from auth_svc.adapters.tables import (
    audit_events,
    metadata,
    oidc_states,
    one_time_tokens,
    rate_events,
    recovery_codes,
    refresh_tokens,
    sessions,
    signing_context,
    signing_keys,
    totp_context,
    user_identities,
    users,
)
from auth_svc.adapters.totp import PyOtpTotp

__all__ = [
    "ID_TOKEN_ALGORITHMS",
    "Argon2Hasher",
    "GrpcShareAdmin",
    "GrpcStorageAdmin",
    "HttpOidcClient",
    "OutboxMailer",
    "PyOtpTotp",
    "RedisRateLimiter",
    "SigningKeyring",
    "SmtpMailer",
    "SqlAuditLog",
    "SqlHousekeeping",
    "SqlIdentities",
    "SqlOidcStates",
    "SqlOneTimeTokens",
    "SqlRateLimiter",
    "SqlRecoveryCodes",
    "SqlRefreshTokens",
    "SqlSessions",
    "SqlUnitOfWork",
    "SqlUsers",
    "audit_events",
    "common_passwords",
    "metadata",
    "oidc_states",
    "one_time_tokens",
    "rate_events",
    "recovery_codes",
    "refresh_tokens",
    "rotate_signing_key",
    "seal_legacy_rows",
    "sessions",
    "signing_context",
    "signing_keys",
    "totp_context",
    "user_identities",
    "users",
]
