"""TLS at the edge (issue 13, item 5), through `flowdock up --tls-cert/--tls-key --xff-trusted-hops 1`:
REST with curl --cacert, native gRPC over TLS (HTTP/2 by ALPN), grpc-web over TLS (HTTP/1.1), HSTS only over TLS,
and the client address behind one trusted proxy in auth's activity log. The plaintext side (hops 0: a client's
X-Forwarded-For is ignored, no HSTS) runs against the session's plaintext `flowdock up`."""

from __future__ import annotations

import shutil
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel.mesh import ensure_edge_certificate
from tests.support.accounts import PASSWORD
from tests.support.mesh import REQUIRE_SERVERS, Running, flowdock_up


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Path]]:
    """`flowdock up` serving TLS with a certificate for localhost/127.0.0.1, one trusted proxy hop (SQLite)."""
    folder = tmp_path_factory.mktemp("edge-cert")
    cert, key = ensure_edge_certificate(folder, ["localhost", "127.0.0.1"])
    tls = ["--tls-cert", str(cert), "--tls-key", str(key), "--xff-trusted-hops", "1"]
    with flowdock_up(tmp_path_factory.mktemp("up-tls"), args=tls) as running:
        yield running, folder / "ca.pem"


def _verify(ca: Path | bool) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca)) if isinstance(ca, Path) else ca


def _register_and_login(base_url: str, ca: Path | bool, email: str, headers: dict[str, str] | None = None) -> str:
    with httpx.Client(base_url=base_url, verify=_verify(ca), timeout=30) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 200
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=headers or {})
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])


def _login_ips(base_url: str, ca: Path | bool, token: str) -> list[str]:
    with httpx.Client(base_url=base_url, verify=_verify(ca), timeout=30) as c:
        r = c.get("/api/v1/me/activity", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return [e.get("ip", "") for e in r.json().get("events", []) if e["kind"].startswith("login")]


def test_up_reports_an_https_url(edge: tuple[Running, Path]) -> None:
    running, _ = edge
    assert running.url.startswith("https://")


def test_rest_over_tls_with_curl_and_hsts(edge: tuple[Running, Path]) -> None:
    if shutil.which("curl") is None:
        if REQUIRE_SERVERS:
            pytest.fail("curl is not installed (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping; .ci/run installs it)")
        pytest.skip("curl is not installed")
    running, ca = edge
    port = running.url.rsplit(":", 1)[1]
    url = f"https://localhost:{port}/.well-known/jwks.json"
    out = subprocess.run(
        ["curl", "-sS", "--cacert", str(ca), "-D", "-", "-o", "/dev/null", "-w", "%{http_version}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    headers = out.stdout.lower()
    assert " 200" in headers.splitlines()[0]
    assert "strict-transport-security: max-age=31536000; includesubdomains" in headers
    assert out.stdout.strip().endswith("2")  # curl negotiated HTTP/2 by ALPN
    # Without the CA the certificate is refused; plain HTTP on the TLS port gets nowhere.
    assert subprocess.run(["curl", "-sS", url], capture_output=True, timeout=30).returncode != 0
    plain = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url.replace("https://", "http://")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert plain.stdout != "200"


def test_native_grpc_over_tls(edge: tuple[Running, Path]) -> None:
    running, ca = edge
    token = _register_and_login(running.url, ca, f"tls-native-{time.time_ns()}@example.org")
    target = running.url.removeprefix("https://")
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with grpc.secure_channel(target, credentials) as channel:
        me = auth_pb2_grpc.AuthServiceStub(channel).GetMe(
            auth_pb2.GetMeRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=30
        )
    assert me.email.startswith("tls-native-")
    with grpc.insecure_channel(target) as plain:
        with pytest.raises(grpc.RpcError) as refused:
            auth_pb2_grpc.AuthServiceStub(plain).GetMe(auth_pb2.GetMeRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_web_over_tls(edge: tuple[Running, Path]) -> None:
    running, ca = edge
    token = _register_and_login(running.url, ca, f"tls-web-{time.time_ns()}@example.org")
    body = auth_pb2.GetMeRequest().SerializeToString()
    with httpx.Client(verify=_verify(ca), timeout=30) as c:  # HTTP/1.1, as a browser's grpc-web
        r = c.post(
            f"{running.url}/flowdock.auth.v1.AuthService/GetMe",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={
                "content-type": "application/grpc-web+proto",
                "x-grpc-web": "1",
                "authorization": f"Bearer {token}",
                "origin": "https://localhost:5173",
            },
        )
    assert r.status_code == 200
    assert r.http_version == "HTTP/1.1"
    assert r.headers["strict-transport-security"].startswith("max-age=")
    flags, length = struct.unpack(">BI", r.content[:5])
    assert flags == 0
    assert auth_pb2.User.FromString(r.content[5 : 5 + length]).email.startswith("tls-web-")


def test_over_tls_the_refresh_cookie_is_secure_and_mail_links_are_https(edge: tuple[Running, Path]) -> None:
    """flowdock up with a certificate serves https://, so its public URL is https and the browser's refresh cookie
    is marked Secure (never sent over plain HTTP)."""
    running, ca = edge
    email = f"tls-cookie-{time.time_ns()}@example.org"
    with httpx.Client(base_url=running.url, verify=_verify(ca), timeout=30) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 200
        body = auth_pb2.LoginRequest(email=email, password=PASSWORD).SerializeToString()
        r = c.post(
            "/flowdock.auth.v1.AuthService/Login",
            content=struct.pack(">BI", 0, len(body)) + body,
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1", "x-flowdock-cookie-session": "1"},
        )
        # The app's own responses (built or the "not built" page) carry HSTS too.
        page = c.get("/", headers={"accept": "text/html"})
        assert page.status_code == 200 and page.headers["strict-transport-security"].startswith("max-age=")
    assert r.status_code == 200
    attributes = [part.strip() for part in r.headers["set-cookie"].split(";")]
    assert "Secure" in attributes and "HttpOnly" in attributes
    links = [
        line
        for path in (running.data_dir / "outbox").glob("*.eml")
        for line in path.read_text(errors="replace").splitlines()
        if "/verify-email?token=" in line
    ]
    assert links and all(link.strip().startswith(f"{running.url}/verify-email?token=") for link in links)


def test_one_trusted_hop_records_the_client_behind_the_proxy(edge: tuple[Running, Path]) -> None:
    running, ca = edge
    email = f"tls-xff-{time.time_ns()}@example.org"
    token = _register_and_login(running.url, ca, email, headers={"x-forwarded-for": "203.0.113.50"})
    assert "203.0.113.50" in _login_ips(running.url, ca, token)


def test_plaintext_listener_has_no_hsts_and_zero_hops_ignores_forwarded_for(mesh: Running) -> None:
    email = f"plain-xff-{time.time_ns()}@example.org"
    token = _register_and_login(mesh.url, False, email, headers={"x-forwarded-for": "203.0.113.51"})
    assert _login_ips(mesh.url, False, token) == ["127.0.0.1"]
    r = httpx.get(f"{mesh.url}/.well-known/jwks.json", timeout=30)
    assert r.status_code == 200
    assert "strict-transport-security" not in r.headers
