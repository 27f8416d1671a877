"""The BlobStore contract on both backends: the local disk (EncryptedBlobStore) and S3 on a real OpenStack Swift
(S3BlobStore, tests/support/swift.py). Same format, same behaviour: round trips, ranges, resume from what is
durable (in another instance: another replica), small puts, links, deletes, damage → DataLoss, key rotation."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flowdock_kernel.errors import DataLoss, Unavailable
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.keyring import Keyring
from storage_svc.usecases.hashing import UploadHashes, resume

if TYPE_CHECKING:
    from tests.support.swift import SwiftCluster

pytest_plugins = ["tests.support.swift"]

SEG = 1024
REPO = Path(__file__).resolve().parents[2]
PART = 3 * SEG + 100  # S3: a run object every ~3 segments, so uploads here span several


class Backend:
    """Makes stores of one backend over the same durable state (a new instance = another replica)."""

    def __init__(self, kind: str, root: Path, swift: SwiftCluster | None) -> None:
        self.kind = kind
        self.root = root
        self.keyring_path = root / "keyring.json"
        self.swift = swift
        self.bucket = swift.new_bucket() if swift is not None else ""

    def make(self) -> Any:
        keyring = Keyring(self.keyring_path)
        if self.kind == "local":
            return EncryptedBlobStore(self.root / "storage", keyring, segment_size=SEG)
        from storage_svc.s3store import S3BlobStore

        assert self.swift is not None
        return S3BlobStore(self.swift.s3_settings(self.bucket), keyring, segment_size=SEG, part_size=PART)  # type: ignore[arg-type]

    def stored_names(self) -> list[str]:
        """Everything the backend holds (files, or objects as Swift itself lists them)."""
        if self.swift is not None:
            return self.swift.objects(self.bucket)
        return sorted(
            str(p.relative_to(self.root / "storage")) for p in (self.root / "storage").rglob("*") if p.is_file()
        )

    def stored_bytes(self) -> bytes:
        if self.swift is not None:
            return b"".join(self.swift.object_bytes(self.bucket, n) for n in self.stored_names())
        return b"".join((self.root / "storage" / n).read_bytes() for n in self.stored_names())

    def flip(self, name: str, at: int) -> None:
        """Flip one stored byte of `name` (a file or object)."""
        if self.swift is not None:
            data = bytearray(self.swift.object_bytes(self.bucket, name))
            data[at] ^= 0x01
            self.swift.put_object(self.bucket, name, bytes(data))
        else:
            path = self.root / "storage" / name
            data = bytearray(path.read_bytes())
            data[at] ^= 0x01
            path.write_bytes(bytes(data))


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    swift = request.getfixturevalue("swift") if request.param == "s3" else None
    return Backend(request.param, tmp_path, swift)


def content(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


async def collect(it: AsyncIterator[bytes]) -> bytes:
    out = bytearray()
    async for block in it:
        out += block
    return bytes(out)


async def read_until_error(it: AsyncIterator[bytes]) -> tuple[bytes, Exception | None]:
    got = bytearray()
    try:
        async for block in it:
            got += block
    except Exception as exc:
        return bytes(got), exc
    return bytes(got), None


async def upload(store: Any, name: str, data: bytes, *, sync_every: int = 2) -> str:
    await store.create_staging(name)
    pos, i = 0, 0
    rng = random.Random(len(data))
    while pos < len(data):
        n = rng.randint(1, 5 * SEG)
        await store.write_staging(name, pos, data[pos : pos + n])
        pos = min(pos + n, len(data))
        i += 1
        if i % sync_every == 0:
            await store.sync_staging(name)
    await store.sync_staging(name)
    blob_id = f"blob-{name}"
    await store.commit_staging(name, blob_id, len(data))
    return blob_id


SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG + 7, 40_000]


@pytest.mark.parametrize("size", SIZES)
async def test_round_trip_and_ranges(backend: Backend, size: int) -> None:
    store = backend.make()
    data = content(size)
    blob = await upload(store, f"u{size}", data)
    assert await collect(store.read(blob, 0, size, 4096)) == data
    assert await store.verify(blob) == size
    assert dict(store.list_blobs())[blob] == size
    rng = random.Random(size)
    for _ in range(12):
        a = rng.randint(0, size)
        b = rng.randint(a, size)
        chunk = rng.choice([1, 100, SEG, 3000, 1 << 20])
        assert await collect(store.read(blob, a, b - a, chunk)) == data[a:b]
    other = backend.make()  # another replica reads it the same
    assert await collect(other.read(blob, 0, size, 1 << 20)) == data


async def test_paced_verify_accounts_for_the_whole_blob(backend: Backend) -> None:
    """The scrub's budget: verify(pace=…) reports at least every plaintext byte it authenticated, in pieces."""
    store = backend.make()
    size = 5 * SEG + 7
    blob = await upload(store, "paced", content(size))
    paced: list[int] = []

    async def pace(n: int) -> None:
        paced.append(n)

    assert await store.verify(blob, pace=pace) == size
    assert paced and all(n > 0 for n in paced)
    assert size <= sum(paced) <= size + 64 * (size // SEG + 2)  # plaintext, or stored bytes with their tags


async def test_nothing_plain_in_the_store(backend: Backend) -> None:
    store = backend.make()
    data = b"PLAINTEXT-MARKER " * 500
    await store.create_staging("up")
    await store.write_staging("up", 0, data)
    await store.sync_staging("up")
    assert b"PLAINTEXT-MARKER" not in backend.stored_bytes()
    await store.commit_staging("up", "blob-up", len(data))
    await store.put("small", "blob-small", data)
    assert b"PLAINTEXT-MARKER" not in backend.stored_bytes()


async def test_read_staging_from_any_start(backend: Backend) -> None:
    store = backend.make()
    data = content(9 * SEG + 300)
    await store.create_staging("up")
    await store.write_staging("up", 0, data[: 4 * SEG + 5])
    await store.sync_staging("up")
    await store.write_staging("up", 4 * SEG + 5, data[4 * SEG + 5 :])
    await store.sync_staging("up")
    for start in (0, 1, SEG, 4 * SEG + 5, len(data)):
        assert await collect(store.read_staging("up", len(data), 777, start=start)) == data[start:]
    assert await collect(backend.make().read_staging("up", 4 * SEG + 5, 1000)) == data[: 4 * SEG + 5]


@pytest.mark.parametrize("committed", [0, 1, SEG, SEG + 1, 4 * SEG - 1, 7 * SEG])
async def test_another_replica_resumes_at_the_committed_offset(backend: Backend, committed: int) -> None:
    """The first replica syncs `committed` bytes, writes more it never syncs, and is gone; the second goes on
    from `committed` with bytes that differ from the unacknowledged ones, and the blob is what was acknowledged."""
    first = backend.make()
    data = content(9 * SEG + 11, seed=3)
    await first.create_staging("up")
    if committed:
        await first.write_staging("up", 0, data[:committed])
        await first.sync_staging("up")
    await first.write_staging("up", committed, content(3 * SEG, seed=99))  # never acknowledged
    if backend.kind == "s3":
        await first._flush_pending("up", first._writers["up"])  # its full segments even reached the store
    second = backend.make()
    await second.write_staging("up", committed, data[committed:])
    await second.sync_staging("up")
    assert await collect(second.read_staging("up", len(data), 4096)) == data
    await second.commit_staging("up", "blob-up", len(data))
    assert await collect(backend.make().read("blob-up", 0, len(data), 4096)) == data
    if backend.kind == "s3":  # nothing of the upload left behind but the blob and its data
        names = backend.stored_names()
        assert not [n for n in names if n.startswith("uploads/")]
        await second.delete("blob-up")
        assert backend.stored_names() == []


async def test_put_small_blob(backend: Backend) -> None:
    store = backend.make()
    for n in (0, 5, SEG, 3 * SEG + 1):
        data = content(n, seed=n)
        await store.put(f"p{n}", f"blob-p{n}", data)
        assert await collect(store.read(f"blob-p{n}", 0, n, 500)) == data
        assert await store.verify(f"blob-p{n}") == n


async def test_link_then_delete_each(backend: Backend) -> None:
    store = backend.make()
    data = content(6 * SEG + 3)
    blob = await upload(store, "up", data)
    await store.link(blob, "blob-copy")
    await store.delete(blob)
    assert await collect(store.read("blob-copy", 0, len(data), 4096)) == data
    with pytest.raises(DataLoss):
        await collect(store.read(blob, 0, 1, 1))
    await store.delete("blob-copy")
    await store.delete("blob-copy")  # deleting twice is no error
    assert [n for n in backend.stored_names() if "staging" not in n] == []
    assert dict(store.list_blobs()) == {}


async def test_delete_staging_removes_everything(backend: Backend) -> None:
    store = backend.make()
    await store.create_staging("up")
    await store.write_staging("up", 0, content(7 * SEG))
    await store.sync_staging("up")
    await store.write_staging("up", 7 * SEG, content(5 * SEG))
    await store.delete_staging("up")
    assert [n for n in backend.stored_names() if n.startswith(("staging/u", "uploads/", "data/"))] == []
    with pytest.raises(Unavailable):
        await store.write_staging("up", 7 * SEG, b"x")


async def test_missing_blob_is_data_loss(backend: Backend) -> None:
    with pytest.raises(DataLoss):
        await collect(backend.make().read("blob-none", 0, 0, 1))
    with pytest.raises(DataLoss):
        await backend.make().verify("blob-none")


async def test_a_flipped_byte_is_data_loss_before_any_damaged_byte(backend: Backend) -> None:
    store = backend.make()
    data = content(9 * SEG + 100)
    blob = await upload(store, "up", data)
    names = [n for n in backend.stored_names() if "keyring" not in n]
    for name in names:
        raw_len = len(
            backend.swift.object_bytes(backend.bucket, name)
            if backend.swift is not None
            else (backend.root / "storage" / name).read_bytes()
        )
        if raw_len == 0:
            continue  # a reference marker
        at = raw_len // 2
        backend.flip(name, at)
        fresh = backend.make()
        with pytest.raises(DataLoss):
            await fresh.verify(blob)
        got, error = await read_until_error(fresh.read(blob, 0, len(data), SEG))
        assert isinstance(error, DataLoss)
        assert data.startswith(got)  # only authentic bytes came out
        backend.flip(name, at)
        assert await backend.make().verify(blob) == len(data)


async def test_key_rotation_rewraps_every_holder(backend: Backend) -> None:
    from storage_svc.keyring import new_kek

    store = backend.make()
    data = content(5 * SEG + 9)
    blob = await upload(store, "done", data)
    await store.create_staging("open")
    await store.write_staging("open", 0, data[: SEG + 3])
    await store.sync_staging("open")
    ring = store.keyring
    kek = new_kek()
    ring.save([*ring.keks(), kek], kek.id, pending=True)
    holders = list(store.key_holders())
    assert len(holders) == 2
    assert all(store.rewrap(h, kek.id) for h in holders)
    assert not any(store.rewrap(h, kek.id) for h in store.key_holders())  # resumed: skipped
    assert {store.kek_of(h) for h in store.key_holders()} == {kek.id}
    fresh = backend.make()
    assert await collect(fresh.read(blob, 0, len(data), 4096)) == data
    await fresh.write_staging("open", SEG + 3, data[SEG + 3 :])
    await fresh.sync_staging("open")
    await fresh.commit_staging("open", "blob-open", len(data))
    assert await collect(backend.make().read("blob-open", 0, len(data), 4096)) == data


WRITER = textwrap.dedent(
    """
    import asyncio, random, sys
    from pathlib import Path
    from storage_svc.keyring import Keyring
    from storage_svc.s3store import S3BlobStore, S3Settings

    async def main():
        endpoint, bucket, keyring, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        settings = S3Settings(bucket, endpoint, "us-east-1", "test:tester", "testing")
        store = S3BlobStore(settings, Keyring(Path(keyring)), segment_size=1024, part_size=64 * 1024)
        data = random.Random(7).randbytes(total)
        await store.create_staging("moving")
        pos = 0
        while pos < total // 2:
            n = 50_000 + 333
            await store.write_staging("moving", pos, data[pos:pos + n])
            pos += n
            await store.sync_staging("moving")
            print(pos, flush=True)  # acknowledged
        await store.write_staging("moving", pos, random.Random(8).randbytes(200_000))  # never acknowledged
        await store._flush_pending("moving", store._writers["moving"])
        print("waiting", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def killed_writer(endpoint: str, bucket: str, keyring: Path, total: int) -> int:
    """Run WRITER in a process of its own until it waits with unacknowledged bytes stored, SIGKILL it; returns the
    last offset it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, endpoint, bucket, str(keyring), str(total)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    acked = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "waiting":
            break
        acked = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return acked


async def test_upload_begun_in_a_process_killed_finishes_in_another(swift: SwiftCluster, tmp_path: Path) -> None:
    """Cross-replica on the object store: process A writes and syncs, is killed with SIGKILL mid-upload; this
    process (replica B) resumes at the last acknowledged offset, hashes on from there and finishes."""
    from storage_svc.s3store import S3BlobStore

    bucket = swift.new_bucket()
    keyring = tmp_path / "keyring.json"
    Keyring(keyring)  # both replicas share the keyring (a setting that must match across replicas)
    total = 1_000_000
    data = random.Random(7).randbytes(total)
    acked = killed_writer(swift.endpoint, bucket, keyring, total)
    assert acked > 0
    store = S3BlobStore(swift.s3_settings(bucket), Keyring(keyring), segment_size=1024, part_size=64 * 1024)  # type: ignore[arg-type]
    running = await resume(UploadHashes(), store, "moving", acked, 1 << 20)
    pos = acked
    while pos < total:
        n = min(123_457, total - pos)
        await store.write_staging("moving", pos, data[pos : pos + n])
        await running.update(data[pos : pos + n])
        pos += n
    await store.sync_staging("moving")
    assert running.state is not None and running.state.hexdigest() == hashlib.sha256(data).hexdigest()
    await store.commit_staging("moving", "blob-moving", total)
    got = await collect(
        S3BlobStore(swift.s3_settings(bucket), Keyring(keyring), segment_size=1024).read(
            "blob-moving", 0, total, 1 << 20
        )
    )  # type: ignore[arg-type]
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not [n for n in swift.objects(bucket) if n.startswith("uploads/")]


async def test_a_replica_with_stale_state_is_refused_then_recovers(swift: SwiftCluster, tmp_path: Path) -> None:
    """Replica A holds unsynced bytes ending exactly where replica B (which took the upload over) synced: A's next
    sync finds B's newer manifest and refuses (UNAVAILABLE) instead of writing over it; resumed, A goes on from
    what B stored."""
    backend = Backend("s3", tmp_path, swift)
    a, b = backend.make(), backend.make()
    x, y = 2 * SEG + 10, 5 * SEG + 20
    theirs = content(y, seed=5)
    await a.create_staging("up")
    await a.write_staging("up", 0, theirs[:x])
    await a.sync_staging("up")
    await a.write_staging("up", x, content(y - x, seed=6))  # never acknowledged
    await b.write_staging("up", x, theirs[x:])
    await b.sync_staging("up")
    await a.write_staging("up", y, b"more")
    with pytest.raises(Unavailable):
        await a.sync_staging("up")
    await a.write_staging("up", y, b"more")
    await a.sync_staging("up")
    assert await collect(backend.make().read_staging("up", y + 4, 4096)) == theirs + b"more"
