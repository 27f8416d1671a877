"""bench/paths_bench.py (issue 15's benchmark) at tiny sizes: it starts its own `flowdock up --no-scan`, nginx and
copyparty, runs every section, and prints every row of issue 15's Targets table with its target and verdict.

A smoke test only, so the harness cannot rot: it asserts the run completes (each upload's SHA-256 and size, each
listing's entry count are checked by the bench itself) and that every row carries a number. It never asserts a
timing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mesh import REQUIRE_SERVERS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)

# row id -> its target ("" for a reference row): every row of issue 15's Targets table, and the references beside them
EXPECTED = {
    "up_ceiling": "",
    "up_copyparty": "",
    "up_nginx": "",
    "up_rest": ">= 0.5x ceiling, >= 1.0x copyparty",
    "up_rest16": "",
    "up_grpcweb": ">= 0.5x ceiling",
    "up_native": ">= 0.6x ceiling",
    "finish": "<= 0.1 s per GiB",
    "small_single": "p50 <= 1.5, p95 <= 3 ms",
    "small_floor_plain": "",
    "small_floor_enc": "",
    "small_three": "",
    "small_copyparty": "",
    "small_nginx": "",
    "small_conc": ">= 1,000 files/s",
    "list_rest": "p50 <= copyparty, <= 200 B/entry",
    "list_rest_compact": "p50 <= copyparty, <= 200 B/entry",
    "list_grpcweb": "p50 <= 3 ms",
    "list_copyparty": "",
    "list_nginx": "",
    "down_nginx": "",
    "down_copyparty": "",
    "down_rest": ">= 0.6x nginx, >= 0.8x copyparty",
    "conc_single": "",
    "conc_all": ">= 1.0x, 0 errors",
    "storm_calm": "",
    "storm": "p99 <= 2x",
    "rss": "growth <= 32 MiB",
}


def test_paths_bench_prints_every_row_of_issue_15_at_tiny_sizes(tmp_path: Path) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        if REQUIRE_SERVERS:
            pytest.fail("nginx is missing: apt-get install -y nginx (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip("nginx is missing: apt-get install -y nginx")
    out = tmp_path / "paths.json"
    argv = [
        sys.executable,
        str(ROOT / "bench" / "paths_bench.py"),
        "--quick",
        "--dir",
        str(tmp_path),
        "--out",
        str(out),
    ]
    argv += ["--mb", "4", "--rss-mb", "8", "--small", "5", "--warmup", "2", "--clients", "4", "--conc-files", "24"]
    argv += ["--entries", "20", "--list-rounds", "3", "--conc-uploads", "4", "--conc-mb", "1"]
    argv += ["--storm-seconds", "1", "--storm-users", "3", "--storm-rate", "3", "--storm-entries", "5"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=280, cwd=ROOT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    # The environment says how the system and its peers ran.
    for line in ("virus scanning: OFF", "copyparty: 1.", "nginx: nginx/", "flowdock up processes: ", "load average"):
        assert line in result.stdout, (line, output)
    report = json.loads(out.read_text())
    assert report["errors"] == {}, output
    rows = {r["id"]: r for r in report["table"]}
    assert list(rows) == list(EXPECTED), output  # every row, in the table's order, and no other
    for key, target in EXPECTED.items():
        r = rows[key]
        assert r["measurement"] in result.stdout, key
        assert re.search(r"\d", r["value"]), r
        assert not r["value"].startswith("FAILED"), r
        assert r["target"] == target, r
        assert r["verdict"] in (("PASS", "MISS") if target else ("",)), r
    # CPU per process from /proc for each side: the mesh, Envoy, both peers, this client, the rest of the machine.
    for key in ("up_rest", "up_copyparty", "down_rest", "small_single", "list_rest"):
        assert {"storage", "envoy", "mesh", "nginx", "copyparty", "client", "other"} <= set(report["cpu"][key][0]), key
    # Everything the bench made is gone: its temp dir under --dir was removed.
    assert [p.name for p in tmp_path.iterdir()] == ["paths.json"], (list(tmp_path.iterdir()), output)
