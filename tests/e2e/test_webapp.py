"""The browser app served by `flowdock up` through Envoy on the API's origin (issue 12, item 3).

A stand-in build (tests/support/webdist.py) is served from --web-dir, so no npm is needed; the API next to it
must behave exactly as before.
"""

from __future__ import annotations

import base64
import email as email_lib
import gzip
import html
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from flowdock.auth.v1 import auth_pb2
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, _parse_frames, native_channel
from tests.support.mesh import Running, start_up, stop_up
from tests.support.webdist import INDEX, PNG, SCRIPT, make_dist

pytestmark = pytest.mark.timeout(180)

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("webapp")
    running = start_up(root / "data", "sqlite", args=["--web-dir", str(make_dist(root))])
    try:
        yield running
    finally:
        code, err = stop_up(running)
        assert code == 0, err


def get(running: Running, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{running.url}{path}", headers=headers, timeout=30)


def assert_security_headers(resp: httpx.Response) -> None:
    assert resp.headers["content-security-policy"] == CSP
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-frame-options"] == "DENY"


def test_index_is_served_at_root_and_never_cached(app: Running) -> None:
    for path in ("/", "/index.html"):
        resp = get(app, path, **BROWSER)
        assert resp.status_code == 200, path
        assert resp.text == INDEX
        assert resp.headers["content-type"] == "text/html; charset=utf-8"
        assert resp.headers["cache-control"] == "no-cache"
        assert_security_headers(resp)


def test_hashed_assets_are_immutable_and_byte_exact(app: Running) -> None:
    script = get(app, "/assets/index-3f2a1b9c.js")
    assert script.status_code == 200
    assert script.text == SCRIPT
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert_security_headers(script)
    image = get(app, "/assets/logo-5e6f7a8b.png")
    assert image.content == PNG
    assert image.headers["content-type"] == "image/png"
    assert get(app, "/favicon.svg").headers["cache-control"] == "no-cache"
    assert get(app, "/.DS_Store").status_code == 404


@pytest.mark.parametrize("path", ["/files/abc/def", "/s/Tok3n-_x", "/login", "/verify-email?token=abc", "/x/y/z"])
def test_client_routes_fall_back_to_the_app(app: Running, path: str) -> None:
    resp = get(app, path, **BROWSER)
    assert resp.status_code == 200
    assert resp.text == INDEX
    assert resp.headers["cache-control"] == "no-cache"
    assert_security_headers(resp)


def test_a_missing_asset_is_a_404_not_the_app(app: Running) -> None:
    resp = get(app, "/assets/index-00000000.js", **BROWSER)
    assert resp.status_code == 404
    assert "<html" not in resp.text


def test_text_is_compressed_when_asked(app: Running) -> None:
    with httpx.Client(timeout=30) as client:
        # httpx would decode transparently: read the raw bytes to see what went over the wire.
        with client.stream("GET", f"{app.url}/assets/index-3f2a1b9c.js", headers={"accept-encoding": "gzip"}) as r:
            raw = b"".join(r.iter_raw())
            assert r.headers["content-encoding"] == "gzip"
            assert "accept-encoding" in r.headers["vary"].lower()
        assert gzip.decompress(raw).decode() == SCRIPT
        assert len(raw) < len(SCRIPT) / 10
        with client.stream("GET", f"{app.url}/", headers={**BROWSER, "accept-encoding": "br, gzip"}) as r:
            assert r.headers["content-encoding"] == "br"
        with client.stream("GET", f"{app.url}/", headers={**BROWSER, "accept-encoding": "identity"}) as r:
            assert "content-encoding" not in r.headers
            assert b"".join(r.iter_raw()).decode() == INDEX


def test_api_paths_keep_their_answers(app: Running) -> None:
    for path in ("/api/v1/no-such-thing", "/flowdock.nope.v1.Nope/Call", "/.well-known/nothing"):
        for headers in ({}, BROWSER):
            resp = get(app, path, **headers)
            assert resp.status_code == 404, (path, headers)
            assert resp.headers["content-type"].startswith("application/json"), (path, headers)
            assert resp.json()["code"] == 5
            assert "content-security-policy" not in resp.headers
    jwks = get(app, "/.well-known/jwks.json", **BROWSER)
    assert jwks.status_code == 200 and jwks.json()["keys"]
    # A REST call is not compressed (its Content-Length and bytes are the API's), even when the client asks.
    login = httpx.post(
        f"{app.url}/api/v1/auth/login",
        json={"email": "nobody@example.org", "password": "wrong password 1"},
        headers={"accept-encoding": "gzip"},
    )
    assert login.status_code == 401 and "content-encoding" not in login.headers
    # A non-GET on a client route is not the app either.
    assert httpx.post(f"{app.url}/files/abc", headers=BROWSER).status_code == 404


def test_grpc_and_grpc_web_still_work_next_to_the_app(app: Running) -> None:
    email = f"w{uuid.uuid4().hex[:8]}@example.org"
    GrpcWeb(app.url).call(
        "flowdock.auth.v1.AuthService/Register",
        auth_pb2.RegisterRequest(email=email, password="correct horse battery"),
        auth_pb2.RegisterResponse,
    )
    with native_channel(app.host_port) as channel:
        reply = Native(channel).auth.Login(
            auth_pb2.LoginRequest(email=email, password="correct horse battery"), timeout=30
        )
        assert reply.access_token
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/flowdock.nope.v1.Nope/Call")(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(GrpcWebError) as web_caught:
        GrpcWeb(app.url).call("flowdock.nope.v1.Nope/Call", auth_pb2.LoginRequest(), auth_pb2.LoginResponse)
    assert web_caught.value.status == 12


def test_without_a_build_the_api_runs_and_root_says_how_to_build(tmp_path: Path) -> None:
    running = start_up(tmp_path / "data", "sqlite", args=["--web-dir", str(tmp_path / "no-build")])
    try:
        for headers in ({}, BROWSER):
            resp = get(running, "/", **headers)
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/plain")
            assert "npm ci --prefix clients && npm --prefix clients run build" in resp.text
            assert "./dev up" in resp.text
        deep = get(running, "/files/abc", **BROWSER)
        assert "npm --prefix clients run build" in deep.text
        assert get(running, "/api/v1/no-such-thing", **BROWSER).json()["code"] == 5
        assert get(running, "/.well-known/jwks.json").json()["keys"]
    finally:
        code, err = stop_up(running)
    assert code == 0
    assert "no web app build in" in err and "npm --prefix clients run build" in err


def test_mail_links_open_the_app_that_flowdock_up_serves(app: Running) -> None:
    """Links point at <public url>/verify-email and /reset-password, and the default public URL is this run's."""
    email = f"m{uuid.uuid4().hex[:8]}@example.org"
    assert httpx.post(f"{app.url}/api/v1/auth/register", json={"email": email, "password": "correct horse battery"})
    assert httpx.post(f"{app.url}/api/v1/auth/password-recovery", json={"email": email}).status_code == 200
    links: list[str] = []
    deadline = time.monotonic() + 20
    while len(links) < 2 and time.monotonic() < deadline:
        links = []
        for path in sorted((app.data_dir / "outbox").glob("*.eml")):
            message = email_lib.message_from_bytes(path.read_bytes())
            if message["To"] == email:
                body = message.get_payload(decode=True)
                assert isinstance(body, bytes)
                links += re.findall(r"https?://\S+\?token=[\w-]+", body.decode())
        time.sleep(0.2)
    assert sorted(link.split("?")[0] for link in links) == [f"{app.url}/reset-password", f"{app.url}/verify-email"]
    # The link opens the app (a browser navigation), which then posts the token to the API.
    page = get(app, links[0].removeprefix(app.url), **BROWSER)
    assert page.status_code == 200 and page.text == INDEX


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_a_real_browser_keeps_the_refresh_token_where_script_cannot_read_it(app: Running, tmp_path: Path) -> None:
    """Chromium, on the app's origin and under its CSP, logs in over grpc-web in cookie mode, refreshes twice (the
    second works only if the browser stored the rotated cookie and sent it), logs out, and a refresh then fails;
    neither document.cookie nor the response headers nor web storage ever show the token."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("FLOWDOCK_REQUIRE_SERVERS") == "1":
            pytest.fail("chromium is required (apt-get install chromium)")
        pytest.skip("no chromium on this machine")
    email = f"b{uuid.uuid4().hex[:8]}@example.org"
    r = httpx.post(f"{app.url}/api/v1/auth/register", json={"email": email, "password": "correct horse battery"})
    assert r.status_code == 200, r.text
    login = auth_pb2.LoginRequest(email=email, password="correct horse battery", device_name="chromium")
    fragment = base64.b64encode(login.SerializeToString()).decode()
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{app.url}/cookie-check.html#{fragment}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:] + proc.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert "error" not in seen, seen

    def reply(step: str) -> tuple[str, auth_pb2.LoginResponse | None]:
        messages, trailers = _parse_frames(base64.b64decode(seen[step]["body"]))
        status = trailers.get("grpc-status", seen[step]["headerStatus"] or "0")
        return status, auth_pb2.LoginResponse.FromString(messages[0]) if messages else None

    for step in ("login", "refresh1", "refresh2"):
        status, tokens = reply(step)
        assert status == "0" and tokens is not None and tokens.access_token, (step, seen[step])
        assert tokens.refresh_token == "", step  # only in the HttpOnly cookie
        assert seen[step]["setCookieVisible"] is None, step  # fetch() never exposes Set-Cookie
    assert seen["cookieAfterLogin"] == ""  # HttpOnly: invisible to script
    assert reply("logout")[0] == "0"
    assert reply("refreshAfterLogout")[0] == "16"
    assert seen["storage"] == 0
