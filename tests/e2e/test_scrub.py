"""The scrub through the real stack (issue 18 item 8): two storage replicas sharing one lease, the encrypted blob
store, the database's position, Prometheus counters, the audit trail and the log. A clean store scrubs without a
finding; a flipped byte in a stored blob is found by the background scrub (metric, the owner's activity, a DATA_LOSS
line with the blob and file ids) and by `flowdock scrub --all`. The scrub is made to run a pass every round here
(share per day 86,400: the whole store each second); pacing and the share per day are tested with fakes
(tests/unit/test_scrub_usecases.py)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e.test_faults import flip, flowdock, newest_blob
from tests.support.mesh import BACKENDS, Running, mesh_fixture
from tests.support.storage_client import Client

MiB = 1024 * 1024
REPLICAS = ("storage", "storage-1")
T = TypeVar("T")


@pytest.fixture(scope="module", params=BACKENDS)
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    env = {"FLOWDOCK_STORAGE_SCRUB_FRACTION_PER_DAY": "86400", "FLOWDOCK_STORAGE_SCRUB_SECONDS": "0.5"}
    yield from mesh_fixture(request, tmp_path_factory, "scrub", env=env, args=["--replicas", "storage=2"])


def scrub_metrics(mesh: Running) -> dict[str, float]:
    """flowdock_scrub_* summed over the storage replicas."""
    totals: dict[str, float] = {}
    for name in REPLICAS:
        port = json.loads((mesh.data_dir / "run" / f"{name}.json").read_text())["metrics_port"]
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
            if line.startswith("flowdock_scrub_") and not line.startswith("#"):
                key = line.split("{")[0].split(" ")[0]
                totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def storage_log_lines(mesh: Running) -> list[dict[str, Any]]:
    lines = []
    for name in REPLICAS:
        for text in mesh.log(name).splitlines():
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except ValueError:  # the line being written right now
                    continue
    return lines


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.25)


def test_a_clean_store_is_scrubbed_without_a_finding(mesh: Running) -> None:
    c = Client(mesh)
    big = os.urandom(3 * MiB)
    ids = [str(c.upload(f"clean-{i}.bin", data)["node"]["id"]) for i, data in enumerate([big, b"small\n"])]
    stored = sum(p.stat().st_size for p in (mesh.data_dir / "storage" / "blobs").glob("*/*/*"))

    def scrubbed() -> dict[str, float] | None:
        m = scrub_metrics(mesh)
        done = m.get("flowdock_scrub_bytes_verified_total", 0) >= stored
        passes = [r for r in storage_log_lines(mesh) if r["msg"] == "scrub pass complete"]
        return m if done and passes else None

    metrics = eventually("a scrub pass over the uploaded blobs", scrubbed)
    assert metrics["flowdock_scrub_blobs_verified_total"] >= 2
    assert metrics["flowdock_scrub_damaged_blobs_total"] == 0
    assert not [r for r in storage_log_lines(mesh) if r["msg"].startswith("DATA_LOSS")]
    events = c.ok("GET", "/api/v1/me/activity", params={"page_size": 100})["events"]
    assert not [e for e in events if e["kind"] == "storage.damaged"]
    assert [c.content(i) for i in ids] == [big, b"small\n"]  # the scrub changed nothing
    # The last complete pass is sampled from the database (every 10 s), whichever replica made it.
    eventually(
        "the last-pass gauge", lambda: scrub_metrics(mesh).get("flowdock_scrub_last_pass_timestamp_seconds", 0) > 0
    )


def test_a_flipped_byte_is_found_counted_logged_and_told_to_the_owner(mesh: Running) -> None:
    c = Client(mesh)
    name = f"damaged-{uuid.uuid4().hex[:6]}.bin"
    fid = str(c.upload(name, os.urandom(3 * MiB))["node"]["id"])
    blob = newest_blob(mesh)
    flip(blob, 24)  # a middle segment

    eventually("the damage counted", lambda: scrub_metrics(mesh)["flowdock_scrub_damaged_blobs_total"] >= 1)
    line = eventually(
        "a DATA_LOSS line for the blob",
        lambda: next(
            (r for r in storage_log_lines(mesh) if r["msg"].startswith("DATA_LOSS") and r.get("blob_id") == blob.name),
            None,
        ),
    )
    assert line["code"] == "DATA_LOSS" and line["file_id"] == fid and line["level"] == "error"

    def told() -> list[dict[str, Any]]:
        events = c.ok("GET", "/api/v1/me/activity", params={"page_size": 100})["events"]
        return [e for e in events if e["kind"] == "storage.damaged"]

    event = eventually("the owner's activity shows the damage", told)[0]
    assert event["details"]["node_id"] == fid and event["details"]["name"] == name
    assert event["details"]["blob_id"] == blob.name and event["details"]["found_by"] == "scrub"

    # `flowdock scrub --all`: the same finding, now, with exit code 1.
    run = flowdock(mesh, "scrub", "--all", "--no-progress")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "damaged: 1" in run.stdout and fid in run.stdout and blob.name in run.stdout
    assert "pass complete" in run.stdout

    # Once the file is gone for good, nothing more is found.
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    c.ok("DELETE", f"/api/v1/trash/{fid}")
    clean = flowdock(mesh, "scrub", "--all", "--no-progress")
    assert clean.returncode == 0 and "damaged: 0" in clean.stdout, clean.stdout + clean.stderr
