"""The mesh authenticates its callers (issue 13, item 4), through `flowdock up` on SQLite and PostgreSQL:

- a service port answers mutual TLS only: no certificate, no connection;
- internal methods answer only the mesh identities declared for them (a "scanner" or a sibling service with the
  wrong job gets PERMISSION_DENIED before any token is looked at);
- a client address forwarded by anyone but the gateway is ignored: the audit trail shows the real peer;
- admin operations in storage_svc and share_svc check auth's record, so a demoted admin's token is refused.
"""

from __future__ import annotations

import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.support.mesh import Running

PASSWORD = "correct horse battery staple"


def _health_code(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_a_client_without_a_mesh_certificate_cannot_connect(mesh: Running) -> None:
    ca = (mesh.data_dir / "mesh" / "ca.pem").read_bytes()
    for name, addresses in mesh.services.items():
        target = addresses.split(",")[0]
        with grpc.insecure_channel(target) as plain:
            assert _health_code(plain) == grpc.StatusCode.UNAVAILABLE, name
        # TLS that trusts the mesh CA but shows no client certificate: the handshake is refused.
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        options = [("grpc.ssl_target_name_override", f"{name}_svc")]
        with grpc.secure_channel(target, anonymous, options=options) as tls_only:
            assert _health_code(tls_only) == grpc.StatusCode.UNAVAILABLE, name
        with mesh.channel(name) as member:
            assert _health_code(member) == grpc.StatusCode.OK, name


def test_mesh_files_are_private(mesh: Running) -> None:
    folder = mesh.data_dir / "mesh"
    assert folder.stat().st_mode & 0o777 == 0o700
    for key in folder.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key


def _call(channel: grpc.Channel, path: str, token: str = "") -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        channel.unary_unary(path)(b"", metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


# (service, internal method, an identity not allowed, the identity that is)
INTERNAL = [
    ("auth", "/flowdock.auth.v1.AuthInternalService/LookupUser", "storage_svc", "share_svc"),
    ("auth", "/flowdock.auth.v1.AuthInternalService/NotifyUser", "scanner", "share_svc"),
    ("auth", "/flowdock.auth.v1.AuthInternalService/RecordEvents", "scanner", "storage_svc"),
    ("auth", "/flowdock.auth.v1.AuthInternalService/CheckSession", "gateway", "storage_svc"),
    ("auth", "/flowdock.auth.v1.AuthInternalService/AuthenticateBasic", "gateway", "dav_svc"),
    ("storage", "/flowdock.storage.v1.StorageAdminService/GetUserQuota", "share_svc", "auth_svc"),
    ("storage", "/flowdock.storage.v1.StorageAdminService/DeleteUserData", "scanner", "auth_svc"),
    ("share", "/flowdock.share.v1.AccessService/CheckAccess", "gateway", "storage_svc"),
    ("share", "/flowdock.share.v1.AccessService/DeleteUserShares", "storage_svc", "auth_svc"),
]


@pytest.mark.parametrize(("service", "method", "stranger", "member"), INTERNAL, ids=[m for _, m, _, _ in INTERNAL])
def test_internal_methods_answer_only_their_declared_callers(
    mesh: Running, service: str, method: str, stranger: str, member: str
) -> None:
    with mesh.channel(service, stranger) as ch:
        assert _call(ch, method) == grpc.StatusCode.PERMISSION_DENIED
    with mesh.channel(service, member) as ch:
        # Past the identity check: what follows is the method's own answer (a token, a field, or OK).
        assert _call(ch, method) != grpc.StatusCode.PERMISSION_DENIED


def _register_and_login(mesh: Running, email: str) -> str:
    with httpx.Client(base_url=mesh.url, timeout=30) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 200
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])


def _direct_login(mesh: Running, identity: str, email: str, metadata: list[tuple[str, str]]) -> None:
    with mesh.channel("auth", identity) as ch:
        auth_pb2_grpc.AuthServiceStub(ch).Login(
            auth_pb2.LoginRequest(email=email, password=PASSWORD), metadata=metadata, timeout=30
        )


def _login_ips(mesh: Running, token: str) -> list[str]:
    with httpx.Client(base_url=mesh.url, timeout=30, headers={"authorization": f"Bearer {token}"}) as c:
        r = c.get("/api/v1/me/activity", params={"page_size": 100})
    assert r.status_code == 200, r.text
    return [e.get("ip", "") for e in r.json().get("events", []) if e["kind"].startswith("login")]


def test_forwarded_client_address_counts_only_from_the_gateway(mesh: Running) -> None:
    email = f"xff-{time.time_ns()}@example.org"
    token = _register_and_login(mesh, email)
    forged = [("x-forwarded-for", "203.0.113.77"), ("x-flowdock-client-ip", "203.0.113.78")]
    _direct_login(mesh, "scanner", email, forged)
    _direct_login(mesh, "storage_svc", email, forged)
    # Through the gateway with no trusted hops: the client's own X-Forwarded-For is not its address either.
    with httpx.Client(base_url=mesh.url, timeout=30) as c:
        r = c.post(
            "/api/v1/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"x-forwarded-for": "198.51.100.9", "x-flowdock-client-ip": "198.51.100.10"},
        )
        assert r.status_code == 200
    ips = _login_ips(mesh, token)
    assert len(ips) >= 4, ips
    assert not {"203.0.113.77", "203.0.113.78", "198.51.100.9", "198.51.100.10"} & set(ips), ips
    assert set(ips) == {"127.0.0.1"}, ips
    # The gateway's identity is believed (what Envoy sets after its trusted hops).
    _direct_login(mesh, "gateway", email, [("x-flowdock-client-ip", "192.0.2.5")])
    assert "192.0.2.5" in _login_ips(mesh, token)


def test_a_demoted_admin_is_refused_admin_operations_in_storage_and_share(mesh: Running) -> None:
    from tests.support.accounts import make_admin

    first = make_admin(mesh, fresh=True)
    second = make_admin(mesh, fresh=True)
    with httpx.Client(base_url=mesh.url, timeout=30, headers={"authorization": f"Bearer {first.access_token}"}) as c:
        first_id = c.get("/api/v1/me").json()["id"]
    victim = _register_and_login(mesh, f"victim-{time.time_ns()}@example.org")
    with httpx.Client(base_url=mesh.url, timeout=30, headers={"authorization": f"Bearer {victim}"}) as c:
        victim_id = c.get("/api/v1/me").json()["id"]

    def storage_code(token: str) -> grpc.StatusCode:
        with mesh.channel("storage", "auth_svc") as ch:
            try:
                storage_pb2_grpc.StorageAdminServiceStub(ch).GetUserQuota(
                    storage_pb2.GetUserQuotaRequest(user_id=victim_id),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=10,
                )
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def share_code(token: str) -> grpc.StatusCode:
        with mesh.channel("share", "auth_svc") as ch:
            try:
                share_pb2_grpc.AccessServiceStub(ch).DeleteUserShares(
                    share_pb2.DeleteUserSharesRequest(user_id=victim_id),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=10,
                )
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    assert storage_code(first.access_token) == grpc.StatusCode.OK
    assert share_code(first.access_token) == grpc.StatusCode.OK
    with httpx.Client(base_url=mesh.url, timeout=30, headers={"authorization": f"Bearer {second.access_token}"}) as c:
        assert c.post(f"/api/v1/admin/users/{first_id}/role", json={"role": "ROLE_USER"}).status_code == 200
    time.sleep(2.2)  # past the services' 2 s cache of auth's answer
    # The first admin's token still says role=admin and its session still works...
    with httpx.Client(base_url=mesh.url, timeout=30, headers={"authorization": f"Bearer {first.access_token}"}) as c:
        assert c.get("/api/v1/me").status_code == 200
    # ...but storage and share ask auth's record.
    assert storage_code(first.access_token) == grpc.StatusCode.PERMISSION_DENIED
    assert share_code(first.access_token) == grpc.StatusCode.PERMISSION_DENIED
    assert storage_code(second.access_token) == grpc.StatusCode.OK
