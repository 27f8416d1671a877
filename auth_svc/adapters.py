"""auth_svc adapters: tables, the SQL unit of work, Argon2id hashing and Ed25519 token signing."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import argon2
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from auth_svc.domain import Role, Session, User
from flowdock_kernel.errors import AlreadyExists
from flowdock_kernel.tokens import ACCESS_TOKEN_TYPE, KeyMap

metadata = sa.MetaData()

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
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("device_name", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("private_pem", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        display_name=row.display_name,
        role=Role(row.role),
        password_hash=row.password_hash,
        created_at=_aware(row.created_at),
        disabled=row.disabled,
    )


class SqlUsers:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def by_email(self, email: str) -> User | None:
        row = (await self.s.execute(sa.select(users).where(users.c.email == email))).first()
        return _user(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        row = (await self.s.execute(sa.select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def add(self, user: User) -> None:
        await self.s.execute(
            users.insert().values(
                id=user.id,
                email=user.email,
                display_name=user.display_name,
                role=user.role.value,
                password_hash=user.password_hash,
                created_at=user.created_at,
                disabled=user.disabled,
            )
        )

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self.s.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))


class SqlSessions:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    async def add(self, session: Session) -> None:
        await self.s.execute(
            sessions.insert().values(
                id=session.id,
                user_id=session.user_id,
                device_name=session.device_name,
                created_at=session.created_at,
            )
        )


class SqlUnitOfWork:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    async def __aenter__(self) -> Self:
        self._session = self._factory()
        self.users = SqlUsers(self._session)
        self.sessions = SqlSessions(self._session)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        try:
            await self._session.commit()
        except IntegrityError as exc:
            await self._session.rollback()
            raise AlreadyExists("already exists") from exc


class Argon2Hasher:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._ph.verify(stored_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._ph.check_needs_rehash(stored_hash)


class SigningKeyring:
    """Ed25519 keys in auth_svc's database: the newest signs, all are published in the JWKS."""

    def __init__(self, engine: AsyncEngine, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._engine = engine
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self._keys: list[tuple[str, Ed25519PrivateKey]] = []

    async def load(self) -> None:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(sa.select(signing_keys).order_by(signing_keys.c.created_at))).all()
            if not rows:
                key = Ed25519PrivateKey.generate()
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode()
                kid = uuid.uuid4().hex[:16]
                await conn.execute(signing_keys.insert().values(kid=kid, private_pem=pem, created_at=datetime.now(UTC)))
                rows = (await conn.execute(sa.select(signing_keys))).all()
        loaded = []
        for row in rows:
            private = serialization.load_pem_private_key(row.private_pem.encode(), password=None)
            assert isinstance(private, Ed25519PrivateKey)
            loaded.append((row.kid, private))
        self._keys = loaded

    def issue_access(self, user: User, session_id: str) -> str:
        kid, key = self._keys[-1]
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
        for kid, key in self._keys:
            jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
            keys.append(jwk)
        return json.dumps({"keys": keys})

    def public_keys(self) -> KeyMap:
        return {kid: key.public_key() for kid, key in self._keys}
