"""The gateway's /dav/ route to dav_svc (issue 20): checked by Envoy itself (validate) and in the built config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.envoy_config import DAV_CLUSTER, DAV_HEALTH_PATH, build_bootstrap
from gateway.runner import render, validate
from tests.gateway.test_envoy_config import jwt_decision
from tests.support.envoy import make_spec
from tests.support.mesh import free_port

pytestmark = pytest.mark.timeout(120)


def with_dav() -> Any:
    base = make_spec()
    return make_spec(upstreams={**base.upstreams, DAV_CLUSTER: [("127.0.0.1", free_port())]})


def routes(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    found: list[dict[str, Any]] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return found


def test_dav_route_and_cluster_pass_envoy_validate(tmp_path: Path) -> None:
    validate(render(with_dav(), tmp_path / "envoy.json"))


def test_dav_requests_reach_dav_svc_streamed_without_a_deadline() -> None:
    bootstrap = build_bootstrap(with_dav())
    dav = [r for r in routes(bootstrap) if r.get("route", {}).get("cluster") == DAV_CLUSTER]
    assert {r["name"] for r in dav} == {"dav", "dav_tree"}
    for route in dav:
        assert route["route"]["timeout"] in ("0s", "0.000s")
        disabled = route["typed_per_filter_config"]
        assert "envoy.filters.http.grpc_json_transcoder" in disabled
        assert "envoy.filters.http.lua.unknown_fields" in disabled
    names = [r["name"] for r in routes(bootstrap)]
    # Before the CORS preflight route and the catch-alls, so OPTIONS and PROPFIND on /dav/ reach the service.
    assert names.index("dav_tree") < names.index("cors_preflight")
    # jwt_authn: /dav/ without a Bearer token goes through (dav_svc checks Basic itself).
    requires = jwt_decision(bootstrap, "PROPFIND", "/dav/a/b")
    assert requires is not None and "requires_any" in requires
    cluster = next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == DAV_CLUSTER)
    check = cluster["health_checks"][0]["http_health_check"]
    assert check["path"] == DAV_HEALTH_PATH
    assert "typed_extension_protocol_options" not in cluster  # HTTP/1.1, not h2c


def test_without_a_dav_upstream_there_is_no_dav_route() -> None:
    bootstrap = build_bootstrap(make_spec())
    assert not [r for r in routes(bootstrap) if re.match(r"dav", r["name"])]
