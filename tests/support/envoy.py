"""Gateway specs for tests that build or run Envoy without the services (free ports as upstreams)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.envoy_config import GatewaySpec
from tests.support.mesh import free_port

DESCRIPTOR = Path(__file__).resolve().parents[2] / "gen" / "python" / "flowdock" / "descriptor.binpb"


def make_spec(**overrides: Any) -> GatewaySpec:
    options: dict[str, Any] = {
        "port": free_port(),
        "admin_port": free_port(),
        "descriptor_path": DESCRIPTOR,
        "upstreams": {
            "auth": [("127.0.0.1", free_port())],
            "storage": [("127.0.0.1", free_port()), ("127.0.0.1", free_port())],
            "share": [("127.0.0.1", free_port())],
        },
    }
    options.update(overrides)
    return GatewaySpec(**options)
