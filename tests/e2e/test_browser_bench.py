"""bench/browser_bench.py at a small size: it starts its own `flowdock up --no-scan`, drives Debian's Chromium through
the real app and the native SDK, and prints every row of its table (issue 12's browser benchmark).

A smoke test only: it asserts the run completes (the browser download's SHA-256 and size are checked by the bench
itself) and reports each measurement with its target and verdict. It never asserts a timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mesh import REQUIRE_SERVERS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FLOWDOCK_CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.timeout(420)


def need_browser_stack() -> None:
    problems = []
    if shutil.which("node") is None:
        problems.append("node is not installed")
    if not (ROOT / "clients" / "node_modules" / "@playwright" / "test").exists():
        problems.append("clients/node_modules missing: run `npm ci --prefix clients`")
    if not (ROOT / "clients" / "web" / "dist" / "index.html").exists():
        problems.append("the web app is not built: run `npm --prefix clients run build`")
    if not Path(CHROMIUM).exists():
        problems.append(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if problems:
        if REQUIRE_SERVERS:
            pytest.fail("; ".join(problems) + " (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip("; ".join(problems))


def test_browser_bench_runs_at_a_small_size_and_prints_every_row(tmp_path: Path) -> None:
    need_browser_stack()
    out = tmp_path / "browser.json"
    argv = [sys.executable, str(ROOT / "bench" / "browser_bench.py"), "--size", "8M", "--entries", "100"]
    argv += ["--rounds", "3", "--dir", str(tmp_path), "--out", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=ROOT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    # The environment says how the system ran, and the table has each measurement of issue 12 with its target.
    assert "virus scanning: OFF: flowdock up --no-scan" in result.stdout, output
    assert "chromium: " in result.stdout, output
    assert "load average at start: " in result.stdout, output
    expected = {
        "8 MiB upload, Chromium, app's file picker": ">= 0.50x",
        "8 MiB upload, native Python SDK": "",
        "8 MiB download, Chromium, app's Download button": "",
        "8 MiB download, native Python SDK": "",
        "first render of a 100-entry folder": "p50 <= 300 ms",
        "  … its grpc-web ListChildren call": "",
        "initial JavaScript of / (": "<= 250 KB",
    }
    report = json.loads(out.read_text())
    assert report["errors"] == {}, output
    rows = report["table"]
    for start, target in expected.items():
        matching = [r for r in rows if r["measurement"].startswith(start)]
        assert len(matching) == 1, (start, output)
        r = matching[0]
        assert r["measurement"] in result.stdout, start
        assert r["value"], r
        assert not r["value"].startswith("FAILED"), r
        assert r["target"] == target, r
        assert r["verdict"] in (("PASS", "MISS") if target else ("",)), r
    # CPU from /proc for each side of the transfers, the browser's included.
    upload = next(r for r in rows if r["measurement"].startswith("8 MiB upload, Chromium"))
    restarts = report["environment"]["restarts during the run"]
    assert "browser " in upload["cpu"], (upload, restarts)
    assert "envoy " in upload["cpu"], (upload, restarts)
    assert "svc " in upload["cpu"], (upload, restarts)
    # Everything the bench made is gone: its temp dir under --dir was removed.
    assert [p.name for p in tmp_path.iterdir()] == ["browser.json"], (list(tmp_path.iterdir()), output)
