"""What users trust storage with: virus scanning before anything is visible, encryption at rest, fsck, KEK rotation."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import Native, native_channel
from tests.support.clamd import EICAR, EICAR_SIGNATURE, ClamdServer, clamd, clamd_server  # noqa: F401 (fixtures)
from tests.support.mesh import Running, mesh_fixture
from tests.support.storage_client import Client

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def scanned(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    clamd_server: ClamdServer,  # noqa: F811
) -> Iterator[Running]:
    env = {
        "FLOWDOCK_STORAGE_CLAMD_ADDRESS": clamd_server.address,
        "FLOWDOCK_STORAGE_CLAMD_STREAM_MAX_BYTES": str(clamd_server.stream_max_bytes),
        "FLOWDOCK_STORAGE_INLINE_FINISH_BYTES": str(MiB),
    }
    yield from mesh_fixture(request, tmp_path_factory, "scanned", env=env, db_prefix="fdst")


def put(c: Client, name: str, data: bytes) -> dict[str, object]:
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": name, "size": len(data)})
    if data:
        c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=data)
    return c.finish(up["uploadId"])


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, data)
    return buf.getvalue()


def test_infected_uploads_are_refused_with_the_signature(scanned: Running, clamd: ClamdServer) -> None:  # noqa: F811
    c = Client(scanned)
    assert put(c, "clean.txt", b"just text\n")["state"] == "UPLOAD_STATE_COMPLETED"
    padded = zipped("inner/eicar.com", EICAR) + os.urandom(2 * MiB)  # over the inline limit: finished in background
    for name, data in [("eicar.com", EICAR), ("eicar.zip", zipped("eicar.com", EICAR)), ("big.zip", padded)]:
        before = c.quota()
        done = put(c, name, data)
        assert done["state"] == "UPLOAD_STATE_FAILED", name
        assert f"virus found: {EICAR_SIGNATURE}" in str(done["failure"])
        assert name not in c.children()
        assert c.quota()["reservedBytes"] == before["reservedBytes"] - 0  # released again
        assert not (scanned.data_dir / "storage" / "staging" / str(done["uploadId"])).exists()
    assert c.quota()["reservedBytes"] == 0
    deadline = time.monotonic() + 20
    infected: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(infected) < 3:
        events = c.ok("GET", "/api/v1/me/activity", params={"page_size": 100})["events"]
        infected = [e for e in events if e["kind"] == "storage.infected"]
        time.sleep(0.3)
    assert sorted(e["details"]["name"] for e in infected) == ["big.zip", "eicar.com", "eicar.zip"]
    assert all(e["details"]["signature"].startswith(EICAR_SIGNATURE) for e in infected)


def test_scanner_down_fails_closed_and_finishing_can_be_retried(scanned: Running, clamd: ClamdServer) -> None:  # noqa: F811
    c = Client(scanned)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "later.txt", "size": 5})
    # Two PUTs: the resumable path (a whole small file in one PUT is scanned and completed at that PUT).
    c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"he")
    c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 2}, content=b"llo")
    clamd.stop()
    try:
        r = c.http.post(f"/api/v1/uploads/{up['uploadId']}/finish", json={})
        assert r.status_code == 503
        assert r.json()["code"] == 14
        state = c.ok("GET", f"/api/v1/uploads/{up['uploadId']}")
        assert state["state"] == "UPLOAD_STATE_OPEN"
        assert "later.txt" not in c.children()
    finally:
        clamd.start()
    done = c.finish(up["uploadId"])
    assert done["state"] == "UPLOAD_STATE_COMPLETED"


def test_small_files_in_one_call_are_scanned_before_anything_is_written(
    scanned: Running,
    clamd: ClamdServer,  # noqa: F811
) -> None:
    c = Client(scanned)

    def inline(name: str, data: bytes) -> httpx.Response:
        body = {"parent_id": "root", "name": name, "size": len(data), "content": base64.b64encode(data).decode()}
        return c.http.post("/api/v1/uploads", json=body)

    assert inline("fine.txt", b"fine").json()["state"] == "UPLOAD_STATE_COMPLETED"
    done = inline("eicar.txt", EICAR).json()
    assert done["state"] == "UPLOAD_STATE_FAILED"
    assert f"virus found: {EICAR_SIGNATURE}" in done["failure"]
    assert c.children() == ["fine.txt"]
    clamd.stop()
    try:
        r = inline("while-down.txt", b"hello")
        assert r.status_code == 503 and r.json()["code"] == 14  # fail closed, retryable
    finally:
        clamd.start()
    assert c.children() == ["fine.txt"]
    q = c.quota()
    assert q["usedBytes"] == 4 and q["reservedBytes"] == 0
    assert inline("while-down.txt", b"hello").json()["state"] == "UPLOAD_STATE_COMPLETED"
    deadline = time.monotonic() + 20
    infected: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not infected:
        events = c.ok("GET", "/api/v1/me/activity", params={"page_size": 100})["events"]
        infected = [e for e in events if e["kind"] == "storage.infected"]
        time.sleep(0.3)
    assert [e["details"]["name"] for e in infected] == ["eicar.txt"]


def test_files_over_the_scanner_limit_are_refused_by_default(scanned: Running, clamd: ClamdServer) -> None:  # noqa: F811
    c = Client(scanned)
    done = put(c, "huge.bin", os.urandom(clamd.stream_max_bytes + 1))
    assert done["state"] == "UPLOAD_STATE_FAILED"
    assert "scanner's limit" in str(done["failure"])


def flowdock(mesh: Running, *args: str) -> subprocess.CompletedProcess[str]:
    db = ["--db", mesh.db_url] if mesh.db_url else []
    return subprocess.run(
        [sys.executable, "-m", "flowdock_runtime", *args, "--data-dir", str(mesh.data_dir), *db],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLOWDOCK_STORAGE_VIRUS_SCAN": "off"},
    )


def blob_path(mesh: Running, content_marker: bytes) -> Path:
    """The one blob written after `content_marker` was uploaded (newest file under blobs/)."""
    blobs = sorted((mesh.data_dir / "storage" / "blobs").glob("*/*/*"), key=lambda p: p.stat().st_mtime)
    return blobs[-1]


def test_bytes_at_rest_are_encrypted_and_tampering_is_data_loss(scanned: Running, clamd: ClamdServer) -> None:  # noqa: F811
    c = Client(scanned)
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode() * 2000
    fid = put(c, "secret.txt", marker)["node"]["id"]  # type: ignore[index]
    for path in scanned.data_dir.rglob("*"):
        if path.is_file():
            assert marker[:40] not in path.read_bytes(), path
    assert c.content(str(fid)) == marker
    assert flowdock(scanned, "fsck", "--deep").returncode == 0
    blob = blob_path(scanned, marker)
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))
    r = c.http.get(f"/api/v1/files/{fid}/content")
    assert r.status_code == 500
    assert r.json()["code"] == 15  # DATA_LOSS
    assert b"PLAINTEXT-MARKER" not in r.content
    native = Native(native_channel(scanned.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        b"".join(
            m.data
            for m in native.storage.DownloadFile(
                S.DownloadFileRequest(file_id=str(fid)), metadata=[("authorization", f"Bearer {c.token}")]
            )
        )
    assert exc.value.code() == grpc.StatusCode.DATA_LOSS
    report = flowdock(scanned, "fsck", "--deep")
    assert report.returncode == 1
    assert "damaged blobs: 1" in report.stdout
    blob.unlink()
    report = flowdock(scanned, "fsck")
    assert "rows without a blob: 1" in report.stdout
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    c.ok("DELETE", f"/api/v1/trash/{fid}")


def test_kek_rotation_rewraps_without_losing_files(scanned: Running, clamd: ClamdServer) -> None:  # noqa: F811
    c = Client(scanned)
    data = os.urandom(200_000)
    fid = put(c, "keep.bin", data)["node"]["id"]  # type: ignore[index]
    before = flowdock(scanned, "keys", "status")
    assert before.returncode == 0, before.stderr
    rotated = flowdock(scanned, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    after = flowdock(scanned, "keys", "status")
    assert after.stdout != before.stdout
    assert c.content(str(fid)) == data
    assert put(c, "after.bin", b"new content")["state"] == "UPLOAD_STATE_COMPLETED"
    assert flowdock(scanned, "fsck", "--deep").returncode == 0
