"""Access-token verification, shared by every service (defence in depth: the gateway checks tokens too).

RFC 8725 rules: algorithm allowlist (EdDSA only: that is what auth_svc signs with), explicit `typ` so no other
kind of token passes as an access token, `kid` looked up only in the key map, `jku`/`x5u`/`jwk` ignored.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from flowdock_kernel import errors

ACCESS_TOKEN_TYPE = "at+jwt"
ALGORITHMS = ["EdDSA"]
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    user_id: str
    session_id: str
    role: str
    token: str
    kid: str = ""
    expires_at: float = 0.0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The verified caller of the current call; Unauthenticated if the method ran without one."""
    principal = principal_var.get()
    if principal is None:
        raise errors.Unauthenticated("this call needs an access token")
    return principal


KeyMap = dict[str, Ed25519PublicKey]


def keys_from_jwks(document: str | bytes) -> KeyMap:
    data = json.loads(document)
    keys: KeyMap = {}
    for jwk in data.get("keys", []):
        kid = jwk.get("kid", "")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not _KID.match(kid):
            continue
        key = OKPAlgorithm.from_jwk(json.dumps(jwk))
        if isinstance(key, Ed25519PublicKey):
            keys[kid] = key
    return keys


def verify_access_token(token: str, keys: KeyMap, *, issuer: str, audience: str, leeway: float = 5.0) -> Principal:
    """Check signature and claims; any failure is Unauthenticated with a reason safe to show."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise errors.Unauthenticated("malformed access token") from exc
    if header.get("alg") not in ALGORITHMS:
        raise errors.Unauthenticated("access token algorithm not accepted")
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise errors.Unauthenticated("not an access token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid) or kid not in keys:
        raise errors.Unauthenticated("access token signed by an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=keys[kid],
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "sid"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise errors.Unauthenticated("access token expired") from exc
    except jwt.PyJWTError as exc:
        raise errors.Unauthenticated("access token rejected") from exc
    sub, sid, role = claims.get("sub"), claims.get("sid"), claims.get("role", "user")
    if not isinstance(sub, str) or not isinstance(sid, str) or role not in ("user", "admin"):
        raise errors.Unauthenticated("access token rejected")
    return Principal(
        user_id=sub, session_id=sid, role=role, token=token, kid=kid, expires_at=float(claims["exp"]) + leeway
    )


# A revoked session (logout, revocation, disabled account, reused refresh token) is refused by every service
# at most this long after auth_svc recorded it: the revocation check is cached per session id for this long.
SESSION_CHECK_SECONDS = 2.0


class SessionCache:
    """Is session `sid` still alive? Asked of auth_svc (AuthInternalService.CheckSession), cached briefly.

    Bound: an answer is reused for at most `ttl` seconds, so a revocation reaches every service within `ttl`
    plus one round trip. Concurrent calls for one sid share one question. If auth_svc cannot answer, the call
    fails closed (UNAVAILABLE) — a stale "alive" is never used past `ttl`."""

    def __init__(
        self, check: Callable[[str], Awaitable[bool]], *, ttl: float = SESSION_CHECK_SECONDS, max_entries: int = 50_000
    ) -> None:
        self._check = check
        self.ttl = ttl
        self._max = max_entries
        self._answers: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bool]] = {}  # questions in flight, one per session

    async def active(self, sid: str) -> bool:
        now = time.monotonic()
        cached = self._answers.get(sid)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        pending = self._pending.get(sid)
        if pending is None:
            # The question runs as a task of its own, not in the first asker's: a caller cancelled meanwhile (its
            # client went away) stops waiting, and the others sharing the question still get its answer (they
            # used to be cancelled with it: one reset stream failed every concurrent call of that session).
            pending = self._pending[sid] = asyncio.ensure_future(self._ask(sid))
            # Retrieved here too: when every asker went away, its failure is not "never retrieved".
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(pending)

    async def _ask(self, sid: str) -> bool:
        try:
            asked_at = time.monotonic()
            try:
                answer = bool(await self._check(sid))
            except Exception as exc:
                raise errors.Unavailable("cannot check the session now; try again") from exc
            self._answers[sid] = (answer, asked_at)
            self._answers.move_to_end(sid)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)
            return answer
        finally:
            del self._pending[sid]


class AdminCheck:
    """Is this caller an administrator *now*? A token's role claim lives as long as the token (a demoted admin keeps
    one until it expires), so admin operations outside auth_svc also ask auth's record (CheckSession's role),
    cached per session for `ttl` seconds like the revocation check; auth_svc unreachable fails closed."""

    def __init__(self, is_admin_now: Callable[[str], Awaitable[bool]], *, ttl: float = SESSION_CHECK_SECONDS) -> None:
        self._answers = SessionCache(is_admin_now, ttl=ttl, max_entries=10_000)

    async def confirm(self, principal: Principal) -> bool:
        """True only if the token says admin and auth's record still does."""
        return principal.is_admin and await self._answers.active(principal.session_id)


class KeyCache:
    """Signing keys fetched from auth_svc, cached; an unknown `kid` triggers one early refetch (rotation).

    `sessions`, when set, is the revocation check the authentication interceptor makes after the signature."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[KeyMap]],
        *,
        ttl: float,
        min_refetch: float = 5.0,
        sessions: SessionCache | None = None,
    ) -> None:
        self.sessions = sessions
        self._fetch = fetch
        self._ttl = ttl
        self._min_refetch = min_refetch
        self._keys: KeyMap = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, kid: str | None = None) -> KeyMap:
        now = time.monotonic()
        stale = now - self._fetched_at > self._ttl
        missing = kid is not None and kid not in self._keys and now - self._fetched_at > self._min_refetch
        if stale or missing or not self._keys:
            async with self._lock:
                if time.monotonic() - self._fetched_at > min(self._ttl, self._min_refetch) or not self._keys:
                    try:
                        self._keys = await self._fetch()
                        self._fetched_at = time.monotonic()
                    except Exception as exc:
                        if not self._keys:
                            raise errors.Unavailable("signing keys unavailable; auth_svc unreachable") from exc
        return self._keys


def unverified_kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None
