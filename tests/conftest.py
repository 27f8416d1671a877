"""The session's shared mesh: the whole system via `flowdock up`, once per database backend.

How it is started, stopped and cleaned up (and when a missing PostgreSQL skips or fails): tests/support/mesh.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import BACKENDS, Running, mesh_fixture


@pytest.fixture(scope="session", params=BACKENDS)
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The whole system via `flowdock up`, once per backend for the session."""
    # 1 MiB chunk advice for unary calls and PUTs (the default is 16 MiB): the suites' uploads of a few MiB then
    # still cross chunk boundaries, resume between chunks and report progress per chunk. The default is what the
    # browser suite (clients/web/e2e), tests/unit/test_upload_chunk_advice.py and the benches run with.
    yield from mesh_fixture(request, tmp_path_factory, "up", env={"FLOWDOCK_STORAGE_UPLOAD_CHUNK_BYTES": str(1 << 20)})
