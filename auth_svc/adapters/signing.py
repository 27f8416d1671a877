"""Ed25519 signing keys for access tokens: kept sealed in the database, rotated, published as a JWKS."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_svc.adapters.tables import aware, must, signing_context, signing_keys
from auth_svc.domain import User
from auth_svc.secretbox import SecretBox
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.tokens import ACCESS_TOKEN_TYPE, KeyMap

log = logging.getLogger("flowdock.auth")


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


def rotate_signing_key(
    conn: sa.Connection,
    *,
    publish_seconds: float,
    access_ttl_seconds: int,
    box: SecretBox,
    clock: Clock | None = None,
) -> tuple[str, datetime]:
    """Add a key that starts signing after `publish_seconds` (so every JWKS cache has it by then); the keys
    signing until then are retired once the last token they signed has expired. Returns (kid, activate_at)."""
    now = (clock or SystemClock()).now()
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
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._box = box
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.reload_seconds = reload_seconds
        self._rows: list[tuple[str, Ed25519PrivateKey, datetime, datetime | None]] = []
        self._loaded_at: float | None = None  # the clock's monotonic reading at the last load
        self._pems: dict[str, Ed25519PrivateKey] = {}

    async def load(self) -> None:
        async with self._engine.begin() as conn:
            rows = (await conn.execute(sa.select(signing_keys).order_by(signing_keys.c.created_at))).all()
            if not rows:
                now = self._clock.now()
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
            activate = aware(row.activate_at) or must(row.created_at)
            loaded.append((row.kid, private, activate, aware(row.retire_at)))
        self._rows = loaded
        self._loaded_at = self._clock.monotonic()

    async def refresh(self) -> None:
        """Re-read the keys if the copy is older than reload_seconds (cheap to call often)."""
        if self._loaded_at is None or self._clock.monotonic() - self._loaded_at > self.reload_seconds:
            try:
                await self.load()
            except Exception:
                log.warning("could not reload signing keys; keeping the loaded ones", exc_info=True)

    def _published(self) -> list[tuple[str, Ed25519PrivateKey, datetime, datetime | None]]:
        now = self._clock.now()
        return [r for r in self._rows if r[3] is None or r[3] > now]

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        now = self._clock.now()
        active = [r for r in self._published() if r[2] <= now] or self._published() or self._rows
        kid, key, _, _ = max(active, key=lambda r: r[2])
        return kid, key

    def issue_access(self, user: User, session_id: str) -> str:
        kid, key = self.signing_key()
        now = int(self._clock.time())
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
