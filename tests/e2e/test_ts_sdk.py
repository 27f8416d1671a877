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
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVERS, Running

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


def test_sdk_speaks_grpc_web_through_envoy(mesh: Running) -> None:
    need_node()
    result = subprocess.run(
        [str(VITEST), "run", "src/live.test.ts", "--reporter=verbose", "--no-color"],
        cwd=SDK,
        env={**os.environ, "FLOWDOCK_URL": mesh.url, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The spec skips itself without FLOWDOCK_URL: make sure it ran, every case.
    passed = re.search(r"Tests\s+(\d+) passed \((\d+)\)", output)
    assert passed is not None, output
    assert passed.group(1) == passed.group(2) and int(passed.group(1)) >= 9, output
    assert "skipped" not in output, output
