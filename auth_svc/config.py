"""auth_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, non_negative, one_of, port, positive, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthConfig(CommonConfig):
    @property
    def secrets_key_path(self) -> Path:
        return Path(self.auth_secrets_key_file) if self.auth_secrets_key_file else self.data_dir / "auth-secrets.key"

    key_prefix: ClassVar[str] = "auth_"

    auth_access_token_ttl_seconds: int = setting(300, "Lifetime of an access token.", check=positive)
    auth_argon2_memory_kib: int = setting(19456, "Argon2id memory cost (OWASP minimum 19 MiB).", check=positive)
    auth_argon2_time_cost: int = setting(2, "Argon2id iterations.", check=positive)
    auth_argon2_parallelism: int = setting(1, "Argon2id lanes.", check=positive)
    auth_hash_workers: int = setting(
        1,
        "Threads hashing and verifying passwords (off the event loop); about the CPU cores auth_svc may use for it.",
        check=positive,
    )
    auth_hash_queue: int = setting(
        8,
        "Password hashings that may wait for a worker; beyond that a call is refused at once with "
        "RESOURCE_EXHAUSTED and a retry delay (never an unbounded backlog).",
        check=non_negative,
    )
    auth_hash_per_client: int = setting(
        1,
        "Password hashings one client IP may have running or waiting at once (a few flooding clients cannot fill "
        "the queue for everyone; 0 = no per-client cap).",
        check=non_negative,
    )
    auth_session_max_age_seconds: int = setting(
        30 * 86400, "Absolute lifetime of a session (refreshing does not extend it).", check=positive
    )
    auth_session_idle_seconds: int = setting(
        7 * 86400, "A session unused (no call, no refresh) for this long ends.", check=positive
    )
    auth_require_verified_email: bool = setting(True, "Refuse login until the email address is verified.")
    auth_public_url: str = setting(
        "http://127.0.0.1:8080",
        "Base URL of the web app: links in verification and reset mails (<url>/verify-email?token=..., "
        "<url>/reset-password?token=...) and the default OIDC callback (<url>/oauth/callback). "
        "`flowdock up` sets it to the address it serves unless the environment or the file sets it.",
    )
    auth_cookie_secure: bool = setting(
        False,
        "Mark the browser's refresh-token cookie Secure (sent over HTTPS only). It is also Secure whenever "
        "auth_public_url starts with https://.",
    )
    auth_verify_token_hours: int = setting(24, "How long an email verification link works.", check=positive)
    auth_reset_token_minutes: int = setting(30, "How long a password reset link works.", check=positive)
    auth_reauth_seconds: int = setting(
        900, "Turning 2FA on needs a session that logged in at most this long ago.", check=positive
    )
    auth_mfa_token_seconds: int = setting(300, "How long the mfa_token of a 2FA login challenge works.", check=positive)
    auth_common_passwords: int = setting(
        10000,
        "Refuse the N most common passwords (zxcvbn's ranked list of 30,000; 0 turns the check off).",
        check=non_negative,
    )
    auth_totp_issuer: str = setting("FlowDock", "Issuer shown by authenticator apps.")
    auth_secrets_key_file: str = setting(
        "",
        "Key file sealing signing private keys and TOTP secrets in auth's database (created 0600 on first start). "
        "Empty: <data_dir>/auth-secrets.key. Point it at a mounted secret to keep it off the database's volume; "
        "back it up: without it those secrets cannot be read.",
    )
    auth_smtp_host: str = setting("", "SMTP server. Empty: mails are written to <data_dir>/outbox/ as .eml files.")
    auth_smtp_port: int = setting(587, "SMTP port.", check=port)
    auth_smtp_security: str = setting(
        "starttls",
        "starttls, tls (implicit, port 465) or none (local relay only).",
        check=one_of("starttls", "tls", "none"),
    )
    auth_smtp_username: str = setting("", "SMTP login (empty: no AUTH).")
    auth_smtp_password: str = setting("", "SMTP password.")
    auth_smtp_ca_file: str = setting(
        "", "PEM file of the CA that signed the SMTP server's certificate (empty: the system's trusted CAs)."
    )
    auth_smtp_timeout_seconds: float = setting(10.0, "SMTP connection timeout.", check=positive)
    auth_mail_from: str = setting("FlowDock <no-reply@flowdock.invalid>", "From: address of FlowDock's mails.")
    auth_signing_key_publish_seconds: int = setting(
        60,
        "After `flowdock keys rotate-signing`, the new key is published this long before it signs (longer than "
        "the gateway's and services' JWKS caches).",
        check=non_negative,
    )
    auth_signing_key_reload_seconds: float = setting(
        5.0, "How often auth_svc re-reads its signing keys (rotations reach every replica).", check=positive
    )
    auth_rate_window_seconds: int = setting(300, "Sliding window of every auth rate limit.", check=positive)
    auth_redis_url: str = setting(
        "",
        "Where rate-limit windows live. Empty: auth_svc's own database. redis://host:port/db: Redis (shared by "
        "every auth replica, nothing written to the database per attempt).",
        check=lambda v: (
            None if v == "" or v.startswith(("redis://", "rediss://", "unix://")) else "must be empty or a redis:// URL"
        ),
    )
    auth_rate_login_per_account: int = setting(
        10, "Failed logins per account per window (0 = off).", check=non_negative
    )
    auth_rate_login_per_ip: int = setting(100, "Login attempts per client IP per window.", check=non_negative)
    auth_rate_register_per_ip: int = setting(20, "Registrations per client IP per window.", check=non_negative)
    auth_rate_register_per_address: int = setting(
        3,
        '"Someone tried to sign up with your address" mails per address per window (registering an existing '
        "address answers the same either way; 0 = no limit).",
        check=non_negative,
    )
    auth_rate_reset_per_ip: int = setting(
        20, "Password reset attempts (POST /api/v1/auth/reset-password) per client IP per window.", check=non_negative
    )
    auth_rate_password_per_account: int = setting(
        5,
        "Wrong current passwords per account per window when a signed-in user changes the password or email or "
        "turns 2FA off (0 = off).",
        check=non_negative,
    )
    auth_rate_password_per_ip: int = setting(
        50,
        "Current-password checks (change password or email, turn 2FA off) per client IP per window.",
        check=non_negative,
    )
    auth_rate_recovery_per_account: int = setting(
        3, "Password recovery requests per email per window.", check=non_negative
    )
    auth_rate_recovery_per_ip: int = setting(20, "Password recovery requests per IP per window.", check=non_negative)
    auth_rate_totp_per_account: int = setting(5, "Wrong 2FA codes per account per window.", check=non_negative)
    auth_rate_totp_per_ip: int = setting(50, "2FA code attempts per IP per window.", check=non_negative)
    auth_rate_resend_per_account: int = setting(
        3, "Verification mails (resend, email change) per account per window.", check=non_negative
    )
    auth_rate_resend_per_ip: int = setting(20, "Verification resends per IP per window.", check=non_negative)
    auth_basic_allow_account_password: bool = setting(
        False,
        "Let HTTP Basic clients (WebDAV) log in with the account password instead of an app password. Never for an "
        "account with 2FA; costs an Argon2 verification per request (about 50-100 ms each). Off: app passwords only.",
    )
    auth_app_passwords_per_account: int = setting(
        50, "App passwords one account may have at once (revoked ones do not count).", check=positive
    )
    auth_oidc_providers: str = setting(
        "",
        'OpenID Connect login providers, a JSON list: [{"name": "corp", "issuer": "https://id.example", '
        '"client_id": "...", "client_secret": "...", "scopes": "openid email profile", "link_verified_email": '
        "false}]. link_verified_email=true lets a provider-verified email log into the existing verified account "
        "of that address; otherwise such a first login is refused.",
    )
    auth_oidc_redirect_uris: str = setting(
        "",
        "Comma-separated redirect URIs clients may ask providers to return to "
        "(empty: <auth_public_url>/oauth/callback).",
    )
