"""Access-token checks every service runs (RFC 8725 items from the security checklist)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flowdock_kernel.errors import Unauthenticated, Unavailable
from flowdock_kernel.tokens import SessionCache, verify_access_token

KEY = Ed25519PrivateKey.generate()
KEYS = {"k1": KEY.public_key()}


def make(
    claims: dict[str, Any] | None = None, headers: dict[str, Any] | None = None, key: Any = KEY, alg: str = "EdDSA"
) -> str:
    now = int(time.time())
    body = {
        "iss": "flowdock",
        "aud": "flowdock",
        "sub": "u1",
        "sid": "s1",
        "role": "user",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    }
    body.update(claims or {})
    return jwt.encode(body, key, algorithm=alg, headers={"kid": "k1", "typ": "at+jwt", **(headers or {})})


def verify(token: str) -> Any:
    return verify_access_token(token, KEYS, issuer="flowdock", audience="flowdock")


def test_valid_token() -> None:
    p = verify(make())
    assert (p.user_id, p.session_id, p.role) == ("u1", "s1", "user")


def test_alg_none_refused() -> None:
    token = jwt.encode({"sub": "u1"}, None, algorithm="none", headers={"kid": "k1", "typ": "at+jwt"})
    with pytest.raises(Unauthenticated, match="algorithm"):
        verify(token)


def test_hs256_with_public_key_refused() -> None:
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","kid":"k1","typ":"at+jwt"}')
    payload = jwt.utils.base64url_encode(b'{"sub":"u1","sid":"s1","iss":"flowdock","aud":"flowdock","exp":9999999999}')
    import hashlib
    import hmac

    sig = jwt.utils.base64url_encode(hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest())
    with pytest.raises(Unauthenticated, match="algorithm"):
        verify((header + b"." + payload + b"." + sig).decode())


@pytest.mark.parametrize(
    ("claims", "headers", "reason"),
    [
        ({"aud": "someone-else"}, {}, "rejected"),
        ({"iss": "evil"}, {}, "rejected"),
        ({"exp": -120}, {}, "expired"),  # seconds from now, applied when the test runs
        ({"nbf": 120}, {}, "rejected"),
        ({}, {"typ": "refresh+jwt"}, "not an access token"),
        ({}, {"kid": "k1' OR 1=1 --"}, "unknown key"),
        ({}, {"kid": "../../etc/passwd"}, "unknown key"),
        ({}, {"kid": "k2"}, "unknown key"),
        ({"role": "root"}, {}, "rejected"),
    ],
)
def test_bad_claims_and_headers(claims: dict[str, Any], headers: dict[str, Any], reason: str) -> None:
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in claims.items()}
    with pytest.raises(Unauthenticated, match=reason):
        verify(make(claims, headers))


def test_other_key_and_garbage() -> None:
    with pytest.raises(Unauthenticated):
        verify(make(key=Ed25519PrivateKey.generate()))
    with pytest.raises(Unauthenticated, match="malformed"):
        verify("garbage")


def test_jku_and_jwk_headers_are_ignored() -> None:
    attacker = Ed25519PrivateKey.generate()
    token = make(key=attacker, headers={"jku": "http://evil/jwks", "jwk": {"kty": "OKP"}})
    with pytest.raises(Unauthenticated):
        verify(token)


async def test_a_cancelled_caller_does_not_cancel_the_others_sharing_its_session_check() -> None:
    """Found by bench/load_bench.py: ten listings of one session waited on the first one's CheckSession; when that
    call was cancelled (its stream reset), all of them ended CANCELLED."""
    gate = asyncio.Event()
    asked = 0

    async def check(sid: str) -> bool:
        nonlocal asked
        asked += 1
        await gate.wait()
        return True

    cache = SessionCache(check)
    first = asyncio.ensure_future(cache.active("s1"))
    await asyncio.sleep(0)
    others = [asyncio.ensure_future(cache.active("s1")) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*others) == [True, True, True]
    assert first.cancelled() and asked == 1  # one question for all of them, answered once
    assert await cache.active("s1") and asked == 1  # and cached


async def test_a_failed_session_check_fails_every_caller_closed() -> None:
    async def check(sid: str) -> bool:
        await asyncio.sleep(0)
        raise OSError("auth_svc is gone")

    cache = SessionCache(check)
    outcomes = await asyncio.gather(*(cache.active("s2") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
