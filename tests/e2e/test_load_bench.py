"""bench/load_bench.py (issue 18 item 7) at a tiny size, so the harness cannot rot: it starts its own
`flowdock up --no-scan`, runs uploaders (native and REST) and listers (REST and grpc-web) at once for a few seconds
in its soak mode (RSS of every process sampled, growth judged against the bound), and prints every row with a
number and, where there is a target, a verdict. It never asserts a timing; it asserts the run completed without a
single error (the bench checks every upload's SHA-256 and size and every listing's entry count itself)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)

PROCESSES = ("storage", "auth", "share", "envoy", "flowdock_up")


def test_load_bench_runs_every_client_kind_and_samples_every_process(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    argv = [sys.executable, str(ROOT / "bench" / "load_bench.py"), "--dir", str(tmp_path), "--out", str(out)]
    argv += ["--soak", "6", "--uploaders", "2", "--upload-mb", "1", "--listers", "4", "--list-users", "2"]
    argv += ["--entries", "5", "--sample-seconds", "0.5", "--token-seconds", "2"]  # clients log in again meanwhile
    result = subprocess.run(argv, capture_output=True, text=True, timeout=280, cwd=ROOT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    expected = ("virus scanning: OFF", "flowdock up processes: ", "load average at start of the load", "mode: soak 6 s")
    for line in expected:
        assert line in result.stdout, (line, output)
    report = json.loads(out.read_text())
    rows = {r["id"]: r for r in report["table"]}
    for key in ("upload_native", "upload_rest", "list_rest", "list_grpcweb", "errors"):
        assert rows[key]["verdict"] == "PASS", (rows[key], output)
        assert re.search(r"\d", rows[key]["value"]), rows[key]
    assert report["raw"]["errors"] == {}, output
    for key in ("upload_rate", "list_rate", "rate_limited", "cpu"):
        assert re.search(r"\d", rows[key]["value"]), rows[key]
    assert {"storage", "envoy", "mesh", "client", "other"} <= set(report["raw"]["cpu"]), report["raw"]["cpu"]
    # Every process's RSS sampled, with a growth figure and a verdict against the stated bound.
    for name in PROCESSES:
        r = rows[f"rss_{name}"]
        assert re.search(r"[+-]\d+\.\d MiB", r["value"]) and r["target"] == "<= 64 MiB", r
        assert r["verdict"] in ("PASS", "MISS"), r
    assert report["raw"]["rss_samples"] >= 4
    assert report["raw"]["logins"] >= 4  # the accounts logged in again (from their own addresses), no error
    # Everything the bench made is gone: its temp dir under --dir was removed.
    assert [p.name for p in tmp_path.iterdir()] == ["load.json"], (list(tmp_path.iterdir()), output)
