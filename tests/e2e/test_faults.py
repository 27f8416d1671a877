"""Faults a user can meet, each ending in a clean error, nothing acknowledged lost, nothing half-visible, and recovery
without a restart of FlowDock (issue 18 item 5): damaged stored bytes (a flipped byte in the first or a middle
segment) for REST, grpc-web and native downloads, which `flowdock fsck` reports; the data disk full (a real small
tmpfs) during chunk uploads and during finish; PostgreSQL restarted and killed under load (a private cluster);
clamd stopped and started under load; auth_svc stopped (access tokens fail closed, events wait in the outboxes);
Envoy killed mid-download (the client resumes by HTTP Range or the native offset).

Each case prints what it measured (`-s`): docs/scaling.md's "Faults" table quotes those numbers. Other faults are
tested beside their feature: kill -9 of storage_svc mid-upload (tests/runtime/test_supervision.py,
tests/e2e/test_small_files_crash.py), clamd down for one upload (tests/e2e/test_storage_safety.py)."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from flowdock.auth.v1 import auth_pb2 as A
from flowdock.storage.v1 import storage_pb2 as S
from flowdock.storage.v1 import storage_pb2_grpc
from storage_svc.envelope import HEADER_SIZE, NONCE, stride
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import MESH_PASSWORD, register_and_login
from tests.support.clamd import EICAR, EICAR_SIGNATURE, ClamdServer, clamd, clamd_server  # noqa: F401 (fixtures)
from tests.support.mesh import BACKENDS, REQUIRE_SERVERS, Running, current_pids, flowdock_up, mesh_fixture
from tests.support.pgcluster import PrivatePostgres, private_postgres
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
    blob = newest_blob(mesh)
    flip(blob, segment)
    yield c, fid, content, segment
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    c.ok("DELETE", f"/api/v1/trash/{fid}")
    # Deleting the damaged file is the repair (or restoring it from a backup): fsck no longer reports the blob.
    assert blob.name not in flowdock(mesh, "fsck", "--deep").stdout


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

    # A signed download URL and a public link's file (which browsers resume by Range) end the same way: never a
    # complete-looking 200 or 206. A resume from just before the damage meets it in its first block: a clean 500.
    link = c.ok("POST", "/api/v1/links", json={"node_id": fid, "permission": "LINK_PERMISSION_DOWNLOAD"})
    link_url = f"{mesh.url}/api/v1/public/links/{link['token']}/files/{fid}/content"
    resume_at = max(segment * SEGMENT - 1000, 0)
    for ranged in ([], ["-r", f"{resume_at}-"]):
        signed = mesh.url + c.ok("POST", f"/api/v1/files/{fid}/download-url", json={})["url"]
        for target in (signed, link_url):
            run = subprocess.run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "--http1.1", *ranged,
                 target],
                capture_output=True, text=True,
            )  # fmt: skip
            if segment == 0 or ranged:
                assert (run.returncode, run.stdout) == (0, "500"), (target, ranged, run.stderr)
            else:
                assert (run.returncode, run.stdout) == (18, "200"), (target, run.returncode, run.stderr)

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
    # The operator's `flowdock fsck --deep` reports that blob as damaged (it cannot repair bytes: restore the file
    # from a backup, or delete it), naming the segment that does not authenticate.
    report = flowdock(mesh, "fsck", "--deep")
    assert report.returncode == 1, report.stdout + report.stderr
    damaged_section = report.stdout.split("damaged blobs:", 1)[1].split("staging files", 1)[0]
    assert f"  {record['blob_id']}: " in damaged_section, report.stdout
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
    # The module's earlier tests leave background work (a finished upload's staging removed after its answer) that
    # can free a page of the disk just after it was filled: a create that then succeeds met no full disk. Abort it
    # and fill again (CI, under load, once); a disk that stays full must refuse.
    for _ in range(5):
        filler.fill()
        r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "nothing.bin", "size": 2 * MiB})
        if r.status_code != 200:
            break
        filler.free()
        c.ok("DELETE", f"/api/v1/uploads/{r.json()['uploadId']}")
        time.sleep(0.5)
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


# ----------------------------------------------------------------------------------------- load and its record


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> float:
    """Seconds until `check()` held; fails naming `what` after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


class Calls:
    """What every call of a load answered (REST status or gRPC code by kind of call), the slowest answer, when
    UNAVAILABLE was answered, and anything that is not a clean answer (`bad`: the test fails on it)."""

    #: 429: the gateway's per-user rate limit, which a load of one user may meet; it is not the fault's doing.
    def __init__(self, allowed: frozenset[int] = frozenset({200, 429, 503})) -> None:
        self.lock = threading.Lock()
        self.allowed = allowed
        self.seen: Counter[tuple[str, str]] = Counter()
        self.slowest = 0.0
        self.unavailable: list[tuple[float, str]] = []  # (monotonic time, message) of each 503 / UNAVAILABLE
        self.ok_at: dict[str, list[float]] = {}  # kind -> monotonic times of successes
        self.bad: list[str] = []

    def rest(self, kind: str, r: httpx.Response, started: float) -> None:
        took = time.monotonic() - started
        with self.lock:
            self.seen[kind, str(r.status_code)] += 1
            self.slowest = max(self.slowest, took)
            if r.status_code == 200:
                self.ok_at.setdefault(kind, []).append(time.monotonic())
            elif r.status_code == 503:
                body = _json_or_none(r)
                # A service's UNAVAILABLE (code 14, its message), or Envoy's own "no healthy upstream" reply.
                if body is not None and body.get("code") not in (None, 14):
                    self.bad.append(f"{kind}: 503 with code {body.get('code')}: {r.text[:200]}")
                self.unavailable.append((time.monotonic(), str((body or {}).get("message", r.text))[:200]))
            if r.status_code not in self.allowed:
                self.bad.append(f"{kind}: {r.status_code} {r.text[:300]}")

    def rpc(self, kind: str, code: grpc.StatusCode, details: str, started: float) -> None:
        with self.lock:
            self.seen[kind, code.name] += 1
            self.slowest = max(self.slowest, time.monotonic() - started)
            if code == grpc.StatusCode.OK:
                self.ok_at.setdefault(kind, []).append(time.monotonic())
            elif code == grpc.StatusCode.UNAVAILABLE:
                self.unavailable.append((time.monotonic(), details[:200]))
            else:
                self.bad.append(f"{kind}: {code.name} {details[:300]}")

    def broken(self, kind: str, exc: Exception) -> None:
        """No HTTP answer at all (a reset, a timeout): never expected while only a backend is down."""
        with self.lock:
            self.seen[kind, type(exc).__name__] += 1
            self.bad.append(f"{kind}: no answer ({exc!r})")

    def first_ok_after(self, kind: str, at: float) -> float | None:
        with self.lock:
            later = [t for t in self.ok_at.get(kind, []) if t > at]
        return min(later) if later else None

    def summary(self) -> str:
        return ", ".join(f"{kind} {code} x{n}" for (kind, code), n in sorted(self.seen.items()))


def _json_or_none(r: httpx.Response) -> dict[str, Any] | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def listing(mesh: Running, token: str) -> dict[str, str]:
    """name → file id of everything in the user's root folder."""
    found: dict[str, str] = {}
    page = ""
    with httpx.Client(base_url=mesh.url, timeout=60, headers={"authorization": f"Bearer {token}"}) as http:
        while True:
            r = http.get("/api/v1/folders/root/children", params={"pageSize": "1000", "pageToken": page})
            assert r.status_code == 200, r.text
            body = r.json()
            found.update({n["name"]: n["id"] for n in body.get("nodes", [])})
            page = body.get("nextPageToken", "")
            if not page:
                return found


def assert_nothing_lost_nothing_half_visible(
    mesh: Running, token: str, acked: dict[str, bytes], sent: dict[str, bytes]
) -> None:
    """Every acknowledged file is listed with its bytes; every listed file is one that was sent, whole."""
    listed = listing(mesh, token)
    lost = sorted(set(acked) - set(listed))
    assert not lost, f"acknowledged but lost: {lost[:5]} ({len(lost)} of {len(acked)})"
    with httpx.Client(base_url=mesh.url, timeout=60, headers={"authorization": f"Bearer {token}"}) as http:
        for name, file_id in listed.items():
            assert name in sent, f"a file nobody sent: {name}"
            got = http.get(f"/api/v1/files/{file_id}/content")
            assert got.status_code == 200, f"{name} is listed but not readable: {got.text}"
            assert got.content == sent[name], f"{name} is listed with other bytes"


class Worker(threading.Thread):
    """A thread of a load: an exception in it (a failed assertion) is recorded in `calls.bad`, not lost."""

    calls: Calls

    def run(self) -> None:
        try:
            self.work()
        except Exception as exc:
            with self.calls.lock:
                self.calls.bad.append(f"{self.name}: {exc!r}")

    def work(self) -> None:
        raise NotImplementedError


class SmallFiles(Worker):
    """Sends small files in one call each (CreateUpload with the content) until stopped; every answer recorded."""

    def __init__(self, mesh: Running, token: str, prefix: str, calls: Calls, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.mesh, self.token, self.prefix, self.calls, self.stop = mesh, token, prefix, calls, stop
        self.sent: dict[str, bytes] = {}
        self.acked: dict[str, bytes] = {}

    def work(self) -> None:
        with httpx.Client(base_url=self.mesh.url, headers={"authorization": f"Bearer {self.token}"}, timeout=30) as c:
            n = 0
            while not self.stop.is_set():
                name, content = f"{self.prefix}-{n:05d}.bin", os.urandom(2048)
                n += 1
                self.sent[name] = content
                body = {"parentId": "root", "name": name, "size": len(content)}
                body["content"] = base64.b64encode(content).decode()
                started = time.monotonic()
                try:
                    r = c.post("/api/v1/uploads", json=body)
                except httpx.HTTPError as exc:
                    self.calls.broken("upload", exc)
                    continue
                self.calls.rest("upload", r, started)
                if r.status_code == 200 and r.json().get("state") == "UPLOAD_STATE_COMPLETED":
                    self.acked[name] = content
                elif r.status_code != 200:
                    time.sleep(0.05)


class Listings(Worker):
    """Lists the root folder until stopped."""

    def __init__(self, mesh: Running, token: str, calls: Calls, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.mesh, self.token, self.calls, self.stop = mesh, token, calls, stop

    def work(self) -> None:
        with httpx.Client(base_url=self.mesh.url, headers={"authorization": f"Bearer {self.token}"}, timeout=30) as c:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    r = c.get("/api/v1/folders/root/children", params={"pageSize": "100"})
                except httpx.HTTPError as exc:
                    self.calls.broken("listing", exc)
                    continue
                self.calls.rest("listing", r, started)
                time.sleep(0.02 if r.status_code == 200 else 0.05)


class ResumableUploads(Worker):
    """Native UploadStream uploads of a few MiB, sent slowly enough to be cut by a fault, each resumed from its
    committed size (GetUpload) until finished, as the SDK does; every call's code recorded."""

    SIZE = 6 * MiB + 4321
    PART = 256 * 1024

    def __init__(self, mesh: Running, token: str, calls: Calls, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.mesh, self.calls, self.stop = mesh, calls, stop
        self.md = (("authorization", f"Bearer {token}"),)
        self.sent: dict[str, bytes] = {}
        self.acked: dict[str, bytes] = {}
        self.resumed = 0  # streams cut by the fault and resumed

    def call(self, kind: str, fn: Callable[[], Any]) -> Any:
        """`fn()` until it answers; UNAVAILABLE is retried (and recorded), anything else fails the test."""
        deadline = time.monotonic() + 90
        while True:
            started = time.monotonic()
            try:
                out = fn()
            except grpc.RpcError as exc:
                self.calls.rpc(kind, exc.code(), str(exc.details()), started)
                failed: grpc.RpcError | None = exc
            else:
                self.calls.rpc(kind, grpc.StatusCode.OK, "", started)
                return out
            assert time.monotonic() < deadline, f"{kind}: still failing after 90 s: {failed}"
            time.sleep(0.1)

    def work(self) -> None:
        stub = storage_pb2_grpc.StorageServiceStub(grpc.insecure_channel(self.mesh.host_port))
        n = 0
        while not self.stop.is_set():
            data, name = os.urandom(self.SIZE), f"resumable-{n:03d}.bin"
            n += 1
            self.sent[name] = data
            req = S.CreateUploadRequest(parent_id="root", name=name, size=len(data))
            uid = self.call("create", lambda req=req: stub.CreateUpload(req, metadata=self.md, timeout=20)).upload_id
            while True:
                get = S.GetUploadRequest(upload_id=uid)
                committed = self.call("get", lambda get=get: stub.GetUpload(get, metadata=self.md, timeout=20))
                if committed.committed_size == len(data):
                    break
                started = time.monotonic()
                try:
                    for _ in stub.UploadStream(self._parts(uid, data, committed.committed_size), metadata=self.md,
                                               timeout=60):  # fmt: skip
                        pass
                except grpc.RpcError as exc:
                    self.calls.rpc("stream", exc.code(), str(exc.details()), started)
                    self.resumed += 1
                    time.sleep(0.1)
            fin = S.FinishUploadRequest(upload_id=uid)
            done = self.call("finish", lambda fin=fin: stub.FinishUpload(fin, metadata=self.md, timeout=30))
            while done.state in (S.UPLOAD_STATE_FINISHING, S.UPLOAD_STATE_OPEN):
                time.sleep(0.05)
                if done.state == S.UPLOAD_STATE_OPEN:  # a background finish the fault ended: finish again
                    done = self.call("finish", lambda fin=fin: stub.FinishUpload(fin, metadata=self.md, timeout=30))
                else:
                    get = S.GetUploadRequest(upload_id=uid)
                    done = self.call("get", lambda get=get: stub.GetUpload(get, metadata=self.md, timeout=20))
            assert done.state == S.UPLOAD_STATE_COMPLETED, done
            self.acked[name] = data

    def _parts(self, uid: str, data: bytes, offset: int) -> Iterator[S.UploadStreamRequest]:
        for at in range(offset, len(data), self.PART):
            yield S.UploadStreamRequest(upload_id=uid, offset=at, data=data[at : at + self.PART])
            time.sleep(0.01)


def run_load(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()


def end_load(threads: list[threading.Thread], stop: threading.Event) -> None:
    stop.set()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), f"{t} did not end"


# ----------------------------------------------------------------------------------------- PostgreSQL restarted


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture
def on_private_pg(private_pg: PrivatePostgres, tmp_path: Path) -> Iterator[tuple[Running, PrivatePostgres]]:
    """`flowdock up` on the private cluster (never the shared one: this test restarts and kills it)."""
    with flowdock_up(tmp_path / "data", "postgres", db_url=f"{private_pg.url}/fdpgfault") as running:
        yield running, private_pg


def test_postgresql_restarted_and_killed_under_load(on_private_pg: tuple[Running, PrivatePostgres]) -> None:
    mesh, pg = on_private_pg
    token = register_and_login(mesh)
    pids = current_pids(mesh)
    calls, stop = Calls(), threading.Event()
    small = [SmallFiles(mesh, token, f"small{i}", calls, stop) for i in range(3)]
    resumable = ResumableUploads(mesh, token, calls, stop)
    threads: list[threading.Thread] = [*small, resumable, Listings(mesh, token, calls, stop)]
    run_load(threads)
    try:
        wait_for("uploads under load", lambda: sum(len(s.acked) for s in small) >= 30)

        # 1. pg_ctl restart -m fast: sessions are ended, the server is down for a moment, then back.
        began = time.monotonic()
        pg.restart_fast()
        back = time.monotonic()
        wait_for("an upload after the restart", lambda: calls.first_ok_after("upload", back) is not None, 60)
        wait_for("a listing after the restart", lambda: calls.first_ok_after("listing", back) is not None, 60)
        restart_recovery = max(calls.first_ok_after("upload", back) or 0, calls.first_ok_after("listing", back) or 0)
        time.sleep(1.0)

        # 2. kill -9 of the postmaster: down until started again (2 s here). Calls meanwhile answer at once, with
        # UNAVAILABLE (retryable), on every protocol.
        pg.kill_postmaster()
        killed = time.monotonic()
        with httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as http:
            started = time.monotonic()
            r = http.get("/api/v1/folders/root/children")
            assert time.monotonic() - started < 10, "a call during the outage hung"
            assert r.status_code == 503, r.text
        native = Native(native_channel(mesh.host_port))
        with pytest.raises(grpc.RpcError) as rpc:
            native.storage.ListChildren(
                S.ListChildrenRequest(folder_id="root"), metadata=[("authorization", f"Bearer {token}")], timeout=10
            )
        assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE, rpc.value
        time.sleep(max(0.0, killed + 2 - time.monotonic()))
        pg.start()
        up = time.monotonic()
        wait_for("an upload after the crash", lambda: calls.first_ok_after("upload", up) is not None, 60)
        wait_for("a listing after the crash", lambda: calls.first_ok_after("listing", up) is not None, 60)
        crash_recovery = max(calls.first_ok_after("upload", up) or 0, calls.first_ok_after("listing", up) or 0)
        resumed_before = len(resumable.acked)
        wait_for("a resumable upload finished after the crash", lambda: len(resumable.acked) > resumed_before, 90)
    finally:
        end_load(threads, stop)

    print(
        f"\nPostgreSQL restart -m fast took {back - began:.2f} s; uploads and listings answered again "
        f"{restart_recovery - back:.2f} s after it was back\n"
        f"PostgreSQL kill -9 (down 2 s): answering again {crash_recovery - up:.2f} s after it was started\n"
        f"calls: {calls.summary()}; slowest {calls.slowest:.2f} s; streams resumed: {resumable.resumed}"
    )
    # Clean errors only: UNAVAILABLE (503) during the outages, never INTERNAL/500, a reset or a hang.
    assert not calls.bad, calls.bad[:10]
    assert calls.unavailable, "no call met the outage (the test did not test it)"
    assert calls.slowest < 30, f"a call took {calls.slowest:.1f} s (a hang until a timeout?)"
    # The pools reconnected by themselves: no service was restarted.
    now = current_pids(mesh)
    assert {k: now[k] for k in ("auth", "storage", "share")} == {k: pids[k] for k in ("auth", "storage", "share")}
    # Nothing acknowledged lost, nothing half-visible.
    sent = {name: data for s in small for name, data in s.sent.items()} | resumable.sent
    acked = {name: data for s in small for name, data in s.acked.items()} | resumable.acked
    assert_nothing_lost_nothing_half_visible(mesh, token, acked, sent)
    assert_fsck_clean(mesh)


# ----------------------------------------------------------------------------------------- clamd stopped


@pytest.fixture(scope="module", params=BACKENDS)
def scanning(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    clamd_server: ClamdServer,  # noqa: F811
) -> Iterator[Running]:
    """Scanning with the tests' own clamd; finishes above 1 MiB run in the background."""
    env = {
        "FLOWDOCK_STORAGE_CLAMD_ADDRESS": clamd_server.address,
        "FLOWDOCK_STORAGE_CLAMD_STREAM_MAX_BYTES": str(clamd_server.stream_max_bytes),
        "FLOWDOCK_STORAGE_INLINE_FINISH_BYTES": str(MiB),
    }
    yield from mesh_fixture(request, tmp_path_factory, "faults-scan", env=env, db_prefix="fdfault")


class ScannedUploads(Worker):
    """Chunked uploads (some over the inline finish: finished in the background), every fourth one the EICAR test
    file, until stopped. An upload whose finish the scanner could not serve is kept to be finished later."""

    def __init__(self, mesh: Running, token: str, prefix: str, calls: Calls, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.prefix, self.calls, self.stop = prefix, calls, stop
        self.http = httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {token}"}, timeout=60)
        self.sent: dict[str, bytes] = {}
        self.acked: dict[str, bytes] = {}
        self.refused: dict[str, str] = {}  # name -> failure (infected)
        self.waiting: dict[str, str] = {}  # name -> upload id, not finished for want of the scanner
        self.scanner_named = 0  # refusals that said the virus scanner was the reason

    def answer(self, kind: str, r: httpx.Response, started: float) -> dict[str, Any] | None:
        self.calls.rest(kind, r, started)
        if r.status_code == 503:
            if "virus scanner" in r.text:
                self.scanner_named += 1
            return None
        return r.json() if r.status_code == 200 else None

    def work(self) -> None:
        n = 0
        while not self.stop.is_set():
            name = f"{self.prefix}-{n:04d}" + (".com" if n % 4 == 3 else ".bin")
            content = EICAR if n % 4 == 3 else os.urandom(1_200_000 if n % 2 else 150_000)
            n += 1
            self.sent[name] = content
            started = time.monotonic()
            up = self.answer(
                "create",
                self.http.post("/api/v1/uploads", json={"parent_id": "root", "name": name, "size": len(content)}),
                started,
            )
            if up is None:
                continue
            uid = str(up["uploadId"])
            started = time.monotonic()
            if self.answer("put", self.http.put(f"/api/v1/uploads/{uid}", params={"offset": 0}, content=content),
                           started) is None:  # fmt: skip
                continue
            self.waiting[name] = uid
            self.finish(name, uid)

    def finish(self, name: str, uid: str) -> bool:
        """Finish (and poll a background finish); True once the upload ended either way."""
        started = time.monotonic()
        state = self.answer("finish", self.http.post(f"/api/v1/uploads/{uid}/finish", json={}), started)
        while state is not None and state["state"] == "UPLOAD_STATE_FINISHING":
            time.sleep(0.05)
            started = time.monotonic()
            state = self.answer("get", self.http.get(f"/api/v1/uploads/{uid}"), started)
        if state is None:
            return False
        if state["state"] == "UPLOAD_STATE_OPEN":  # a background finish the scanner could not serve
            assert "virus scanner" in state["failure"], state
            self.scanner_named += 1
            return False
        del self.waiting[name]
        if state["state"] == "UPLOAD_STATE_COMPLETED":
            self.acked[name] = self.sent[name]
        else:
            assert state["state"] == "UPLOAD_STATE_FAILED", state
            self.refused[name] = str(state["failure"])
        return True


def test_clamd_stopped_and_started_under_load(scanning: Running, clamd: ClamdServer) -> None:  # noqa: F811
    c = Client(scanning)
    pids = current_pids(scanning)
    calls, stop = Calls(), threading.Event()
    workers = [ScannedUploads(scanning, c.token, f"scan{i}", calls, stop) for i in range(3)]
    run_load(list(workers))
    try:
        wait_for("scanned uploads", lambda: sum(len(w.acked) for w in workers) >= 6)
        clamd.stop()
        stopped = time.monotonic()
        try:
            # Uploads fail closed meanwhile, naming the scanner: a 503 on finish, or a background finish back to OPEN.
            wait_for("uploads refused for want of the scanner", lambda: sum(w.scanner_named for w in workers) >= 3)
            time.sleep(max(0.0, stopped + 3 - time.monotonic()))
        finally:
            clamd.start()
        started = time.monotonic()
        wait_for("a finish after clamd is back", lambda: calls.first_ok_after("finish", started) is not None, 60)
        recovery = (calls.first_ok_after("finish", started) or 0) - started
    finally:
        end_load(list(workers), stop)
    # What waited for the scanner finishes now, without a restart of FlowDock.
    for w in workers:
        for name, uid in list(w.waiting.items()):
            wait_for(f"{name} finished", lambda w=w, name=name, uid=uid: w.finish(name, uid), 60)
    print(
        f"\nclamd stopped 3 s under load: uploads finished again {recovery:.2f} s after clamd answered "
        f"(clamd's own start: {clamd.start_seconds:.2f} s); calls: {calls.summary()}"
    )
    assert not calls.bad, calls.bad[:10]
    assert current_pids(scanning) == pids  # nothing was restarted
    # Nothing stored as clean without a verdict: every EICAR file was refused with its signature, none is visible.
    acked = {n: d for w in workers for n, d in w.acked.items()}
    refused = {n: f for w in workers for n, f in w.refused.items()}
    eicars = {n for w in workers for n in w.sent if n.endswith(".com")}
    assert not eicars & set(acked), sorted(eicars & set(acked))
    assert all(f"virus found: {EICAR_SIGNATURE}" in f for f in refused.values()), refused
    assert not set(refused) - eicars
    sent = {n: d for w in workers for n, d in w.sent.items()}
    assert_nothing_lost_nothing_half_visible(scanning, c.token, acked, sent)
    assert not [n for n in listing(scanning, c.token) if n not in acked]
    assert_fsck_clean(scanning)


# ----------------------------------------------------------------------------------------- auth_svc stopped


@pytest.fixture(scope="module", params=BACKENDS)
def supervised(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A mesh of this module's own: its processes are killed here, which the session's shared mesh must not see."""
    yield from mesh_fixture(request, tmp_path_factory, "faults-sup", db_prefix="fdfault")


class PortHolder:
    """Another program on a service's port that hangs up on every connection: the service cannot come back (each
    restart exits at once, `cannot listen on`) while its callers are refused at once rather than left waiting."""

    def __init__(self, address: str) -> None:
        host, port = address.split(",")[0].rsplit(":", 1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the killed server's TIME_WAIT
        deadline = time.monotonic() + 0.4  # the killed service lets go within ms; its restart binds after ≥ 0.5 s
        while True:
            try:
                self.sock.bind((host, int(port)))
                break
            except OSError:
                assert time.monotonic() < deadline, f"port {port} stayed taken by the killed service"
                time.sleep(0.005)
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._hang_up, daemon=True)
        self.thread.start()

    def _hang_up(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)


def test_auth_stopped_tokens_fail_closed_and_events_wait_in_the_outboxes(supervised: Running) -> None:
    """Decided: access tokens fail closed while auth_svc is down. Services verify a token's signature locally, but
    each call also asks auth_svc whether its session still lives (revocation reaches every service within
    SESSION_CHECK_SECONDS, 2 s); with nobody to ask, a call is refused with UNAVAILABLE (503, retryable: the
    client keeps its session) — never served on a stale answer, never UNAUTHENTICATED (which would log users out).
    Public links, which need no session, keep working, and what they record waits in storage's and share's
    outboxes until auth_svc takes it."""
    mesh = supervised
    c = Client(mesh)
    token = c.token
    email = f"u{uuid.uuid4().hex[:10]}@example.org"  # another user, who logs in meanwhile
    register_and_login(mesh, email)
    content = os.urandom(300_000)
    fid = str(c.upload("shared.bin", content)["node"]["id"])
    link = c.ok("POST", "/api/v1/links", json={"node_id": fid, "permission": "LINK_PERMISSION_DOWNLOAD"})
    native = Native(native_channel(mesh.host_port))
    meta = [("authorization", f"Bearer {token}")]

    pids = current_pids(mesh)
    os.kill(pids["auth"], signal.SIGKILL)
    killed = time.monotonic()
    holder = PortHolder(mesh.services["auth"])
    try:
        # Logins: UNAVAILABLE (REST 503), at once.
        def login_refused() -> bool:
            r = httpx.post(
                f"{mesh.url}/api/v1/auth/login", json={"email": email, "password": MESH_PASSWORD}, timeout=10
            )
            assert r.status_code in (503, 200), r.text  # 200: only before the gateway saw auth go
            return r.status_code == 503

        wait_for("logins refused", login_refused, 20)
        with pytest.raises(grpc.RpcError) as rpc:
            native.auth.Login(A.LoginRequest(email=email, password=MESH_PASSWORD), timeout=10)
        assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE, rpc.value

        # The token, still within its lifetime, fails closed once the last session answer is older than 2 s.
        time.sleep(max(0.0, killed + 2.5 - time.monotonic()))
        started = time.monotonic()
        r = c.http.get("/api/v1/folders/root/children")
        assert time.monotonic() - started < 10, "a call with a token hung while auth_svc was down"
        assert r.status_code == 503 and r.json()["code"] == 14, r.text
        with pytest.raises(grpc.RpcError) as rpc:
            native.storage.ListChildren(S.ListChildrenRequest(folder_id="root"), metadata=meta, timeout=10)
        assert rpc.value.code() == grpc.StatusCode.UNAVAILABLE, rpc.value

        # Public links need no session: a visitor opens one (share_svc records it) and downloads (storage_svc).
        with httpx.Client(base_url=mesh.url, timeout=30) as visitor:
            opened = visitor.post(f"/api/v1/public/links/{link['token']}/open", json={})
            assert opened.status_code == 200, opened.text
            session = {"x-link-session": opened.json()["linkSession"]}
            got = visitor.get(f"/api/v1/public/links/{link['token']}/files/{fid}/content", headers=session)
            assert got.status_code == 200 and got.content == content, got.text[:300]
        assert mesh.proc.poll() is None  # the rest of the installation serves on
    finally:
        holder.close()
    released = time.monotonic()

    # auth_svc back (the supervisor's next try, after its backoff): logins and the same token work again.
    wait_for("logins again", lambda: _logs_in(mesh, email), 60)
    back = time.monotonic() - released
    wait_for("the token again", lambda: c.http.get("/api/v1/folders/root/children").status_code == 200, 30)

    # The events recorded while auth_svc was down arrive in the owner's activity (storage's and share's outboxes).
    def arrived() -> bool:
        events = c.ok("GET", "/api/v1/me/activity", params={"page_size": 100})["events"]
        kinds = {(e["kind"], e.get("details", {}).get("link_id")) for e in events}
        return {("link.opened", link["id"]), ("link.downloaded", link["id"])} <= kinds

    delivered = wait_for("the outboxes' events", arrived, 60)
    print(
        f"\nauth_svc down {released - killed:.1f} s: logins and tokens answer again {back:.2f} s after its port was "
        f"free (the supervisor's backoff included); outbox events delivered {delivered:.2f} s after that"
    )
    assert_fsck_clean(mesh)


def _logs_in(mesh: Running, email: str) -> bool:
    try:
        r = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": email, "password": MESH_PASSWORD}, timeout=10)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


# ----------------------------------------------------------------------------------------- Envoy killed


def envoy_pid(mesh: Running) -> int:
    """Envoy's pid: the child of `python -m gateway serve` (the first start), or the gateway itself (a restart)."""
    gateway = current_pids(mesh)["gateway"]
    children = Path(f"/proc/{gateway}/task/{gateway}/children").read_text().split()
    return int(children[0]) if children else gateway


def kill_envoy(mesh: Running) -> tuple[int, float]:
    old = current_pids(mesh)["gateway"]
    os.kill(envoy_pid(mesh), signal.SIGKILL)
    return old, time.monotonic()


def gateway_back(mesh: Running, old: int, token: str) -> float:
    def answers() -> bool:
        if current_pids(mesh).get("gateway") in (None, old):
            return False
        try:
            r = httpx.get(f"{mesh.url}/api/v1/folders/root/children", headers={"authorization": f"Bearer {token}"})
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    return wait_for("the gateway back", answers, 60)


def cut_by_envoy_kill(mesh: Running, url: str, headers: dict[str, str], content: bytes) -> tuple[bytes, str, int]:
    """A REST download that Envoy's kill -9 breaks after 2 MiB: what arrived (a prefix of `content`, visibly short
    of it), the ETag the 200 had, and the killed gateway's pid."""
    got = b""
    with httpx.stream("GET", url, headers=headers, timeout=30) as r:
        assert r.status_code == 200 and r.headers["accept-ranges"] == "bytes"
        etag = r.headers["etag"]
        parts = r.iter_bytes()
        while len(got) < 2 * MiB:
            got += next(parts)
        old, _ = kill_envoy(mesh)
        with pytest.raises(httpx.HTTPError):  # noqa: PT012 (what was buffered before the kill still arrives)
            for part in parts:
                got += part
    assert 2 * MiB <= len(got) < len(content) and content.startswith(got)
    return got, etag, old


def test_envoy_killed_mid_download_resumes_by_range(supervised: Running) -> None:
    mesh = supervised
    c = Client(mesh)
    content = os.urandom(40 * MiB + 777)  # well beyond what the sockets and Envoy buffer for a reader that pauses
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "big.bin", "size": len(content)})
    for at in range(0, len(content), 8 * MiB):
        c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": at}, content=content[at : at + 8 * MiB])
    fid = str(c.finish(up["uploadId"])["node"]["id"])
    url = f"{mesh.url}/api/v1/files/{fid}/content"
    auth = {"authorization": f"Bearer {c.token}"}

    # REST: the transfer breaks visibly (short of Content-Length), then resumes with Range + If-Range: 206.
    got, etag, old = cut_by_envoy_kill(mesh, url, auth, content)
    rest_back = gateway_back(mesh, old, c.token)
    r = httpx.get(url, headers={**auth, "range": f"bytes={len(got)}-", "if-range": etag}, timeout=60)
    assert r.status_code == 206, r.text[:300]
    assert r.headers["content-range"] == f"bytes {len(got)}-{len(content) - 1}/{len(content)}"
    assert int(r.headers["content-length"]) == len(content) - len(got)
    assert hashlib.sha256(got + r.content).digest() == hashlib.sha256(content).digest()
    # The edges: a range past the end is 416 (naming the size); an If-Range of other content sends it all (200).
    beyond = httpx.get(url, headers={**auth, "range": f"bytes={len(content)}-"}, timeout=30)
    assert beyond.status_code == 416 and beyond.json()["code"] == 9, beyond.text
    stale = httpx.get(url, headers={**auth, "range": "bytes=5-", "if-range": '"0000"'}, timeout=60)
    assert stale.status_code == 200 and len(stale.content) == len(content)
    tail = httpx.get(url, headers={**auth, "range": "bytes=-100"}, timeout=30)
    assert tail.status_code == 206 and tail.content == content[-100:]

    # Native gRPC: the stream ends with UNAVAILABLE; DownloadFile from the offset reached gives the rest.
    meta = [("authorization", f"Bearer {c.token}")]
    received = bytearray()
    stream = Native(native_channel(mesh.host_port)).storage.DownloadFile(
        S.DownloadFileRequest(file_id=fid), metadata=meta, timeout=60
    )
    cut = False
    with pytest.raises(grpc.RpcError) as rpc:  # noqa: PT012 (the kill happens between two messages)
        for message in stream:
            received.extend(message.data)
            if len(received) >= 2 * MiB and not cut:
                old, _ = kill_envoy(mesh)
                cut = True
    assert rpc.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), rpc.value
    assert len(received) < len(content) and content.startswith(bytes(received))
    native_back = gateway_back(mesh, old, c.token)
    rest_of_it = Native(native_channel(mesh.host_port)).storage.DownloadFile(
        S.DownloadFileRequest(file_id=fid, offset=len(received)), metadata=meta, timeout=60
    )
    received.extend(b"".join(m.data for m in rest_of_it))
    assert hashlib.sha256(received).digest() == hashlib.sha256(content).digest()
    print(f"\nEnvoy kill -9 mid-download: the gateway answered again after {rest_back:.2f} s (REST), "
          f"{native_back:.2f} s (native)")  # fmt: skip
    assert mesh.proc.poll() is None
    assert_fsck_clean(mesh)


def test_envoy_killed_mid_link_or_url_download_resumes_by_range(supervised: Running) -> None:
    """Issue 18: what a browser downloads without a token — a password link's file, a signed download URL — also
    resumes by Range after Envoy's kill -9, byte-exact (the link session and the URL outlive the gateway)."""
    mesh = supervised
    c = Client(mesh)
    content = os.urandom(40 * MiB + 555)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "big2.bin", "size": len(content)})
    for at in range(0, len(content), 8 * MiB):
        c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": at}, content=content[at : at + 8 * MiB])
    fid = str(c.finish(up["uploadId"])["node"]["id"])
    link = c.ok(
        "POST",
        "/api/v1/links",
        json={"node_id": fid, "permission": "LINK_PERMISSION_DOWNLOAD", "password": "resume pass 1"},
    )
    links = f"{mesh.url}/api/v1/public/links/{link['token']}"
    opened = httpx.post(f"{links}/open", json={"password": "resume pass 1"}, timeout=30)
    assert opened.status_code == 200, opened.text
    visitor = {"x-link-session": opened.json()["linkSession"]}
    signed = mesh.url + c.ok("POST", f"/api/v1/files/{fid}/download-url", json={})["url"]  # valid 60 s here
    for route, url, headers in (("link file", f"{links}/files/{fid}/content", visitor), ("signed URL", signed, {})):
        got, etag, old = cut_by_envoy_kill(mesh, url, headers, content)
        back = gateway_back(mesh, old, c.token)
        r = httpx.get(url, headers={**headers, "range": f"bytes={len(got)}-", "if-range": etag}, timeout=60)
        assert r.status_code == 206, r.text[:300]
        assert r.headers["content-range"] == f"bytes {len(got)}-{len(content) - 1}/{len(content)}"
        assert hashlib.sha256(got + r.content).digest() == hashlib.sha256(content).digest()
        print(f"\nEnvoy kill -9 mid-download of a {route}: resumed at {len(got)} of {len(content)} bytes, "
              f"gateway back after {back:.2f} s")  # fmt: skip
    assert mesh.proc.poll() is None
