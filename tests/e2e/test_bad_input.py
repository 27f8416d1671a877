"""Bad input through the gateway gets a precise status on every protocol — never a 5xx, hang or traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowdock.auth.v1 import auth_pb2
from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import MESH_PASSWORD as PASSWORD
from tests.support.accounts import register_and_login, rest
from tests.support.mesh import Running, free_port, start_up, stop_up
from tests.support.signing import newest_signing_key


def test_unknown_rest_path_is_404_json(mesh: Running) -> None:
    # "/" is the web app now (tests/e2e/test_webapp.py); API-shaped paths keep the JSON 404.
    for method, path in [("GET", "/api/v1/nope"), ("POST", "/api/v1/folders/x/y/z"), ("GET", "/.well-known/nope")]:
        r = httpx.request(method, f"{mesh.url}{path}")
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["code"] == 5


def test_malformed_json_and_wrong_types_are_400_naming_the_field(mesh: Running) -> None:
    token = register_and_login(mesh)
    with rest(mesh, token) as c:
        r = c.post("/api/v1/folders", content=b'{"name": "x"')
        assert r.status_code == 400
        assert r.json()["code"] == 3
        r = c.post("/api/v1/uploads", json={"parent_id": "root", "name": "a", "size": "abc"})
        assert r.status_code == 400
        assert "size" in r.json()["message"]
        r = c.post("/api/v1/folders", json={"parent_id": "root", "name": {"nested": 1}})
        assert r.status_code == 400
        assert "name" in r.json()["message"]
        r = c.get("/api/v1/folders/root/children", params={"bogus": "1"})
        assert r.status_code == 400
        assert "bogus" in r.json()["message"]


@pytest.mark.parametrize("name", ["a/b", "../../x", "a\x00b", "evil\u202egpj.exe", "x" * 300, ".."])
def test_bad_names_carry_a_field_violation_on_rest_and_grpc(mesh: Running, name: str) -> None:
    token = register_and_login(mesh)
    with rest(mesh, token) as c:
        r = c.post("/api/v1/folders", json={"parent_id": "root", "name": name})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 3
    violations = body["details"][0]["fieldViolations"]
    assert violations[0]["field"] == "name"
    native = Native(native_channel(mesh.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.CreateFolder(
            S.CreateFolderRequest(parent_id="root", name=name), metadata=[("authorization", f"Bearer {token}")]
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(exc.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "name"


def expired_token(mesh: Running, *, role: str = "user", ttl: int = -3000) -> str:
    """A token signed by auth_svc's real key (from its database): by default one that expired long ago."""
    kid, key = newest_signing_key(mesh)
    now = int(time.time())
    start = now - 3600 if ttl < 0 else now
    claims = {"iss": "flowdock", "aud": "flowdock", "sub": str(uuid.uuid4()), "sid": "s", "role": role}
    claims |= {"iat": start, "nbf": start, "exp": now + ttl}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})  # type: ignore[arg-type]


def test_missing_expired_and_garbage_tokens_on_all_three_protocols(mesh: Running) -> None:
    native = Native(native_channel(mesh.host_port))
    for token in ["", "garbage", "a.b.c", expired_token(mesh)]:
        with rest(mesh, token) as c:
            r = c.get("/api/v1/me")
        assert r.status_code == 401, (token[:10], r.text)
        assert r.json()["code"] == 16
        md = [("authorization", f"Bearer {token}")] if token else []
        with pytest.raises(grpc.RpcError) as exc:
            native.auth.GetMe(auth_pb2.GetMeRequest(), metadata=md)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(GrpcWebError) as web_exc:
            GrpcWeb(mesh.url, token).call("flowdock.auth.v1.AuthService/GetMe", auth_pb2.GetMeRequest(), auth_pb2.User)
        assert web_exc.value.status == grpc.StatusCode.UNAUTHENTICATED.value[0]


def test_wrong_password_is_401_not_500(mesh: Running) -> None:
    email = f"w{uuid.uuid4().hex[:8]}@example.org"
    httpx.post(f"{mesh.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    wrong = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": email, "password": "not the password"})
    unknown = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": "nobody@example.org", "password": "x" * 9})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]


def test_oversize_messages_name_their_limit(mesh: Running) -> None:
    token = register_and_login(mesh)
    md = [("authorization", f"Bearer {token}")]
    native = Native(native_channel(mesh.host_port))
    upload = native.storage.CreateUpload(
        S.CreateUploadRequest(parent_id="root", name="big", size=64 << 20), metadata=md
    )
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.WriteUploadChunk(
            S.WriteUploadChunkRequest(upload_id=upload.upload_id, offset=0, data=b"\0" * (20 << 20)), metadata=md
        )
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "storage_max_chunk_bytes" in (exc.value.details() or "")
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.WriteUploadChunk(
            S.WriteUploadChunkRequest(upload_id=upload.upload_id, offset=0, data=b"\0" * (40 << 20)), metadata=md
        )
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (exc.value.details() or "")
    assert native.storage.GetUpload(S.GetUploadRequest(upload_id=upload.upload_id), metadata=md).committed_size == 0
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.CreateUpload(S.CreateUploadRequest(parent_id="root", name="huge", size=1 << 50), metadata=md)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "storage_max_file_bytes" in (exc.value.details() or "")


def test_client_identity_headers_are_ignored(mesh: Running) -> None:
    me = register_and_login(mesh)
    other = register_and_login(mesh)
    with rest(mesh, other) as c:
        other_id = c.get("/api/v1/me").json()["id"]
    forged = {"x-user-id": other_id, "x-jwt-payload": "eyJzdWIiOiJ4In0", "x-user-role": "admin"}
    with rest(mesh, me) as c:
        r = c.get("/api/v1/me", headers=forged)
    assert r.status_code == 200
    assert r.json()["id"] != other_id
    r = httpx.get(f"{mesh.url}/api/v1/me", headers=forged)
    assert r.status_code == 401


def test_request_id_crosses_service_hops(mesh: Running) -> None:
    owner = register_and_login(mesh)
    other = register_and_login(mesh)
    with rest(mesh, owner) as c:
        folder_id = c.post("/api/v1/folders", json={"parent_id": "root", "name": "Hop"}).json()["id"]
    with rest(mesh, other) as c:
        r = c.get(f"/api/v1/nodes/{folder_id}")  # not the owner: storage_svc asks share_svc
    assert r.status_code == 404
    rid = r.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (rid in mesh.log("storage") and rid in mesh.log("share")):
        time.sleep(0.2)
    assert rid in mesh.log("storage")
    assert rid in mesh.log("share")


def test_service_metrics_are_exported(mesh: Running) -> None:
    register_and_login(mesh)
    ready = json.loads((mesh.data_dir / "run" / "auth.json").read_text())
    text = httpx.get(f"http://127.0.0.1:{ready['metrics_port']}/metrics").text
    assert 'flowdock_grpc_requests_total{code="OK",method="/flowdock.auth.v1.AuthService/Login",service="auth"}' in text
    assert "flowdock_grpc_request_seconds_bucket" in text
    envoy = httpx.get(f"{mesh.admin_url}/stats/prometheus").text
    assert "envoy_cluster_upstream_rq" in envoy


def busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, int(s.getsockname()[1])


def test_up_refuses_a_busy_port_and_bad_config(tmp_path: Path) -> None:
    sock, port = busy_port()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "flowdock_cli", "up", "--data-dir", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        sock.close()
    assert r.returncode == 2
    assert f"port {port}" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "flowdock_cli", "up", "--data-dir", str(tmp_path), "--db", "mysql://nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "FLOWDOCK_DB_URL" in r.stderr
    assert "Traceback" not in r.stderr


def test_up_waits_for_clamd_then_stops_with_what_to_do(tmp_path: Path) -> None:
    """Scanning is never switched off behind the operator's back: no clamd within the bound stops the start."""
    dead = free_port()
    scan_keys = ("FLOWDOCK_STORAGE_VIRUS_SCAN", "FLOWDOCK_STORAGE_CLAMD_ADDRESS")
    env = {k: v for k, v in os.environ.items() if k not in scan_keys}
    env |= {"FLOWDOCK_STORAGE_CLAMD_ADDRESS": f"127.0.0.1:{dead}", "FLOWDOCK_STORAGE_CLAMD_WAIT_SECONDS": "1.5"}
    started = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "flowdock_cli", "up", "--data-dir", str(tmp_path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 2, r.stderr
    assert 1.5 <= time.monotonic() - started < 30
    assert f"no clamd answers at 127.0.0.1:{dead} after 1.5 s" in r.stderr
    assert "--no-scan" in r.stderr and "FLOWDOCK_STORAGE_VIRUS_SCAN=off" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "up.json").exists()


def test_up_no_scan_is_explicit_and_said(tmp_path: Path) -> None:
    running = start_up(
        tmp_path / "data",
        "sqlite",
        extra_env={"FLOWDOCK_STORAGE_CLAMD_ADDRESS": f"127.0.0.1:{free_port()}"},
        args=["--no-scan"],
    )
    code, err = stop_up(running)
    assert code == 0, err
    assert "virus scanning is OFF (--no-scan" in err


def test_services_answer_health_and_reflection(mesh: Running) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    for name in mesh.services:
        channel = mesh.channel(name)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for reply in replies for s in reply.list_services_response.service}
        assert f"flowdock.{name}.v1.{name.capitalize()}Service" in names
        channel.close()
