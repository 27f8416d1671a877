"""Forged and misused tokens (RFC 8725 checklist) are refused by the gateway AND by each service on its own
(called directly, bypassing Envoy): alg=none, HS256 keyed with the public key, `kid` with SQL/path characters,
an attacker key in a `jwk` header, wrong aud/iss, expired, not yet valid, wrong `typ`, a refresh token used as
an access token, an access token used to refresh."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock.storage.v1 import storage_pb2 as S
from flowdock.storage.v1 import storage_pb2_grpc
from tests.e2e.protocols import GrpcWeb, GrpcWebError
from tests.support.accounts import rest, user
from tests.support.encoding import b64url
from tests.support.mailbox import Mailbox
from tests.support.mesh import Running
from tests.support.signing import newest_signing_key


def signing_key(mesh: Running) -> tuple[str, Ed25519PrivateKey]:
    return newest_signing_key(mesh)


def forged_tokens(mesh: Running, good: str) -> dict[str, str]:
    kid, key = signing_key(mesh)
    claims: dict[str, Any] = jwt.decode(good, options={"verify_signature": False})
    now = int(time.time())

    def sign(extra: dict[str, Any] | None = None, headers: dict[str, Any] | None = None, k: Any = key) -> str:
        head = {"kid": kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode({**claims, **(extra or {})}, k, algorithm="EdDSA", headers=head)

    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    body = b64url(json.dumps(claims).encode())
    hs = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    none_header = b64url(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode())
    head, _, signature = good.split(".")
    tampered = f"{head}.{b64url(json.dumps({**claims, 'role': 'admin'}).encode())}.{signature}"
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = json.loads(OKPAlgorithm.to_jwk(attacker.public_key()))
    return {
        "alg none": f"{none_header}.{body}.",
        "HS256 with the public key": f"{header}.{body}.{b64url(hs)}",
        "kid with SQL": sign(headers={"kid": "x' OR '1'='1"}),
        "kid with a path": sign(headers={"kid": "../../../../etc/passwd"}),
        "attacker key in jwk/jku headers": sign(
            headers={"kid": "attacker", "jwk": attacker_jwk, "jku": "http://127.0.0.1:1/jwks"}, k=attacker
        ),
        "wrong aud": sign({"aud": "someone-else"}),
        "wrong iss": sign({"iss": "https://evil.example"}),
        "expired": sign({"iat": now - 3600, "nbf": now - 3600, "exp": now - 600}),
        "not yet valid": sign({"nbf": now + 600, "exp": now + 900}),
        "wrong typ": sign(headers={"typ": "JWT"}),
        "refresh typ": sign(headers={"typ": "refresh+jwt"}),
        "tampered payload": tampered,
    }


def direct_code(running: Running, token: str, service: str) -> grpc.StatusCode:
    with running.channel(service) as ch:
        md = [("authorization", f"Bearer {token}")]
        try:
            if service == "storage":
                storage_pb2_grpc.StorageServiceStub(ch).ListChildren(
                    S.ListChildrenRequest(folder_id="root"), metadata=md
                )
            else:
                auth_pb2_grpc.AuthServiceStub(ch).GetMe(auth_pb2.GetMeRequest(), metadata=md)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_forged_tokens_are_refused_at_the_edge_and_by_every_service(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    assert direct_code(auth_mesh, me.access_token, "storage") == grpc.StatusCode.OK
    tokens = forged_tokens(auth_mesh, me.access_token)
    tokens["refresh token as access token"] = me.refresh_token
    for name, token in tokens.items():
        with rest(auth_mesh, token) as c:
            status = c.get("/api/v1/folders/root/children").status_code
        assert status in (401, 403), (name, status)
        with pytest.raises(GrpcWebError) as exc:
            GrpcWeb(auth_mesh.url, token).call(
                "flowdock.storage.v1.StorageService/ListChildren",
                S.ListChildrenRequest(folder_id="root"),
                S.ListChildrenResponse,
            )
        assert exc.value.status in (7, 16), name
        for service in ("storage", "auth"):
            code = direct_code(auth_mesh, token, service)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (name, service, code)
    # The genuine token still works (nothing above was accepted by accident or broke a cache).
    with rest(auth_mesh, me.access_token) as c:
        assert c.get("/api/v1/folders/root/children").status_code == 200


def test_an_access_token_cannot_refresh(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/refresh", json={"refresh_token": me.access_token})
        assert r.status_code == 401
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": ""}).status_code == 401
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 5000}).status_code == 401
        # The session is unharmed by those attempts.
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": me.refresh_token}).status_code == 200
