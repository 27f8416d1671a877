"""Faults a user can meet, each ending in a clean error, nothing acknowledged lost, nothing half-visible, and recovery
without a restart (issue 18): damaged stored bytes (a flipped byte in the first or a middle segment) for REST,
grpc-web and native downloads; the data disk full (a real small tmpfs) during chunk uploads and during finish."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from flowdock.storage.v1 import storage_pb2 as S
from storage_svc.envelope import HEADER_SIZE, NONCE, stride
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import MESH_PASSWORD, register_and_login
from tests.support.mesh import BACKENDS, REQUIRE_SERVERS, Running, flowdock_up
from tests.support.storage_client import Client

MiB = 1024 * 1024
SEGMENT = 64 * 1024  # storage_segment_bytes' default: the meshes here keep it
DATA_LOSS = 15


def flowdock(mesh: Running, *args: str) -> subprocess.CompletedProcess[str]:
    """`flowdock <args>` against the mesh's data folder and database, as an operator runs it."""
    db = ["--db", mesh.db_url] if mesh.db_url else []
    return subprocess.run(
        [sys.executable, "-m", "flowdock_runtime", *args, "--data-dir", str(mesh.data_dir), *db],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FLOWDOCK_STORAGE_VIRUS_SCAN": "off"},
    )


def assert_fsck_clean(mesh: Running) -> None:
    report = flowdock(mesh, "fsck", "--deep")
    assert report.returncode == 0, report.stdout + report.stderr
    assert "consistent" in report.stdout


# ----------------------------------------------------------------------------------------- damaged content


def newest_blob(mesh: Running) -> Path:
    return max((mesh.data_dir / "storage" / "blobs").glob("*/*/*"), key=lambda p: p.stat().st_mtime_ns)


def flip(blob: Path, segment: int) -> None:
    """One bit of segment `segment`'s ciphertext flipped, as a failing disk would."""
    at = HEADER_SIZE + segment * stride(SEGMENT) + NONCE + 100
    with open(blob, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture
def damaged(mesh: Running, request: pytest.FixtureRequest) -> Iterator[tuple[Client, str, bytes, int]]:
    """A 3 MiB file (48 segments) with one segment damaged: (client, file id, content, damaged segment)."""
    segment = int(request.param)
    c = Client(mesh)
    content = os.urandom(3 * MiB)
    fid = str(c.upload(f"damaged-{uuid.uuid4().hex[:6]}.bin", content)["node"]["id"])
    assert c.content(fid) == content
    flip(newest_blob(mesh), segment)
    yield c, fid, content, segment
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    c.ok("DELETE", f"/api/v1/trash/{fid}")


def data_loss_logged(mesh: Running, fid: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        for line in mesh.log("storage").splitlines():
            if '"DATA_LOSS' in line and fid in line:
                record: dict[str, Any] = json.loads(line)
                return record
        assert time.monotonic() < deadline, f"no DATA_LOSS line for {fid} in the storage log"
        time.sleep(0.1)


@pytest.mark.parametrize("damaged", [0, 24], indirect=True, ids=["first-segment", "middle-segment"])
def test_damaged_content_ends_every_download_visibly(mesh: Running, damaged: tuple[Client, str, bytes, int]) -> None:
    c, fid, content, segment = damaged
    url = f"{mesh.url}/api/v1/files/{fid}/content"
    headers = {"authorization": f"Bearer {c.token}"}

    # REST over HTTP/1.1: never a complete-looking 200, and never a wait for the client's timeout.
    started = time.monotonic()
    received = b""
    status = 0
    failed: Exception | None = None
    try:
        with httpx.stream("GET", url, headers=headers, timeout=30) as r:
            status = r.status_code
            for part in r.iter_bytes():
                received += part
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        failed = exc
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the download took {elapsed:.1f} s to end (a stall until the client's timeout?)"
    if segment == 0:
        # Damage in the first block is found before any header goes out: a clean DATA_LOSS status.
        assert status == 500 and failed is None
        assert json.loads(received)["code"] == DATA_LOSS
    else:
        # The 200 went out with the authentic bytes before the damage; the stream then ends as an error the client
        # sees (the connection closed short of Content-Length), not as a complete body.
        assert status == 200
        assert failed is not None, f"the body ended as if complete ({len(received)} of {len(content)} bytes)"
        assert len(received) < segment * SEGMENT + SEGMENT
        assert content.startswith(received)

    # curl over HTTP/1.1 and HTTP/2 sees an incomplete transfer at once (exit 18: transfer closed with bytes
    # remaining; 92: HTTP/2 stream reset), or the DATA_LOSS status when nothing was sent.
    for flag in ("--http1.1", "--http2-prior-knowledge"):
        started = time.monotonic()
        run = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", flag, "-H",
             f"authorization: Bearer {c.token}", url],
            capture_output=True, text=True,
        )  # fmt: skip
        assert time.monotonic() - started < 5, (flag, run.stderr)
        if segment == 0:
            assert (run.returncode, run.stdout) == (0, "500"), (flag, run.stderr)
        else:
            assert run.returncode in (18, 92), (flag, run.returncode, run.stderr)

    # grpc-web and native gRPC: the DATA_LOSS status, in the trailers after the bytes before the damage.
    with pytest.raises(GrpcWebError) as web:
        GrpcWeb(mesh.url, c.token).call(
            "flowdock.storage.v1.StorageService/DownloadFile", S.DownloadFileRequest(file_id=fid), S.Node, stream=True
        )
    assert web.value.status == DATA_LOSS
    native = Native(native_channel(mesh.host_port))
    got = bytearray()
    stream = native.storage.DownloadFile(
        S.DownloadFileRequest(file_id=fid), metadata=[("authorization", f"Bearer {c.token}")], timeout=30
    )
    with pytest.raises(grpc.RpcError) as rpc:
        got.extend(b"".join(m.data for m in stream))
    assert rpc.value.code() == grpc.StatusCode.DATA_LOSS
    assert content.startswith(got) and len(got) <= segment * SEGMENT

    # The operator's log names the file, version and blob, and no key material.
    record = data_loss_logged(mesh, fid)
    assert record["level"] == "error" and record["file_id"] == fid
    assert "segment" in record["reason"]
    assert not {"key", "kek", "data_key"} & set(record)
    # Undamaged ranges before the damage still download (a resume by range up to it works).
    assert c.content(fid, offset=0, length=SEGMENT) == content[:SEGMENT] if segment else True


# ----------------------------------------------------------------------------------------- a full data disk

DISK_BYTES = 96 * MiB


@contextmanager
def small_disk(path: Path, size: int) -> Iterator[Path]:
    """A real file system of `size` bytes at `path` (tmpfs; needs root or a user namespace's mount rights)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700"
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if run.returncode != 0:
        why = f"cannot mount a small tmpfs here ({run.stderr.decode(errors='replace').strip()}); run as root"
        if REQUIRE_SERVERS:
            pytest.fail(f"{why} (FLOWDOCK_REQUIRE_SERVERS=1: CI machines can, so this must run)")
        pytest.skip(why)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class Filler:
    """Fills a file system to the last byte (or to `leave` bytes short of it), and frees it again."""

    def __init__(self, root: Path) -> None:
        self.path = root / f"filler-{uuid.uuid4().hex[:6]}"

    def fill(self, leave: int = 0) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        try:
            for block in (1 << 20, 1 << 12, 1):
                try:
                    while True:
                        os.write(fd, bytes(block))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
            if leave:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture(scope="module", params=BACKENDS)
def full(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`flowdock up` whose data folder is a 96 MiB disk of its own (SQLite: the databases are on it too)."""
    with small_disk(tmp_path_factory.mktemp(f"disk-{request.param}") / "mnt", DISK_BYTES) as disk:
        env = {"FLOWDOCK_STORAGE_INLINE_FINISH_BYTES": str(8 * MiB)}
        with flowdock_up(disk / "data", str(request.param), env=env, db_prefix="fdfault") as running:
            yield running


@pytest.fixture
def filler(full: Running) -> Iterator[Filler]:
    f = Filler(full.data_dir.parent)
    yield f
    f.free()


def assert_disk_full(r: httpx.Response, mesh: Running) -> None:
    """The REST answer to a write refused for lack of space: 507 naming the data disk, not the user's quota."""
    assert r.status_code == 507, r.text
    assert r.headers["x-flowdock-error-reason"] == "DISK_FULL"
    body = r.json()
    assert body["code"] == 8  # RESOURCE_EXHAUSTED
    assert "data disk is full" in body["message"] and "not your storage quota" in body["message"]
    assert str(mesh.data_dir) in body["message"]
    assert r.headers.get("retry-after")


def reads_work(c: Client, fid: str, content: bytes, upload_id: str, committed: int) -> None:
    assert c.content(fid) == content
    assert fid in [n["id"] for n in c.ok("GET", "/api/v1/folders/root/children")["nodes"]]
    assert int(c.ok("GET", f"/api/v1/uploads/{upload_id}")["committedSize"]) == committed
    assert int(c.quota()["usedBytes"]) >= len(content)


def writes_answer(mesh: Running, r: httpx.Response) -> None:
    """A metadata write while the disk is full: done (PostgreSQL keeps its own disk) or a clean DISK_FULL (SQLite)."""
    if mesh.backend == "postgres":
        assert r.status_code == 200, r.text
    else:
        assert_disk_full(r, mesh)


def test_disk_full_during_chunk_upload(full: Running, filler: Filler) -> None:
    c = Client(full)
    email = f"u{uuid.uuid4().hex[:10]}@example.org"
    register_and_login(full, email)
    before = os.urandom(200_000)
    fid = str(c.upload("before.bin", before)["node"]["id"])
    content = os.urandom(3 * MiB + 12_345)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "big.bin", "size": len(content)})
    uid = up["uploadId"]
    c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": 0}, content=content[:MiB])
    dropped = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "dropped.bin", "size": 10})
    staging = full.data_dir / "storage" / "staging" / uid

    filler.fill()
    r = c.http.put(f"/api/v1/uploads/{uid}", params={"offset": MiB}, content=content[MiB : 2 * MiB])
    assert_disk_full(r, full)
    # What the failed chunk wrote was cut: the staging file ends where the acknowledged full segments do.
    assert staging.stat().st_size <= HEADER_SIZE + (MiB // SEGMENT) * stride(SEGMENT)
    # Nothing half-written: the upload still stands at its acknowledged size, reads go on.
    reads_work(c, fid, before, uid, MiB)
    native = Native(native_channel(full.host_port))
    meta = [("authorization", f"Bearer {c.token}")]
    assert native.storage.GetUpload(S.GetUploadRequest(upload_id=uid), metadata=meta).committed_size == MiB
    with pytest.raises(grpc.RpcError) as rpc:
        native.storage.WriteUploadChunk(
            S.WriteUploadChunkRequest(upload_id=uid, offset=MiB, data=content[MiB : 2 * MiB]), metadata=meta
        )
    assert rpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "data disk is full" in str(rpc.value.details())
    # The native stream (pipelined writes and flushes) ends the same way, with nothing acknowledged past 1 MiB.
    chunks = [
        S.UploadStreamRequest(upload_id=uid, offset=MiB + i * 256 * 1024, data=bytes(256 * 1024)) for i in range(4)
    ]
    acked: list[int] = []
    responses = native.storage.UploadStream(iter(chunks), metadata=meta, timeout=30)
    with pytest.raises(grpc.RpcError) as rpc:
        acked.extend(m.committed_size for m in responses)
    assert rpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, rpc.value
    assert not [a for a in acked if a > MiB]
    assert staging.stat().st_size <= HEADER_SIZE + (MiB // SEGMENT) * stride(SEGMENT)
    writes_answer(full, c.http.post("/api/v1/folders", json={"parent_id": "root", "name": "while-full"}))
    writes_answer(full, c.http.delete(f"/api/v1/uploads/{dropped['uploadId']}"))  # abort
    # A new upload needs the disk whatever the database: refused cleanly, and leaves no staging file behind. (One
    # within storage_small_upload_bytes stages nothing at create: its bytes meet the full disk at their PUT.)
    big = {"parent_id": "root", "name": "o.bin", "size": 2 * MiB}
    assert_disk_full(c.http.post("/api/v1/uploads", json=big), full)
    # Logging in writes a session: done (PostgreSQL), or a clean DISK_FULL (SQLite on the full disk), never a 500.
    login = httpx.post(f"{full.url}/api/v1/auth/login", json={"email": email, "password": MESH_PASSWORD}, timeout=30)
    writes_answer(full, login)

    # Space back: no restart, the same upload resumes at its committed size and finishes.
    filler.free()
    assert int(c.ok("GET", f"/api/v1/uploads/{uid}")["committedSize"]) == MiB
    c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": MiB}, content=content[MiB:])
    done = c.finish(uid)
    assert done["state"] == "UPLOAD_STATE_COMPLETED", done
    assert c.content(str(done["node"]["id"])) == content
    assert done["node"]["sha256"] == hashlib.sha256(content).hexdigest()  # nothing of a refused write counted
    c.folder(f"after-{uuid.uuid4().hex[:6]}")
    Client(full)  # logging in works again
    if full.backend == "sqlite":
        c.ok("DELETE", f"/api/v1/uploads/{dropped['uploadId']}")  # the abort refused while full works now
    assert_fsck_clean(full)


def test_create_upload_on_a_full_disk_leaves_nothing(full: Running, filler: Filler) -> None:
    c = Client(full)
    filler.fill()
    r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "nothing.bin", "size": 2 * MiB})
    assert_disk_full(r, full)
    filler.free()
    assert_fsck_clean(full)
    assert "nothing.bin" not in c.children()


@pytest.mark.parametrize("leave", [0, 32 * 1024], ids=["nothing-free", "final-segment-does-not-fit"])
def test_disk_full_during_finish(full: Running, filler: Filler, leave: int) -> None:
    c = Client(full)
    content = os.urandom(2 * MiB + 60_000)  # the final segment holds 60,000 bytes: it is written at finish
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": f"fin-{leave}.bin", "size": len(content)})
    uid = up["uploadId"]
    c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": 0}, content=content)

    filler.fill(leave)
    r = c.http.post(f"/api/v1/uploads/{uid}/finish", json={})
    assert_disk_full(r, full)
    state = c.ok("GET", f"/api/v1/uploads/{uid}")
    assert int(state["committedSize"]) == len(content)
    assert state["state"] in ("UPLOAD_STATE_OPEN", "UPLOAD_STATE_FINISHING"), state
    assert f"fin-{leave}.bin" not in c.children()  # nothing half-visible

    filler.free()
    deadline = time.monotonic() + 90  # a hold the full database could not release lapses after 60 s
    while True:
        r = c.http.post(f"/api/v1/uploads/{uid}/finish", json={})
        if r.status_code == 200 and r.json()["state"] != "UPLOAD_STATE_FINISHING":
            break
        assert r.status_code in (200, 409), r.text
        assert time.monotonic() < deadline, r.text
        time.sleep(1)
    done = r.json()
    assert done["state"] == "UPLOAD_STATE_COMPLETED", done
    assert c.content(str(done["node"]["id"])) == content
    assert done["node"]["sha256"] == hashlib.sha256(content).hexdigest()  # nothing of a refused write counted
    assert_fsck_clean(full)


def test_disk_full_during_a_background_finish(full: Running, filler: Filler) -> None:
    """Above storage_inline_finish_bytes the finish runs after the call returned: the upload goes back to OPEN with
    the reason in `failure` (GetUpload), and finishing again once space is freed completes it."""
    c = Client(full)
    content = os.urandom(9 * MiB + 60_000)  # over the fixture's 8 MiB inline finish; a 60,000-byte final segment
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "bg.bin", "size": len(content)})
    uid = up["uploadId"]
    for at in range(0, len(content), 4 * MiB):
        c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": at}, content=content[at : at + 4 * MiB])

    filler.fill(32 * 1024)  # the database's small writes fit (SQLite); the final segment does not
    state = c.ok("POST", f"/api/v1/uploads/{uid}/finish", json={})
    deadline = time.monotonic() + 30
    while state["state"] == "UPLOAD_STATE_FINISHING" and time.monotonic() < deadline:
        time.sleep(0.1)
        state = c.ok("GET", f"/api/v1/uploads/{uid}")
    assert state["state"] == "UPLOAD_STATE_OPEN", state
    assert "data disk is full" in state["failure"] and int(state["committedSize"]) == len(content)
    assert "bg.bin" not in c.children()

    filler.free()
    done = c.finish(uid)
    assert done["state"] == "UPLOAD_STATE_COMPLETED", done
    assert c.content(str(done["node"]["id"])) == content
    assert done["node"]["sha256"] == hashlib.sha256(content).hexdigest()  # nothing of a refused write counted
    assert_fsck_clean(full)
