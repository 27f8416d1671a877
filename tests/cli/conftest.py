"""One `flowdock up` (SQLite) per test module of the CLI/SDK suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mesh import Running, start_up, stop_up

PASSWORD = "correct horse battery staple"
ENV = {"FLOWDOCK_STORAGE_VIRUS_SCAN": "off"}  # 256 MiB is beyond clamd's stream limit; scanning is tested elsewhere


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_up(tmp_path_factory.mktemp("cli-up"), "sqlite", extra_env=ENV)
    try:
        yield running
    finally:
        code, err = stop_up(running)
        assert code == 0, err
