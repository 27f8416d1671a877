"""bench/load_bench.py (issue 18 item 7) at a tiny size, so the harness cannot rot: it starts its own
`flowdock up --no-scan`, runs uploaders (native and REST) and listers (REST and grpc-web) at once for a few seconds
in its soak mode (RSS of every process sampled, growth judged against the bound), and prints every row with a
number and, where there is a target, a verdict. It never asserts a timing; it asserts the run completed without a
single error (the bench checks every upload's SHA-256 and size and every listing's entry count itself). Run on
local disk and, with `--blob-store s3`, on the Swift all-in-one the bench starts itself (skipped without Swift unless
FLOWDOCK_REQUIRE_SERVERS=1): every object of the purged uploads gone from the bucket afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.swift import need_swift

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)

PROCESSES = ("storage", "auth", "share", "envoy", "flowdock_up")


@pytest.mark.parametrize("store", ["local", "s3"])
def test_load_bench_runs_every_client_kind_and_samples_every_process(tmp_path: Path, store: str) -> None:
    if store == "s3":
        need_swift()
    out = tmp_path / "load.json"
    argv = [sys.executable, str(ROOT / "bench" / "load_bench.py"), "--dir", str(tmp_path), "--out", str(out)]
    argv += ["--blob-store", store]
    argv += ["--soak", "6", "--uploaders", "2", "--upload-mb", "1", "--listers", "4", "--list-users", "2"]
    argv += ["--entries", "5", "--sample-seconds", "0.5", "--token-seconds", "2"]  # clients log in again meanwhile
    result = subprocess.run(argv, capture_output=True, text=True, timeout=280, cwd=ROOT, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    expected = ("virus scanning: OFF", "flowdock up processes: ", "load average at start of the load", "mode: soak 6 s")
    expected += ("blob store: S3 (storage_blob_backend = s3" if store == "s3" else "blob store: local disk",)
    expected += ("services restarted by flowdock up: none",)
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
    if store == "s3":  # Swift metered and sampled (not judged), and every purged upload's objects are gone
        assert report["raw"]["cpu"]["swift"] > 0, report["raw"]["cpu"]
        r = rows["rss_swift"]
        assert re.search(r"[+-]\d+\.\d MiB", r["value"]) and r["target"] == "(not FlowDock's)" and not r["verdict"], r
        assert report["raw"]["rss"]["swift"]["peak_mib"] > 10, report["raw"]["rss"]["swift"]
        assert rows["bucket_left"]["verdict"] == "PASS" and report["raw"]["bucket_left"] == {}, rows["bucket_left"]
    else:
        assert "swift" not in report["raw"]["cpu"] and "bucket_left" not in rows
    # Every process's RSS sampled, with a growth figure and a verdict against the stated bound.
    for name in PROCESSES:
        r = rows[f"rss_{name}"]
        assert re.search(r"[+-]\d+\.\d MiB", r["value"]) and r["target"] == "<= 64 MiB", r
        assert r["verdict"] in ("PASS", "MISS"), r
    assert report["raw"]["rss_samples"] >= 4
    curve = report["raw"]["rss_curve"]  # a plateau or a slope shows: the median of each sixth of the run
    assert "RSS over the run" in result.stdout, output
    assert all(len(m) == 6 and max(x or 0 for x in m) > 0 for m in curve.values()), curve
    assert report["raw"]["logins"] >= 4  # the accounts logged in again (from their own addresses), no error
    # Everything the bench made is gone: its temp dir under --dir was removed.
    assert [p.name for p in tmp_path.iterdir()] == ["load.json"], (list(tmp_path.iterdir()), output)
