"""The TypeScript SDK (clients/ts) against the real system: grpc-web through the real Envoy of `flowdock up`.

Runs the SDK's opt-in live spec (clients/ts/src/live.test.ts) with Node: register, cookie-session login, inline,
0-byte, chunked and resumed uploads, downloads by URL, error kinds, restore after a reload, one shared refresh
against the server's rotation, logout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clamd import EICAR, EICAR_SIGNATURE, ClamdServer, clamd_server  # noqa: F401 (fixture)
from tests.support.mesh import REQUIRE_SERVERS, Running, start_up, stop_up

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "ts"
VITEST = ROOT / "clients" / "node_modules" / ".bin" / "vitest"


def need_node() -> None:
    problem = ""
    if shutil.which("node") is None:
        problem = "node is not installed"
    elif not VITEST.exists():
        problem = "clients/node_modules missing: run `npm ci --prefix clients`"
    if problem:
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(problem)


QUOTA_BYTES = 4 * 1024 * 1024


def run_spec(spec: str, env: dict[str, str], at_least: int) -> None:
    need_node()
    result = subprocess.run(
        [str(VITEST), "run", spec, "--reporter=verbose", "--no-color"],
        cwd=SDK,
        env={**os.environ, **env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The specs skip themselves without their environment: make sure every case ran.
    passed = re.search(r"Tests\s+(\d+) passed \((\d+)\)", output)
    assert passed is not None, output
    assert passed.group(1) == passed.group(2) and int(passed.group(1)) >= at_least, output
    assert "skipped" not in output, output


def test_sdk_speaks_grpc_web_through_envoy(mesh: Running) -> None:
    run_spec("src/live.test.ts", {"FLOWDOCK_URL": mesh.url}, 9)


@pytest.fixture(scope="module")
def scanning(tmp_path_factory: pytest.TempPathFactory, clamd_server: ClamdServer) -> Iterator[Running]:  # noqa: F811
    """A system that scans with the harness's clamd, has a small default quota and locks an account after 3 failed
    logins (SQLite: the mapping under test does not depend on the database)."""
    env = {
        "FLOWDOCK_STORAGE_CLAMD_ADDRESS": clamd_server.address,
        "FLOWDOCK_STORAGE_CLAMD_STREAM_MAX_BYTES": str(clamd_server.stream_max_bytes),
        "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(QUOTA_BYTES),
        "FLOWDOCK_AUTH_RATE_LOGIN_PER_ACCOUNT": "3",
    }
    running = start_up(tmp_path_factory.mktemp("sdk-scan"), "sqlite", extra_env=env)
    try:
        yield running
    finally:
        code, err = stop_up(running)
        assert code == 0, err


def test_sdk_maps_infected_quota_and_rate_limit_refusals(scanning: Running) -> None:
    env = {
        "FLOWDOCK_URL": scanning.url,
        "FLOWDOCK_EICAR_HEX": EICAR.hex(),
        "FLOWDOCK_EICAR_SIGNATURE": EICAR_SIGNATURE,
        "FLOWDOCK_QUOTA_BYTES": str(QUOTA_BYTES),
    }
    run_spec("src/live-scan.test.ts", env, 5)
