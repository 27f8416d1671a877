"""auth_svc adapters: tables, the SQL unit of work, Argon2id hashing, Ed25519 signing, TOTP, rate limits, audit."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import argon2
import grpc
import httpx
import jwt
import pyotp
import segno
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_svc.domain import (
    Event,
    OidcClaims,
    OidcProvider,
    OidcState,
    OneTimeToken,
    Purpose,
    Quota,
    RefreshToken,
    Role,
    Session,
    User,
    mask_email,
)
from auth_svc.secretbox import SecretBox, is_sealed
from flowdock_kernel import db
from flowdock_kernel.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from flowdock_kernel.tokens import ACCESS_TOKEN_TYPE, KeyMap
from flowdock_kernel.workers import BoundedPool

log = logging.getLogger("flowdock.auth")

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


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _must(value: datetime | None) -> datetime:
    out = _aware(value)
    assert out is not None
    return out


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        display_name=row.display_name,
        role=Role(row.role),
        password_hash=row.password_hash,
        created_at=_must(row.created_at),
        disabled=row.disabled,
        email_verified=row.email_verified,
        totp_secret=row.totp_secret,
        totp_enabled=row.totp_enabled,
        totp_last_step=int(row.totp_last_step),
    )


def _session(row: Any) -> Session:
    return Session(
        id=row.id,
        user_id=row.user_id,
        device_name=row.device_name,
        created_at=_must(row.created_at),
        ip=row.ip,
        user_agent=row.user_agent,
        last_seen_at=_aware(row.last_seen_at),
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
    )


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def totp_context(user_id: str) -> str:
    return f"totp:{user_id}"


class SqlUsers:
    """Users; TOTP secrets are sealed with `box` (auth_svc/secretbox.py) on the way in and opened on the way out."""

    def __init__(self, session: AsyncConnection, box: SecretBox) -> None:
        self.s = session
        self.box = box

    def _user(self, row: Any) -> User:
        user = _user(row)
        user.totp_secret = self.box.open(user.totp_secret, totp_context(user.id))
        return user

    def _seal(self, user_id: str, secret: str) -> str:
        return self.box.seal(secret, totp_context(user_id))

    async def by_email(self, email: str) -> User | None:
        row = (await self.s.execute(sa.select(users).where(users.c.email == email))).first()
        return self._user(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        row = (await self.s.execute(sa.select(users).where(users.c.id == user_id))).first()
        return self._user(row) if row else None

    def _values(self, user: User) -> dict[str, Any]:
        return {
            "email": user.email,
            "display_name": user.display_name,
            "role": user.role.value,
            "password_hash": user.password_hash,
            "disabled": user.disabled,
            "email_verified": user.email_verified,
            "totp_secret": self._seal(user.id, user.totp_secret),
            "totp_enabled": user.totp_enabled,
            "totp_last_step": user.totp_last_step,
        }

    async def add(self, user: User) -> None:
        await self.s.execute(users.insert().values(id=user.id, created_at=user.created_at, **self._values(user)))

    async def _update(self, user_id: str, *conditions: Any, **values: Any) -> bool:
        stmt = users.update().where(users.c.id == user_id, *conditions).values(**values)
        return bool((await self.s.execute(stmt)).rowcount)

    async def set_password_hash(self, user_id: str, password_hash: str, *, expected: str | None = None) -> bool:
        cond = [users.c.password_hash == expected] if expected is not None else []
        return await self._update(user_id, *cond, password_hash=password_hash)

    async def set_email(self, user_id: str, email: str) -> None:
        await self._update(user_id, email=email, email_verified=True)

    async def mark_email_verified(self, user_id: str) -> None:
        await self._update(user_id, email_verified=True)

    async def set_display_name(self, user_id: str, display_name: str) -> None:
        await self._update(user_id, display_name=display_name)

    async def set_role(self, user_id: str, role: Role) -> None:
        await self._update(user_id, role=role.value)

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        await self._update(user_id, disabled=disabled)

    async def start_totp(self, user_id: str, secret: str) -> bool:
        return await self._update(
            user_id,
            users.c.totp_enabled.is_(False),
            totp_secret=self._seal(user_id, secret),
            totp_enabled=False,
            totp_last_step=0,
        )

    async def enable_totp(self, user_id: str, secret: str, step: int) -> bool:
        return await self._update(
            user_id,
            users.c.totp_enabled.is_(False),
            # Sealing is deterministic; a legacy plaintext row (not yet sealed at start) still matches.
            users.c.totp_secret.in_([self._seal(user_id, secret), secret]),
            totp_enabled=True,
            totp_last_step=step,
        )

    async def disable_totp(self, user_id: str) -> None:
        await self._update(user_id, totp_enabled=False, totp_secret="", totp_last_step=0)

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        return await self._update(
            user_id, users.c.totp_enabled.is_(True), users.c.totp_last_step < step, totp_last_step=step
        )

    async def delete(self, user_id: str) -> None:
        """The account and everything of it here (sessions, tokens, codes, identities cascade); the audit trail
        keeps its entries (they name the id, not the person)."""
        for table in (one_time_tokens, recovery_codes, user_identities):
            await self.s.execute(table.delete().where(table.c.user_id == user_id))
        await self.s.execute(
            refresh_tokens.delete().where(
                refresh_tokens.c.session_id.in_(sa.select(sessions.c.id).where(sessions.c.user_id == user_id))
            )
        )
        await self.s.execute(sessions.delete().where(sessions.c.user_id == user_id))
        await self.s.execute(users.delete().where(users.c.id == user_id))

    async def search(self, query: str, after: str, limit: int) -> list[User]:
        stmt = sa.select(users).order_by(users.c.email).limit(limit)
        if query:
            pattern = _like(query.lower())
            stmt = stmt.where(
                sa.or_(
                    users.c.email.like(pattern, escape="\\"),
                    sa.func.lower(users.c.display_name).like(pattern, escape="\\"),
                )
            )
        if after:
            stmt = stmt.where(users.c.email > after)
        return [self._user(r) for r in (await self.s.execute(stmt)).all()]

    async def count_admins(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(users).where(users.c.role == "admin", users.c.disabled.is_(False))
        return int((await self.s.execute(stmt)).scalar_one())


class SqlSessions:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, session: Session) -> None:
        await self.s.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                device_name=session.device_name,
                created_at=session.created_at,
                ip=session.ip,
                user_agent=session.user_agent,
                last_seen_at=session.last_seen_at,
                expires_at=session.expires_at,
            )
        )

    async def get(self, session_id: str) -> Session | None:
        row = (await self.s.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
        return _session(row) if row else None

    async def for_user(self, user_id: str) -> list[Session]:
        stmt = sa.select(sessions).where(sessions.c.user_id == user_id).order_by(sessions.c.created_at.desc())
        return [_session(r) for r in (await self.s.execute(stmt)).all()]

    async def touch(self, session_id: str, at: datetime) -> None:
        await self.s.execute(sessions.update().where(sessions.c.id == session_id).values(last_seen_at=at))

    async def revoke(self, session_id: str, at: datetime, reason: str) -> bool:
        result = await self.s.execute(
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_all(self, user_id: str, at: datetime, reason: str, *, keep: str = "") -> int:
        stmt = (
            sessions.update()
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoke_reason=reason)
        )
        if keep:
            stmt = stmt.where(sessions.c.id != keep)
        result = await self.s.execute(stmt)
        return int(getattr(result, "rowcount", 0))


class SqlRefreshTokens:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, token: RefreshToken) -> None:
        await self.s.execute(
            refresh_tokens.insert().values(
                token_hash=token.token_hash, session_id=token.session_id, created_at=token.created_at
            )
        )

    async def get(self, token_hash: str) -> RefreshToken | None:
        row = (await self.s.execute(sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))).first()
        if row is None:
            return None
        return RefreshToken(row.token_hash, row.session_id, _must(row.created_at), _aware(row.used_at))

    async def use(self, token_hash: str, at: datetime) -> bool:
        result = await self.s.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0))


class SqlOneTimeTokens:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, token: OneTimeToken) -> None:
        await self.s.execute(
            one_time_tokens.insert().values(
                token_hash=token.token_hash,
                purpose=token.purpose.value,
                user_id=token.user_id,
                expires_at=token.expires_at,
                data=token.data,
            )
        )

    async def get(self, token_hash: str) -> OneTimeToken | None:
        row = (
            await self.s.execute(sa.select(one_time_tokens).where(one_time_tokens.c.token_hash == token_hash))
        ).first()
        if row is None:
            return None
        return OneTimeToken(
            row.token_hash, Purpose(row.purpose), row.user_id, _must(row.expires_at), _aware(row.used_at), row.data
        )

    async def use(self, token_hash: str, at: datetime) -> bool:
        result = await self.s.execute(
            one_time_tokens.update()
            .where(one_time_tokens.c.token_hash == token_hash, one_time_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def discard(self, user_id: str, purpose: Purpose) -> None:
        await self.s.execute(
            one_time_tokens.delete().where(
                one_time_tokens.c.user_id == user_id, one_time_tokens.c.purpose == purpose.value
            )
        )


class SqlRecoveryCodes:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def replace(self, user_id: str, code_hashes: list[str]) -> None:
        await self.clear(user_id)
        if code_hashes:
            await self.s.execute(recovery_codes.insert(), [{"user_id": user_id, "code_hash": h} for h in code_hashes])

    async def use(self, user_id: str, code_hash: str, at: datetime) -> bool:
        result = await self.s.execute(
            recovery_codes.update()
            .where(
                recovery_codes.c.user_id == user_id,
                recovery_codes.c.code_hash == code_hash,
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def clear(self, user_id: str) -> None:
        await self.s.execute(recovery_codes.delete().where(recovery_codes.c.user_id == user_id))


class SqlOidcStates:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def add(self, state: OidcState) -> None:
        await self.s.execute(
            oidc_states.insert().values(
                state_hash=state.state_hash,
                provider=state.provider,
                nonce=state.nonce,
                code_verifier=state.code_verifier,
                redirect_uri=state.redirect_uri,
                expires_at=state.expires_at,
            )
        )

    async def take(self, state_hash: str, at: datetime) -> OidcState | None:
        result = await self.s.execute(
            oidc_states.update()
            .where(
                oidc_states.c.state_hash == state_hash,
                oidc_states.c.used_at.is_(None),
                oidc_states.c.expires_at > at,
            )
            .values(used_at=at)
        )
        if not getattr(result, "rowcount", 0):
            return None
        row = (await self.s.execute(sa.select(oidc_states).where(oidc_states.c.state_hash == state_hash))).one()
        return OidcState(
            row.state_hash, row.provider, row.nonce, row.code_verifier, row.redirect_uri, _must(row.expires_at), at
        )


class SqlIdentities:
    def __init__(self, session: AsyncConnection) -> None:
        self.s = session

    async def user_for(self, provider: str, subject: str) -> str | None:
        row = (
            await self.s.execute(
                sa.select(user_identities.c.user_id).where(
                    user_identities.c.provider == provider, user_identities.c.subject == subject
                )
            )
        ).first()
        return str(row.user_id) if row else None

    async def link(self, provider: str, subject: str, user_id: str, at: datetime) -> None:
        await self.s.execute(
            user_identities.insert().values(provider=provider, subject=subject, user_id=user_id, created_at=at)
        )


class SqlUnitOfWork(db.SqlUnitOfWork):
    def __init__(self, factory: db.Connections, box: SecretBox, *, read_only: bool = False) -> None:
        super().__init__(factory, read_only=read_only)
        self.box = box

    def _bind(self, session: AsyncConnection) -> None:
        self.users = SqlUsers(session, self.box)
        self.sessions = SqlSessions(session)
        self.refresh_tokens = SqlRefreshTokens(session)
        self.tokens = SqlOneTimeTokens(session)
        self.recovery_codes = SqlRecoveryCodes(session)
        self.oidc_states = SqlOidcStates(session)
        self.identities = SqlIdentities(session)


class Argon2Hasher:
    """Argon2id on a bounded worker pool (never on the event loop): a full pool answers RESOURCE_EXHAUSTED at once.
    `requester` (the client IP) caps how many slots one client may hold."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, pool: BoundedPool | None = None) -> None:
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        self._pool = pool or BoundedPool("auth.password_hashing", workers=1, queue=64)

    def hash_now(self, password: str) -> str:
        """On the calling thread: for the CLI (creating an admin), not for request handling."""
        return self._ph.hash(password)

    def _verify_now(self, stored_hash: str, password: str) -> bool:
        try:
            return self._ph.verify(stored_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def hash(self, password: str, *, requester: str = "") -> str:
        return await self._pool.run(self._ph.hash, password, key=requester)

    async def verify(self, stored_hash: str, password: str, *, requester: str = "") -> bool:
        return await self._pool.run(self._verify_now, stored_hash, password, key=requester)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._ph.check_needs_rehash(stored_hash)

    def check_capacity(self, *, requester: str = "") -> None:
        self._pool.check(requester)

    def close(self) -> None:
        self._pool.close()


class PyOtpTotp:
    """RFC 6238 with pyotp: 30 s steps, 6 digits, SHA-1 (what authenticator apps support), server clock only."""

    def __init__(self, issuer: str, clock: Any = time.time) -> None:
        self.issuer = issuer
        self._clock = clock

    def new_secret(self) -> str:
        return pyotp.random_base32(32)  # 160 bits from `secrets`

    def uri(self, secret: str, account: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=self.issuer)

    def qr_svg(self, uri: str) -> str:
        return str(segno.make(uri, error="m").svg_inline(scale=4))

    def matching_step(self, secret: str, code: str) -> int | None:
        totp = pyotp.TOTP(secret)
        now = self._clock()
        step = int(now // totp.interval)
        for candidate in (step, step - 1, step + 1):
            if pyotp.utils.strings_equal(totp.at(candidate * totp.interval), code):
                return candidate
        return None


class RedisRateLimiter:
    """The same sliding-window log in Redis: one sorted set per key (score = time), trimmed, counted and added to by
    one Lua script, so concurrent attempts on several auth replicas are counted exactly (count first, then decide)."""

    _HIT = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
return false
"""

    def __init__(self, url: str, clock: Any = time.time, *, prefix: str = "flowdock:auth:rate:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._clock = clock
        self._prefix = prefix
        self._script = self._redis.register_script(self._HIT)

    async def reserve(self, key: str, *, limit: int, window_seconds: float) -> tuple[str, float | None]:
        now = float(self._clock())
        member = f"{now}:{uuid.uuid4().hex}"
        try:
            wait = await self._script(keys=[self._prefix + key], args=[now, window_seconds, limit, member])
        except Exception as exc:  # redis.RedisError and connection failures alike: fail closed, retryable
            raise Unavailable("rate-limit store (Redis) unreachable; retry shortly") from exc
        return ("", max(1.0, float(wait))) if wait is not None else (member, None)

    async def release(self, key: str, attempt_id: str) -> None:
        try:
            await self._redis.zrem(self._prefix + key, attempt_id)
        except Exception:  # the attempt succeeded; at worst it stays counted as a failure until the window ends
            log.warning("rate-limit store (Redis) unreachable; an attempt stays counted", exc_info=True)

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        return (await self.reserve(key, limit=limit, window_seconds=window_seconds))[1]

    async def count(self, key: str, *, window_seconds: float) -> int:
        try:
            return int(await self._redis.zcount(self._prefix + key, float(self._clock()) - window_seconds, "+inf"))
        except Exception as exc:
            raise Unavailable("rate-limit store (Redis) unreachable; retry shortly") from exc

    async def close(self) -> None:
        await self._redis.aclose()


class SqlRateLimiter:
    """Sliding-window log in the service's database: one row per attempt, counted over the last window.

    Count first, then decide: attempts on one key are serialised (a PostgreSQL advisory lock on the key; on SQLite
    the transaction's first statement, a delete of the key's expired rows, takes the database's write lock), so
    the count an attempt sees includes every attempt before it and 50 parallel guesses cannot all pass."""

    def __init__(self, engine: AsyncEngine, clock: Any = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._last_prune = 0.0

    async def _count(self, conn: AsyncConnection, key: str, since: float) -> tuple[int, float | None]:
        row = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.min(rate_events.c.at)).where(
                    rate_events.c.key == key, rate_events.c.at > since
                )
            )
        ).one()
        return int(row[0]), (float(row[1]) if row[1] is not None else None)

    async def reserve(self, key: str, *, limit: int, window_seconds: float) -> tuple[str, float | None]:
        now = float(self._clock())
        since = now - window_seconds
        async with self._engine.begin() as conn:
            await db.lock_key(conn, "auth.rate:" + key)
            await conn.execute(rate_events.delete().where(rate_events.c.key == key, rate_events.c.at <= since))
            count, oldest = await self._count(conn, key, since)
            if count >= limit:
                return "", max(1.0, (oldest or now) + window_seconds - now)
            seq = (
                await conn.execute(rate_events.insert().values(key=key, at=now).returning(rate_events.c.seq))
            ).scalar_one()
            if now - self._last_prune > 300:
                self._last_prune = now
                await conn.execute(rate_events.delete().where(rate_events.c.at < now - 86400))
        return str(seq), None

    async def release(self, key: str, attempt_id: str) -> None:
        if not attempt_id.isdigit():
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                rate_events.delete().where(rate_events.c.key == key, rate_events.c.seq == int(attempt_id))
            )

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        return (await self.reserve(key, limit=limit, window_seconds=window_seconds))[1]

    async def count(self, key: str, *, window_seconds: float) -> int:
        async with self._engine.connect() as conn:
            count, _ = await self._count(conn, key, self._clock() - window_seconds)
        return count


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        at=_must(row.at),
        kind=row.kind,
        actor_id=row.actor_id,
        subject_id=row.subject_id,
        ip=row.ip,
        user_agent=row.user_agent,
        service=row.service,
        details=json.loads(row.details or "{}"),
        cursor=str(row.seq),
    )


class SqlAuditLog:
    """The audit trail; its own short transactions, so failed attempts are recorded too."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def _row(e: Event) -> dict[str, Any]:
        return {
            "id": e.id,
            "at": e.at,
            "kind": e.kind[:64],
            "actor_id": e.actor_id[:36],
            "subject_id": e.subject_id[:36],
            "ip": e.ip[:64],
            "user_agent": e.user_agent[:200],
            "service": e.service[:32],
            "details": json.dumps(e.details, ensure_ascii=False),
        }

    async def record(self, event: Event) -> None:
        await self.record_many([event])

    async def record_many(self, events: list[Event]) -> None:
        """Idempotent by event id (senders retry): ids already stored are skipped."""
        if not events:
            return
        async with self._engine.begin() as conn:
            known = set(
                (
                    await conn.execute(
                        sa.select(audit_events.c.id).where(audit_events.c.id.in_([e.id for e in events]))
                    )
                ).scalars()
            )
            fresh: dict[str, Event] = {e.id: e for e in events if e.id not in known}
            if fresh:
                await conn.execute(audit_events.insert(), [self._row(e) for e in fresh.values()])

    async def list(
        self, *, subject_id: str = "", actor_id: str = "", kind_prefix: str = "", before: str = "", limit: int
    ) -> list[Event]:
        stmt = sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
        if subject_id:
            stmt = stmt.where(audit_events.c.subject_id == subject_id)
        if actor_id:
            stmt = stmt.where(audit_events.c.actor_id == actor_id)
        if kind_prefix:
            stmt = stmt.where(audit_events.c.kind.like(kind_prefix.replace("%", "").replace("_", "\\_") + "%", "\\"))
        if before:
            stmt = stmt.where(audit_events.c.seq < int(before))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_event(r) for r in rows]


def signing_context(kid: str) -> str:
    return f"signing:{kid}"


def _new_key_row(now: datetime, activate_at: datetime, box: SecretBox) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    kid = uuid.uuid4().hex[:16]
    return {
        "kid": kid,
        "private_pem": box.seal(pem, signing_context(kid)),
        "created_at": now,
        "activate_at": activate_at,
    }


async def seal_legacy_rows(engine: AsyncEngine, box: SecretBox) -> int:
    """Seal signing keys and TOTP secrets written in plaintext before encryption at rest (idempotent; run at start).
    Returns how many rows were sealed."""
    sealed = 0
    async with engine.begin() as conn:
        for row in (await conn.execute(sa.select(signing_keys.c.kid, signing_keys.c.private_pem))).all():
            if not is_sealed(row.private_pem):
                await conn.execute(
                    signing_keys.update()
                    .where(signing_keys.c.kid == row.kid, signing_keys.c.private_pem == row.private_pem)
                    .values(private_pem=box.seal(row.private_pem, signing_context(row.kid)))
                )
                sealed += 1
        stmt = sa.select(users.c.id, users.c.totp_secret).where(users.c.totp_secret != "")
        for row in (await conn.execute(stmt)).all():
            if not is_sealed(row.totp_secret):
                await conn.execute(
                    users.update()
                    .where(users.c.id == row.id, users.c.totp_secret == row.totp_secret)
                    .values(totp_secret=box.seal(row.totp_secret, totp_context(row.id)))
                )
                sealed += 1
    return sealed


def rotate_signing_key(
    conn: sa.Connection, *, publish_seconds: float, access_ttl_seconds: int, box: SecretBox
) -> tuple[str, datetime]:
    """Add a key that starts signing after `publish_seconds` (so every JWKS cache has it by then); the keys
    signing until then are retired once the last token they signed has expired. Returns (kid, activate_at)."""
    now = datetime.now(UTC)
    activate = now + timedelta(seconds=publish_seconds)
    row = _new_key_row(now, activate, box)
    retire = activate + timedelta(seconds=access_ttl_seconds + 60)
    conn.execute(signing_keys.update().where(signing_keys.c.retire_at.is_(None)).values(retire_at=retire))
    conn.execute(signing_keys.insert().values(**row))
    return str(row["kid"]), activate


class SigningKeyring:
    """Ed25519 keys in auth_svc's database: the newest active key signs, every unretired key is in the JWKS.

    Rows are re-read every `reload_seconds`, so a rotation (`flowdock keys rotate-signing`) reaches every
    replica without a restart."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        box: SecretBox,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        reload_seconds: float = 5.0,
    ) -> None:
        self._engine = engine
        self._box = box
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.reload_seconds = reload_seconds
        self._rows: list[tuple[str, Ed25519PrivateKey, datetime, datetime | None]] = []
        self._loaded_at = 0.0
        self._pems: dict[str, Ed25519PrivateKey] = {}

    async def load(self) -> None:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(sa.select(signing_keys).order_by(signing_keys.c.created_at))).all()
            if not rows:
                now = datetime.now(UTC)
                await conn.execute(signing_keys.insert().values(**_new_key_row(now, now, self._box)))
                rows = (await conn.execute(sa.select(signing_keys))).all()
        loaded = []
        for row in rows:
            private = self._pems.get(row.kid)
            if private is None:
                pem = self._box.open(row.private_pem, signing_context(row.kid))
                key = serialization.load_pem_private_key(pem.encode(), password=None)
                assert isinstance(key, Ed25519PrivateKey)
                private = self._pems[row.kid] = key
            activate = _aware(row.activate_at) or _must(row.created_at)
            loaded.append((row.kid, private, activate, _aware(row.retire_at)))
        self._rows = loaded
        self._loaded_at = time.monotonic()

    async def refresh(self) -> None:
        """Re-read the keys if the copy is older than reload_seconds (cheap to call often)."""
        if time.monotonic() - self._loaded_at > self.reload_seconds:
            try:
                await self.load()
            except Exception:
                log.warning("could not reload signing keys; keeping the loaded ones", exc_info=True)

    def _published(self) -> list[tuple[str, Ed25519PrivateKey, datetime, datetime | None]]:
        now = datetime.now(UTC)
        return [r for r in self._rows if r[3] is None or r[3] > now]

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        now = datetime.now(UTC)
        active = [r for r in self._published() if r[2] <= now] or self._published() or self._rows
        kid, key, _, _ = max(active, key=lambda r: r[2])
        return kid, key

    def issue_access(self, user: User, session_id: str) -> str:
        kid, key = self.signing_key()
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.id,
            "sid": session_id,
            "role": user.role.value,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
        }
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": ACCESS_TOKEN_TYPE})

    def jwks(self) -> str:
        keys = []
        for kid, key, _, _ in self._published():
            jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
            keys.append(jwk)
        return json.dumps({"keys": keys})

    def public_keys(self) -> KeyMap:
        return {kid: key.public_key() for kid, key, _, _ in self._published()}


class ReloadLoop:
    """Runs `step` every `interval` seconds until stopped (keyring reloads)."""

    def __init__(self, step: Any, interval: float) -> None:
        self._step = step
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._step()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2].strip("> ") or "flowdock")
    msg.set_content(body)
    return msg


class SmtpMailer:
    """SMTP with STARTTLS, implicit TLS or plain (local relays), optional login; runs smtplib in a thread."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        username: str,
        password: str,
        sender: str,
        timeout: float,
        ca_file: str = "",
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self._password, self.sender, self.timeout = username, password, sender, timeout
        self.ca_file = ca_file

    def _send(self, msg: EmailMessage) -> None:
        # Certificates and host names are always verified; ca_file only says which CA to trust.
        context = ssl.create_default_context(cafile=self.ca_file or None)
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password)
            smtp.send_message(msg)

    async def send(self, to: str, subject: str, body: str) -> None:
        await asyncio.to_thread(self._send, _message(self.sender, to, subject, body))
        log.info("mail sent", extra={"to": mask_email(to), "subject": subject})


class OutboxMailer:
    """The embedded default: each mail becomes an .eml file in <data_dir>/outbox/ (no mail server needed).

    The log line names the file, never the link inside it (links carry single-use secrets)."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    def _write(self, msg: EmailMessage) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(msg))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return path

    async def send(self, to: str, subject: str, body: str) -> None:
        path = await asyncio.to_thread(self._write, _message(self.sender, to, subject, body))
        log.info(
            "mail written to the outbox (no SMTP server configured); open the file for the link",
            extra={"to": mask_email(to), "subject": subject, "file": str(path)},
        )


def common_passwords(count: int) -> frozenset[str]:
    """The `count` most common passwords of zxcvbn's ranked list (30,000 from real leaks), lower-cased."""
    if count <= 0:
        return frozenset()
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"][:count])


ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


class HttpOidcClient:
    """OpenID Connect relying party over httpx: discovery (cached), authorization URL, code exchange with PKCE
    and client_secret_basic, ID token verification against the provider's JWKS (alg allowlist, iss, aud, exp,
    nonce)."""

    def __init__(self, providers: list[OidcProvider], *, timeout: float = 10.0, cache_seconds: float = 3600) -> None:
        self._providers = providers
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._meta: dict[str, tuple[dict[str, Any], float]] = {}
        self._keys: dict[str, tuple[dict[str, jwt.PyJWK], float]] = {}

    def providers(self) -> list[OidcProvider]:
        return list(self._providers)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                resp = await client.get(url)
                resp.raise_for_status()
                data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable("the login provider cannot be reached; try again later") from exc
        if not isinstance(data, dict):
            raise Unavailable("the login provider answered something unexpected")
        return data

    async def _discover(self, p: OidcProvider) -> dict[str, Any]:
        cached = self._meta.get(p.name)
        if cached and time.monotonic() - cached[1] < self._cache_seconds:
            return cached[0]
        meta = await self._get_json(p.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if str(meta.get("issuer", "")).rstrip("/") != p.issuer.rstrip("/"):
            raise Unavailable("the login provider's discovery document names another issuer")
        self._meta[p.name] = (meta, time.monotonic())
        return meta

    async def _key(self, p: OidcProvider, meta: dict[str, Any], kid: str | None) -> jwt.PyJWK:
        cached = self._keys.get(p.name)
        for attempt in range(2):
            if cached is None or attempt == 1 or time.monotonic() - cached[1] > self._cache_seconds:
                document = await self._get_json(str(meta["jwks_uri"]))
                keys = {}
                for entry in document.get("keys", []):
                    with contextlib.suppress(jwt.PyJWTError):
                        keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
                cached = (keys, time.monotonic())
                self._keys[p.name] = cached
            found = cached[0].get(kid or "") or (next(iter(cached[0].values())) if len(cached[0]) == 1 else None)
            if found is not None:
                return found
        raise Unauthenticated("the login provider's token is signed by an unknown key")

    async def authorization_url(
        self, provider: OidcProvider, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        meta = await self._discover(provider)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": provider.client_id,
                "redirect_uri": redirect_uri,
                "scope": provider.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(meta["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def exchange(
        self, provider: OidcProvider, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcClaims:
        meta = await self._discover(provider)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                resp = await client.post(
                    str(meta["token_endpoint"]),
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "code_verifier": code_verifier,
                    },
                    auth=(provider.client_id, provider.client_secret),
                )
        except httpx.HTTPError as exc:
            raise Unavailable("the login provider cannot be reached; try again later") from exc
        if resp.status_code != 200:
            raise Unauthenticated("the login provider did not confirm this login")
        id_token = str(resp.json().get("id_token", ""))
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the login provider sent no valid ID token") from exc
        alg = header.get("alg")
        if alg not in ID_TOKEN_ALGORITHMS:
            raise Unauthenticated("the login provider's ID token uses an algorithm that is not accepted")
        key = await self._key(provider, meta, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                audience=provider.client_id,
                issuer=str(meta["issuer"]),
                leeway=30,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the login provider's ID token was rejected") from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthenticated("the login provider's ID token does not answer this login (nonce)")
        email = claims.get("email")
        if not email and meta.get("userinfo_endpoint") and resp.json().get("access_token"):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    info = await client.get(
                        str(meta["userinfo_endpoint"]),
                        headers={"authorization": f"Bearer {resp.json()['access_token']}"},
                    )
                    data = info.json()
                    if data.get("sub") == claims["sub"]:
                        claims = {**data, **claims}
        return OidcClaims(
            subject=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            email_verified=claims.get("email_verified") is True,
            name=str(claims.get("name") or ""),
        )


class SqlHousekeeping:
    """Deletes rows that can never be used again: one-time tokens and OpenID states expired for a day, sessions
    ended (expired or revoked) for `keep_ended` (their refresh tokens go with them). The audit trail is kept."""

    def __init__(self, engine: AsyncEngine, *, keep_ended: timedelta = timedelta(days=30)) -> None:
        self._engine = engine
        self._keep_ended = keep_ended

    async def run(self) -> dict[str, int]:
        now = datetime.now(UTC)
        day_ago, ended_before = now - timedelta(days=1), now - self._keep_ended
        counts: dict[str, int] = {}
        async with self._engine.begin() as conn:
            for name, stmt in (
                ("one_time_tokens", one_time_tokens.delete().where(one_time_tokens.c.expires_at < day_ago)),
                ("oidc_states", oidc_states.delete().where(oidc_states.c.expires_at < day_ago)),
                (
                    "refresh_tokens",
                    refresh_tokens.delete().where(
                        refresh_tokens.c.session_id.in_(
                            sa.select(sessions.c.id).where(
                                sa.or_(sessions.c.expires_at < ended_before, sessions.c.revoked_at < ended_before)
                            )
                        )
                    ),
                ),
                (
                    "sessions",
                    sessions.delete().where(
                        sa.or_(sessions.c.expires_at < ended_before, sessions.c.revoked_at < ended_before)
                    ),
                ),
            ):
                counts[name] = int(getattr(await conn.execute(stmt), "rowcount", 0))
        if any(counts.values()):
            log.info("housekeeping", extra={"deleted": counts})
        return counts


class GrpcShareAdmin:
    """share_svc's internal AccessService.DeleteUserShares, with the admin's token forwarded by the channel."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
        from flowdock.share.v1 import share_pb2, share_pb2_grpc

        self._pb = share_pb2
        self._stub = share_pb2_grpc.AccessServiceStub(channel)
        self._timeout = timeout

    async def delete(self, user_id: str) -> int:
        try:
            done = await self._stub.DeleteUserShares(
                self._pb.DeleteUserSharesRequest(user_id=user_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise GrpcStorageAdmin._translate(exc) from exc
        return int(done.dropped)


class GrpcStorageAdmin:
    """storage_svc's internal StorageAdminService. The admin's token is forwarded by the kernel's channel, and
    storage_svc checks the admin role itself too."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 60.0) -> None:
        from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc

        self._pb = storage_pb2
        self._stub = storage_pb2_grpc.StorageAdminServiceStub(channel)
        self._timeout = timeout

    @staticmethod
    def _translate(exc: grpc.aio.AioRpcError) -> Exception:
        code, message = exc.code(), exc.details() or "storage_svc refused"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument("limit_bytes", message)
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(message)
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDenied(message)
        return Unavailable(f"storage_svc could not do it now ({code.name}); try again")

    @staticmethod
    def _quota(q: Any) -> Quota:
        return Quota(used_bytes=q.used_bytes, reserved_bytes=q.reserved_bytes, limit_bytes=q.limit_bytes)

    async def quota(self, user_id: str) -> Quota:
        try:
            q = await self._stub.GetUserQuota(self._pb.GetUserQuotaRequest(user_id=user_id), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return self._quota(q)

    async def set_quota(self, user_id: str, limit_bytes: int) -> Quota:
        request = self._pb.SetQuotaRequest(user_id=user_id, limit_bytes=limit_bytes)
        try:
            q = await self._stub.SetQuota(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return self._quota(q)

    async def delete(self, user_id: str) -> int:
        try:
            done = await self._stub.DeleteUserData(
                self._pb.DeleteUserDataRequest(user_id=user_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return int(done.freed_bytes)
