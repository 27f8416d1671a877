"""The browser's refresh token as an HttpOnly cookie (issue 12, item 7), through the real Envoy with grpc-web.

grpc-web carries gRPC initial metadata as HTTP response headers (Set-Cookie) and HTTP request headers as metadata
(Cookie, x-flowdock-cookie-session): these tests speak grpc-web frames over HTTP/1.1 exactly as a browser does.
"""

from __future__ import annotations

import urllib.parse
import uuid
from dataclasses import dataclass

import httpx
import pytest

from auth_svc.servicer import COOKIE_PATH, REFRESH_COOKIE, RefreshCookie, _cookie
from flowdock.auth.v1 import auth_pb2
from tests.e2e.protocols import _frame, _parse_frames
from tests.support.mesh import Running

PASSWORD = "correct horse battery"
AUTH = "flowdock.auth.v1.AuthService"
COOKIE_MODE = {"x-flowdock-cookie-session": "1"}


@dataclass
class Reply:
    status: int
    message: str
    headers: httpx.Headers
    body: bytes

    def login(self) -> auth_pb2.LoginResponse:
        assert self.status == 0, self.message
        return auth_pb2.LoginResponse.FromString(self.body)

    @property
    def set_cookie(self) -> str:
        return self.headers.get("set-cookie", "")


def call(mesh: Running, method: str, request: auth_pb2.Message, headers: dict[str, str] | None = None) -> Reply:
    """One grpc-web call from the app's own origin (same-origin: a browser sends no Origin for it)."""
    resp = httpx.post(
        f"{mesh.url}/{AUTH}/{method}",
        content=_frame(request.SerializeToString()),
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1", **(headers or {})},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    messages, trailers = _parse_frames(resp.content)
    status = int(trailers.get("grpc-status", resp.headers.get("grpc-status", "0")))
    message = urllib.parse.unquote(trailers.get("grpc-message", resp.headers.get("grpc-message", "")))
    return Reply(status, message, resp.headers, messages[0] if messages else b"")


def account(mesh: Running) -> auth_pb2.LoginRequest:
    email = f"c{uuid.uuid4().hex[:10]}@example.org"
    r = httpx.post(f"{mesh.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return auth_pb2.LoginRequest(email=email, password=PASSWORD, device_name="browser")


def cookie_value(set_cookie: str) -> str:
    value = _cookie([set_cookie.split(";", 1)[0]], REFRESH_COOKIE)
    assert value, set_cookie
    return value


def test_login_in_cookie_mode_sets_an_httponly_cookie_and_no_body_token(mesh: Running) -> None:
    reply = call(mesh, "Login", account(mesh), COOKIE_MODE)
    tokens = reply.login()
    assert tokens.access_token and tokens.refresh_token == ""
    attributes = [part.strip() for part in reply.set_cookie.split(";")]
    assert attributes[0].startswith(f"{REFRESH_COOKIE}=") and len(attributes[0]) > 30
    assert {"HttpOnly", "SameSite=Strict", f"Path={COOKIE_PATH}"} <= set(attributes)
    assert "Max-Age=2592000" in attributes  # the session's absolute lifetime (30 days by default)
    assert "Secure" not in attributes  # http://127.0.0.1 public URL and no setting asking for it


def test_refresh_reads_and_rotates_the_cookie_and_reuse_ends_the_family(mesh: Running) -> None:
    first = cookie_value(call(mesh, "Login", account(mesh), COOKIE_MODE).set_cookie)
    refreshed = call(mesh, "Refresh", auth_pb2.RefreshRequest(), {**COOKIE_MODE, "cookie": f"{REFRESH_COOKIE}={first}"})
    tokens = refreshed.login()
    assert tokens.access_token and tokens.refresh_token == ""
    second = cookie_value(refreshed.set_cookie)
    assert second != first
    # Another cookie next to ours, as browsers send them: still found.
    third = cookie_value(
        call(
            mesh, "Refresh", auth_pb2.RefreshRequest(), {**COOKIE_MODE, "cookie": f"theme=dark; fd_refresh={second}"}
        ).set_cookie
    )
    # The rotated-away cookie is refused, and its reuse ends the session: the newest one dies with it.
    replay = call(mesh, "Refresh", auth_pb2.RefreshRequest(), {**COOKIE_MODE, "cookie": f"fd_refresh={first}"})
    assert replay.status == 16 and "already used" in replay.message
    assert not replay.set_cookie
    after = call(mesh, "Refresh", auth_pb2.RefreshRequest(), {**COOKIE_MODE, "cookie": f"fd_refresh={third}"})
    assert after.status == 16


def test_logout_in_cookie_mode_expires_the_cookie_and_ends_the_session(mesh: Running) -> None:
    login = call(mesh, "Login", account(mesh), COOKIE_MODE)
    token, refresh = login.login().access_token, cookie_value(login.set_cookie)
    out = call(mesh, "Logout", auth_pb2.LogoutRequest(), {**COOKIE_MODE, "authorization": f"Bearer {token}"})
    assert out.status == 0, out.message
    attributes = [part.strip() for part in out.set_cookie.split(";")]
    assert attributes[0] == f"{REFRESH_COOKIE}=" and "Max-Age=0" in attributes and "HttpOnly" in attributes
    again = call(mesh, "Refresh", auth_pb2.RefreshRequest(), {**COOKIE_MODE, "cookie": f"fd_refresh={refresh}"})
    assert again.status == 16


def test_without_the_header_tokens_stay_in_the_body_and_cookies_are_ignored(mesh: Running) -> None:
    login = call(mesh, "Login", account(mesh))
    tokens = login.login()
    assert tokens.refresh_token and not login.set_cookie
    # A cookie alone (what a cross-site form or a script on another port could make a browser send) is not read.
    alone = call(mesh, "Refresh", auth_pb2.RefreshRequest(), {"cookie": f"fd_refresh={tokens.refresh_token}"})
    assert alone.status == 16
    body = call(mesh, "Refresh", auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token))
    assert body.login().refresh_token and not body.set_cookie
    # REST clients likewise: body tokens, no cookie.
    rest = httpx.post(f"{mesh.url}/api/v1/auth/refresh", json={"refreshToken": body.login().refresh_token}, timeout=30)
    assert rest.status_code == 200 and rest.json()["refreshToken"] and "set-cookie" not in rest.headers


@pytest.mark.parametrize("origin", ["http://localhost:5173", "https://evil.example", "null"])
def test_no_other_origin_may_send_the_cookie_header_with_credentials(mesh: Running, origin: str) -> None:
    resp = httpx.options(
        f"{mesh.url}/{AUTH}/Refresh",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-grpc-web, x-flowdock-cookie-session",
        },
        timeout=30,
    )
    # A browser sends the real request only if the preflight grants the origin, the header and credentials.
    allowed_headers = {h.strip().lower() for h in resp.headers.get("access-control-allow-headers", "").split(",")}
    assert "x-flowdock-cookie-session" not in allowed_headers
    assert resp.headers.get("access-control-allow-credentials", "false").lower() != "true"
    if origin != "http://localhost:5173":
        assert "access-control-allow-origin" not in resp.headers


def test_cookie_attributes() -> None:
    secure = RefreshCookie(max_age_seconds=60, secure=True)
    assert secure.set_header("abc") == (
        "fd_refresh=abc; HttpOnly; SameSite=Strict; Path=/flowdock.auth.v1.AuthService/; Max-Age=60; Secure"
    )
    assert secure.clear_header().startswith("fd_refresh=; ") and "Max-Age=0" in secure.clear_header()
    assert _cookie(["a=1; fd_refresh=xyz", "b=2"], "fd_refresh") == "xyz"
    assert _cookie(["a=1", "fd_refresh_old=1"], "fd_refresh") == ""
