"""Signing-key rotation with `flowdock keys rotate-signing` on a running system (its own mesh: rotating would
disturb the shared one). The new key is published before it signs; the old one stays in the JWKS until the
tokens it signed have expired; Envoy and every service verify against the published set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import jwt
import pytest
import sqlalchemy as sa

from flowdock.storage.v1 import storage_pb2 as S
from flowdock.storage.v1 import storage_pb2_grpc
from tests.support.accounts import PASSWORD, cli, new_email, rest
from tests.support.mesh import BACKENDS, Running, flowdock_up

# Published 4 s before it signs: every JWKS cache must be younger than that (Envoy's refreshes in the background).
ENV = {
    "FLOWDOCK_AUTH_SIGNING_KEY_PUBLISH_SECONDS": "4",
    "FLOWDOCK_AUTH_SIGNING_KEY_RELOAD_SECONDS": "0.5",
    "FLOWDOCK_GATEWAY_JWKS_CACHE_SECONDS": "1",
}


@pytest.fixture(params=BACKENDS)
def fresh_mesh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    with flowdock_up(tmp_path / "data", request.param, env=ENV, db_prefix="fdkeys") as running:
        yield running


def token_for(mesh: Running, email: str) -> str:
    with rest(mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["accessToken"])


def kids(mesh: Running) -> set[str]:
    with rest(mesh) as c:
        return {k["kid"] for k in c.get("/.well-known/jwks.json").json()["keys"]}


def direct_storage_ok(mesh: Running, token: str) -> bool:
    """storage_svc itself (no Envoy): its KeyCache and the revocation check."""
    with mesh.channel("storage") as ch:
        try:
            storage_pb2_grpc.StorageServiceStub(ch).ListChildren(
                S.ListChildrenRequest(folder_id="root"), metadata=[("authorization", f"Bearer {token}")]
            )
        except grpc.RpcError as exc:
            code = exc.code()
        else:
            return True
    assert code == grpc.StatusCode.UNAUTHENTICATED, code
    return False


def test_rotate_signing_key_keeps_old_tokens_valid_and_retires_the_old_key(fresh_mesh: Running) -> None:
    mesh = fresh_mesh
    made = cli(
        mesh, "admin", "create-user", "--email", (email := new_email()), "--password-stdin", stdin=PASSWORD, env=ENV
    )
    assert made.returncode == 0, made.stderr
    old_token = token_for(mesh, email)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    assert kids(mesh) == {old_kid}

    rotated = cli(mesh, "keys", "rotate-signing", env=ENV)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split()[3].rstrip(":")
    deadline = time.monotonic() + 5
    while kids(mesh) != {old_kid, new_kid} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kids(mesh) == {old_kid, new_kid}  # published before it signs
    assert jwt.get_unverified_header(token_for(mesh, email))["kid"] == old_kid

    deadline = time.monotonic() + 12
    while (kid := jwt.get_unverified_header(new_token := token_for(mesh, email))["kid"]) != new_kid:
        assert time.monotonic() < deadline, "the new key never started signing"
        time.sleep(0.3)
    assert kid == new_kid
    # Both tokens pass Envoy's jwt_authn (its JWKS, refreshed every second here, has both keys) and every service.
    for token in (old_token, new_token):
        with rest(mesh, token) as c:
            assert c.get("/api/v1/folders/root/children").status_code == 200
            assert c.get("/api/v1/me").status_code == 200
        assert direct_storage_ok(mesh, token)

    # The old key's retirement was scheduled for when its last token expires (activation + TTL + leeway).
    engine = sa.create_engine(mesh.service_db_url("auth"))
    with engine.begin() as conn:
        rows = {r.kid: r for r in conn.execute(sa.text("SELECT kid, activate_at, retire_at FROM signing_keys"))}
        retire = rows[old_kid].retire_at
        activate = rows[new_kid].activate_at
        retire = retire if isinstance(retire, datetime) else datetime.fromisoformat(retire)
        activate = activate if isinstance(activate, datetime) else datetime.fromisoformat(activate)
        assert retire - activate == timedelta(seconds=300 + 60)
        assert rows[new_kid].retire_at is None
        # Let that time pass: the old key leaves the JWKS and its tokens stop working on every service.
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(sa.text("UPDATE signing_keys SET retire_at = :t WHERE kid = :k"), {"t": past, "k": old_kid})
    engine.dispose()
    deadline = time.monotonic() + 5
    while kids(mesh) != {new_kid} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kids(mesh) == {new_kid}
    deadline = time.monotonic() + 70  # storage_svc refetches keys every jwks_refresh_seconds (60 s) at most
    with rest(mesh, old_token) as c:
        while c.get("/api/v1/me").status_code != 401:  # auth_svc reloads within a second
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert direct_storage_ok(mesh, new_token)
