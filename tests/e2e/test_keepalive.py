"""Quiet periods through the gateway (issue 16, item 2): with 1 s keepalive everywhere (the default is 30 s), calls
that cross services after several quiet periods still work, and no service is sent away with too_many_pings."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.mesh import Running, mesh_fixture
from tests.support.storage_client import Client


@pytest.fixture(scope="module", params=["sqlite"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from mesh_fixture(
        request, tmp_path_factory, "keepalive", env={"FLOWDOCK_KEEPALIVE_SECONDS": "1"}, db_prefix="fdst"
    )


def test_calls_across_services_after_quiet_periods(mesh: Running) -> None:
    c = Client(mesh)
    folder = c.folder("Shared")
    link = {"node_id": folder, "permission": "LINK_PERMISSION_VIEW"}
    c.ok("POST", "/api/v1/links", json=link)  # share_svc -> storage_svc (GetNode), storage_svc -> share_svc
    for _ in range(3):
        time.sleep(4)  # four keepalive periods with no call on any internal channel
        c.ok("POST", "/api/v1/links", json=link)
        c.ok("DELETE", f"/api/v1/nodes/{c.folder(f'gone {time.monotonic()}')}")  # storage_svc -> share_svc
    for name in ("auth", "storage", "share", "gateway"):
        assert "too_many_pings" not in mesh.log(name), name
