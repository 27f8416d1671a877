"""The whole system on the S3 backend (storage_blob_backend = s3) against a real OpenStack Swift, through `flowdock
up` with two storage replicas: uploads by REST chunks and the native stream, ranged downloads byte-exact, an
upload whose replica is killed with SIGKILL finished on the other, delete and trash purge removing the objects,
fsck clean, keys rotated with every file still readable."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from flowdock.auth.v1 import auth_pb2
from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import Native, native_channel
from tests.e2e.test_replicas import wait_health
from tests.support.mesh import Running, flowdock_up
from tests.support.storage_client import Client

if TYPE_CHECKING:
    from tests.support.swift import SwiftCluster

pytest_plugins = ["tests.support.swift"]

MiB = 1024 * 1024
PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["sqlite", "postgres"])
def s3mesh(request: pytest.FixtureRequest, swift: SwiftCluster, tmp_path: Path) -> Iterator[tuple[Running, str]]:
    bucket = swift.new_bucket()
    env = {**swift.s3_env(bucket), "FLOWDOCK_STORAGE_UPLOAD_CHUNK_BYTES": str(MiB)}
    with flowdock_up(
        tmp_path / "data", request.param, env=env, args=["--replicas", "storage=2"], db_prefix="fds3"
    ) as running:
        yield running, bucket


def flowdock(mesh: Running, bucket: str, swift: SwiftCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **swift.s3_env(bucket), "FLOWDOCK_STORAGE_VIRUS_SCAN": "off"}
    argv = [sys.executable, "-m", "flowdock_runtime", *args, "--data-dir", str(mesh.data_dir)]
    if mesh.db_url:
        argv += ["--db", mesh.db_url]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def rest_upload(c: Client, name: str, data: bytes, chunk: int = MiB) -> dict[str, object]:
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": name, "size": len(data)})
    for off in range(0, len(data), chunk):
        r = c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": off}, content=data[off : off + chunk])
        assert int(r["committedSize"]) == min(off + chunk, len(data))
    return c.finish(up["uploadId"])


def test_s3_backend_end_to_end(s3mesh: tuple[Running, str], swift: SwiftCluster) -> None:
    mesh, bucket = s3mesh
    c = Client(mesh)
    data = os.urandom(3 * MiB + 4097)
    done = rest_upload(c, "rest.bin", data)
    node = done["node"]
    assert isinstance(node, dict) and node["sha256"] == hashlib.sha256(data).hexdigest()
    assert c.content(str(node["id"])) == data
    for a, b in ((0, 1), (65535, 65537 + 70000), (MiB - 3, 2 * MiB + 5), (len(data) - 10, len(data))):
        assert c.content(str(node["id"]), offset=a, length=b - a) == data[a:b]
    assert [n for n in swift.objects(bucket, "blobs/")], "the blob is in the bucket"
    assert not [n for n in swift.objects(bucket) if n.startswith("uploads/")], "nothing staged is left"

    # The native stream, and its download by ranges.
    native = Native(native_channel(mesh.host_port))
    email = f"s{uuid.uuid4().hex[:10]}@example.org"
    native.auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="S"))
    md = [
        (
            "authorization",
            f"Bearer {native.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD)).access_token}",
        )
    ]
    big = os.urandom(9 * MiB + 77)
    upload = native.storage.CreateUpload(
        S.CreateUploadRequest(parent_id="root", name="n.bin", size=len(big), sha256=hashlib.sha256(big).hexdigest()),
        metadata=md,
    )
    step = int(upload.stream_chunk_size)

    def chunks():  # type: ignore[no-untyped-def]
        for off in range(0, len(big), step):
            yield S.UploadStreamRequest(upload_id=upload.upload_id, offset=off, data=big[off : off + step])

    acks = [a.committed_size for a in native.storage.UploadStream(chunks(), metadata=md)]
    assert acks[-1] == len(big)
    finished = native.storage.FinishUpload(S.FinishUploadRequest(upload_id=upload.upload_id), metadata=md)
    deadline = time.monotonic() + 60
    while finished.state == S.UPLOAD_STATE_FINISHING and time.monotonic() < deadline:
        time.sleep(0.05)
        finished = native.storage.GetUpload(S.GetUploadRequest(upload_id=upload.upload_id), metadata=md)
    assert finished.state == S.UPLOAD_STATE_COMPLETED, finished.failure
    fid = finished.node.id
    got = b"".join(m.data for m in native.storage.DownloadFile(S.DownloadFileRequest(file_id=fid), metadata=md))
    assert got == big
    for off, n in ((0, 10), (5 * MiB - 1, 3 * MiB), (len(big) - 1, 1)):
        part = b"".join(
            m.data
            for m in native.storage.DownloadFile(S.DownloadFileRequest(file_id=fid, offset=off, length=n), metadata=md)
        )
        assert part == big[off : off + n]

    # fsck is clean; keys rotate and every file stays readable.
    checked = flowdock(mesh, bucket, swift, "fsck", "--deep")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "consistent" in checked.stdout
    rotated = flowdock(mesh, bucket, swift, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "re-wrapped 2 data keys" in rotated.stdout, rotated.stdout
    status = flowdock(mesh, bucket, swift, "keys", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    doctor = flowdock(mesh, bucket, swift, "doctor")
    line = next(x for x in doctor.stdout.splitlines() if "object store writable" in x)
    assert bucket in line and "testing" not in doctor.stdout + doctor.stderr, doctor.stdout  # the secret never shows
    assert c.content(str(node["id"])) == data
    assert b"".join(m.data for m in native.storage.DownloadFile(S.DownloadFileRequest(file_id=fid), metadata=md)) == big

    # Delete and purge the trash: the objects go.
    c.ok("DELETE", f"/api/v1/nodes/{node['id']}")
    c.ok("DELETE", f"/api/v1/trash/{node['id']}")
    assert len(swift.objects(bucket, "blobs/")) == 1  # the native upload's blob only
    assert not [n for n in swift.objects(bucket) if n.startswith("uploads/")]
    checked = flowdock(mesh, bucket, swift, "fsck")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_upload_of_a_killed_replica_finishes_on_the_other(s3mesh: tuple[Running, str], swift: SwiftCluster) -> None:
    """Replica A takes the first half and is killed with SIGKILL; replica B (A stopped, so Envoy routes there)
    takes the rest and finishes: SHA-256 right, download byte-exact."""
    mesh, _ = s3mesh
    c = Client(mesh)
    h = c.http.headers
    data = os.urandom(2 * MiB + 11)
    half = MiB + 5
    ports = {n: json.loads((mesh.data_dir / "run" / f"{n}.json").read_text()) for n in ("storage", "storage-1")}
    os.kill(ports["storage-1"]["pid"], signal.SIGSTOP)
    try:
        wait_health(mesh, ports["storage-1"]["grpc_port"], healthy=False)  # an upload now lands on replica A
        up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "moved.bin", "size": len(data)})
        r = httpx.put(
            f"{mesh.url}/api/v1/uploads/{up['uploadId']}?offset=0", headers=h, content=data[:half], timeout=30
        )
        assert int(r.json()["committedSize"]) == half
    finally:
        os.kill(ports["storage-1"]["pid"], signal.SIGCONT)
    wait_health(mesh, ports["storage-1"]["grpc_port"], healthy=True)
    os.kill(ports["storage"]["pid"], signal.SIGKILL)  # replica A dies; B has never seen the upload
    deadline = time.monotonic() + 30
    while True:
        r = httpx.put(
            f"{mesh.url}/api/v1/uploads/{up['uploadId']}?offset={half}", headers=h, content=data[half:], timeout=30
        )
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, r.text
    assert int(r.json()["committedSize"]) == len(data)
    node = c.finish(str(up["uploadId"]))["node"]
    assert isinstance(node, dict) and node["sha256"] == hashlib.sha256(data).hexdigest()
    assert c.content(str(node["id"])) == data
