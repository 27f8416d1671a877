"""The WebDAV suites' mesh: `flowdock up` (dav_svc behind Envoy under /dav/) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import BACKENDS, Running, mesh_fixture

MiB = 1024 * 1024

DAV_ENV = {
    "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(64 * MiB),
    # litmus and rclone runs outlast the default five minutes of an access token.
    "FLOWDOCK_AUTH_ACCESS_TOKEN_TTL_SECONDS": "3600",
}


@pytest.fixture(scope="module", params=BACKENDS)
def dav_mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from mesh_fixture(request, tmp_path_factory, "dav", env=DAV_ENV, db_prefix="fddav")
