"""The gateway's TLS pieces in Envoy's bootstrap (issue 13, items 4-5), each validated by Envoy itself: mutual TLS
to every upstream (the gateway's mesh certificate, the upstream's SAN required, HTTP/2 kept by ALPN), TLS on the
public listener (h2 + http/1.1), HSTS only with it, trusted proxy hops, and a stats-only listener in front of the
admin interface. The live behaviour is tested through `flowdock up` (tests/e2e/test_mesh_identity.py,
tests/e2e/test_edge_tls.py)."""

from __future__ import annotations

import dataclasses
import http.client
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from flowdock_kernel import mesh
from gateway.envoy_config import EdgeTls, GatewaySpec, MeshFiles, build_bootstrap
from gateway.runner import envoy_command, render, validate
from tests.support.envoy import make_spec
from tests.support.mesh import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def tls_spec(tmp_path_factory: pytest.TempPathFactory) -> GatewaySpec:
    folder = tmp_path_factory.mktemp("mesh")
    mesh.ensure_mesh(folder)
    cert, key = mesh.ensure_edge_certificate(folder / "edge", ["localhost", "127.0.0.1"])
    files = mesh.MeshTls.in_folder(folder, mesh.GATEWAY)
    return make_spec(
        mesh=MeshFiles(files.ca_file, files.cert_file, files.key_file),
        edge_tls=EdgeTls(cert, key, 600),
        xff_num_trusted_hops=1,
        stats_port=free_port(),
    )


def _hcm(listener: dict[str, Any]) -> dict[str, Any]:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]


def test_tls_bootstrap_passes_envoy_validate(tls_spec: GatewaySpec, tmp_path: Path) -> None:
    validate(render(tls_spec, tmp_path / "envoy.json"))


def test_every_upstream_is_mutual_tls_to_its_own_identity(tls_spec: GatewaySpec) -> None:
    clusters = {c["name"]: c for c in build_bootstrap(tls_spec)["static_resources"]["clusters"]}
    for name in ("auth", "storage", "share"):
        socket = clusters[name]["transport_socket"]
        assert socket["name"] == "envoy.transport_sockets.tls"
        common = socket["typed_config"]["common_tls_context"]
        assert common["alpn_protocols"] == ["h2"]
        assert common["tls_certificates"][0]["certificate_chain"]["filename"].endswith("gateway.pem")
        validation = common["validation_context"]
        assert validation["trusted_ca"]["filename"].endswith("ca.pem")
        assert validation["match_typed_subject_alt_names"] == [{"san_type": "DNS", "matcher": {"exact": f"{name}_svc"}}]
        assert clusters[name]["health_checks"][0]["grpc_health_check"] is not None


def test_edge_tls_offers_h2_and_http11_and_hsts_only_with_it(tls_spec: GatewaySpec) -> None:
    listener = build_bootstrap(tls_spec)["static_resources"]["listeners"][0]
    context = listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"]
    assert context["alpn_protocols"] == ["h2", "http/1.1"]
    headers = _hcm(listener)["route_config"]["response_headers_to_add"]
    assert {"key": "strict-transport-security", "value": "max-age=600; includeSubDomains"} in [
        h["header"] for h in headers
    ]
    assert _hcm(listener)["xff_num_trusted_hops"] == 1
    plain = build_bootstrap(make_spec())["static_resources"]["listeners"][0]
    assert "transport_socket" not in plain["filter_chains"][0]
    assert "strict-transport-security" not in str(_hcm(plain)["route_config"].get("response_headers_to_add", []))
    assert _hcm(plain).get("xff_num_trusted_hops", 0) == 0


def test_client_address_header_is_always_overwritten(tls_spec: GatewaySpec) -> None:
    route_config = _hcm(build_bootstrap(tls_spec)["static_resources"]["listeners"][0])["route_config"]
    added = [h for h in route_config["request_headers_to_add"] if h["header"]["key"] == "x-flowdock-client-ip"]
    assert added == [
        {
            "header": {"key": "x-flowdock-client-ip", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]


def _get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_stats_listener_serves_prometheus_stats_and_nothing_else(tmp_path: Path) -> None:
    spec = dataclasses.replace(make_spec(), stats_port=free_port())
    proc = subprocess.Popen(
        envoy_command(render(spec, tmp_path / "envoy.json"), "error"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(spec.stats_port, "/stats/prometheus")
                break
            except OSError:
                assert time.monotonic() < deadline, "the stats listener never answered"
                time.sleep(0.1)
        assert status == 200 and b"envoy_" in body
        for path, method in (("/quitquitquit", "POST"), ("/config_dump", "GET"), ("/stats", "GET")):
            assert _get(spec.stats_port, path, method)[0] == 404, path
        assert proc.poll() is None  # /quitquitquit did not reach the admin interface
    finally:
        proc.terminate()
        proc.wait(10)
