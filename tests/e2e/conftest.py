"""Fixtures shared by the end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import BACKENDS, Running, mesh_fixture

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The storage suites' mesh (test_storage, test_uploads): 3 versions kept, 64 MiB quota, finishing in the
    background above 1 MiB, download URLs valid for 2 s."""
    env = {
        "FLOWDOCK_STORAGE_INLINE_FINISH_BYTES": str(MiB),
        "FLOWDOCK_STORAGE_VERSIONS_KEPT": "3",
        "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(64 * MiB),
        "FLOWDOCK_STORAGE_DOWNLOAD_URL_SECONDS": "2",
    }
    yield from mesh_fixture(request, tmp_path_factory, "store", env=env, db_prefix="fdst")
