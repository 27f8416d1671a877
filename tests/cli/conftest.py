"""One `flowdock up` (SQLite) per test module of the CLI/SDK suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import SCAN_OFF, Running, flowdock_up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # Scanning off: 256 MiB is beyond clamd's stream limit; scanning is tested elsewhere.
    with flowdock_up(tmp_path_factory.mktemp("cli-up"), env=SCAN_OFF) as running:
        yield running
