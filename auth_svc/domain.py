"""The account model and its rules. No gRPC, no SQLAlchemy."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from flowdock_kernel.errors import InvalidArgument

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_EMAIL = 254
MAX_DISPLAY_NAME = 100
MAX_DEVICE_NAME = 100
MAX_USER_AGENT = 200
RECOVERY_CODES = 10
MAX_APP_PASSWORD_NAME = 100
# An app password's secret: 160 random bits as 32 lower-case base32 characters, shown in groups of 4.
APP_PASSWORD_CHARS = 32
APP_PASSWORD_GROUP = 4
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_TOTP_CODE = re.compile(r"^\d{6}$")
_APP_PASSWORD = re.compile(rf"^[a-z2-7]{{{APP_PASSWORD_CHARS}}}$")


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class Purpose(StrEnum):
    """What a single-use mailed (or handed-out) token is for."""

    VERIFY_EMAIL = "verify_email"
    CHANGE_EMAIL = "change_email"
    RESET_PASSWORD = "reset_password"
    MFA = "mfa"


@dataclass
class User:
    id: str
    email: str
    display_name: str
    role: Role
    password_hash: str
    created_at: datetime
    disabled: bool = False
    email_verified: bool = False
    totp_secret: str = ""
    totp_enabled: bool = False
    totp_last_step: int = 0


class SessionKind(StrEnum):
    """How a session was started."""

    LOGIN = "login"
    # A named app password (HTTP Basic clients such as WebDAV): lives until revoked, no idle or absolute expiry.
    APP_PASSWORD = "app_password"
    # An HTTP Basic client sending the account password (only where the server allows it).
    BASIC_PASSWORD = "basic_password"


@dataclass
class Session:
    id: str
    user_id: str
    # The device's name; an app password's name.
    device_name: str
    created_at: datetime
    ip: str = ""
    user_agent: str = ""
    # An app password's: unset until first used.
    last_seen_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    kind: SessionKind = SessionKind.LOGIN
    # An app password's secret, hashed (SHA-256 of its normalised form); empty for other kinds.
    secret_hash: str = ""

    def is_active(self, now: datetime, idle: timedelta) -> bool:
        if self.revoked_at is not None:
            return False
        if self.expires_at is not None and now >= self.expires_at:
            return False
        if self.kind == SessionKind.APP_PASSWORD:
            return True  # a credential kept in a client's settings: it ends when revoked, not when idle
        last = self.last_seen_at or self.created_at
        return now - last < idle


@dataclass(frozen=True)
class OneTimeToken:
    token_hash: str
    purpose: Purpose
    user_id: str
    expires_at: datetime
    used_at: datetime | None = None
    data: str = ""


@dataclass(frozen=True)
class RefreshToken:
    token_hash: str
    session_id: str
    created_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    """One audit-trail entry. `details` must never hold a secret (password, code, token, TOTP secret)."""

    id: str
    at: datetime
    kind: str
    actor_id: str = ""
    subject_id: str = ""
    ip: str = ""
    user_agent: str = ""
    service: str = "auth"
    details: dict[str, str] = field(default_factory=dict)
    # Position in the stored trail (set when read back; a page token).
    cursor: str = ""


@dataclass(frozen=True)
class Client:
    """Where a request came from (as the gateway saw it)."""

    ip: str = ""
    user_agent: str = ""


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c)[0] == "C" for c in text)


def normalise_email(raw: str) -> str:
    """Trim and lower-case; addresses compare case-insensitively in practice (and for uniqueness here)."""
    email = unicodedata.normalize("NFC", raw.strip()).lower()
    if not email:
        raise InvalidArgument("email", "is required")
    if len(email) > MAX_EMAIL or not _EMAIL.match(email) or _has_control(email):
        raise InvalidArgument("email", "is not a valid email address")
    return email


def check_password(password: str, common: Collection[str] = (), *, field_name: str = "password") -> None:
    """Length only (ASVS 6.2): no composition rules, checked exactly as typed; the most common ones refused."""
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(field_name, f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument(field_name, f"must be at most {MAX_PASSWORD} characters")
    if password.lower() in common:
        raise InvalidArgument(field_name, "is one of the most commonly used passwords; choose another")


def clean_display_name(raw: str, email: str) -> str:
    name = unicodedata.normalize("NFC", raw.strip())
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidArgument("display_name", f"must be at most {MAX_DISPLAY_NAME} characters")
    if _has_control(name):
        raise InvalidArgument("display_name", "must not contain control characters")
    return name or email.split("@", 1)[0]


def clean_device_name(requested: str, user_agent: str) -> str:
    """The client's name for itself, else its user agent; control characters dropped, length capped."""
    name = requested.strip() or user_agent.strip()
    return "".join(c for c in name if not unicodedata.category(c).startswith("C"))[:MAX_DEVICE_NAME]


def clean_app_password_name(raw: str) -> str:
    """What the user calls an app password ("laptop WebDAV"): required, one line, at most 100 characters."""
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        raise InvalidArgument("name", 'is required (what the app password is for, e.g. "laptop WebDAV")')
    if len(name) > MAX_APP_PASSWORD_NAME:
        raise InvalidArgument("name", f"must be at most {MAX_APP_PASSWORD_NAME} characters")
    if _has_control(name):
        raise InvalidArgument("name", "must not contain control characters")
    return name


def format_app_password(chars: str) -> str:
    """`abcdefgh...` -> `abcd-efgh-...`: easy to read out and paste."""
    return "-".join(chars[i : i + APP_PASSWORD_GROUP] for i in range(0, len(chars), APP_PASSWORD_GROUP))


def normalise_app_password(typed: str) -> str:
    """The secret as stored (hashed): dashes, spaces and case do not matter. "" when `typed` cannot be one (an
    account password, say), so no lookup is made for it."""
    if len(typed) > 2 * APP_PASSWORD_CHARS:
        return ""
    chars = typed.replace("-", "").replace(" ", "").lower()
    return chars if _APP_PASSWORD.match(chars) else ""


def is_totp_code(code: str) -> bool:
    return bool(_TOTP_CODE.match(code))


def normalise_recovery_code(code: str) -> str:
    return code.strip().replace("-", "").replace(" ", "").lower()


def mask_email(email: str) -> str:
    """For log lines: `a***@example.org`."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID Connect provider from the configuration."""

    name: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: str = "openid email profile"
    # Explicit opt-in: a first login whose provider-verified email equals an existing, verified local account's
    # email links to that account. Off: such a login is refused (no silent takeover through a lax provider).
    link_verified_email: bool = False


@dataclass(frozen=True)
class OidcClaims:
    """What a verified ID token (and userinfo) told us."""

    subject: str
    email: str
    email_verified: bool
    name: str = ""


@dataclass(frozen=True)
class OidcState:
    state_hash: str
    provider: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    expires_at: datetime
    used_at: datetime | None = None


def oidc_link_decision(provider: OidcProvider, claims: OidcClaims, existing: User | None) -> str:
    """How a first OIDC login of (provider, subject) is resolved: "create", "link" or a refusal reason.

    Rules: with no local account of that email, create one (verified if the provider says so). With one, link
    only if the provider is configured to be trusted for emails (link_verified_email), the provider says the
    email is verified, and the local account's email is verified too; anything else is refused."""
    if existing is None:
        return "create"
    if provider.link_verified_email and claims.email_verified and existing.email_verified and not existing.disabled:
        return "link"
    return "refuse"


@dataclass(frozen=True)
class Quota:
    """A user's storage use and limit, as storage_svc reports it."""

    used_bytes: int
    reserved_bytes: int
    limit_bytes: int
