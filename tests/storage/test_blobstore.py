"""EncryptedBlobStore: round trips, resumable staging, crash recovery, and damage → DataLoss with no plaintext."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowdock_kernel.errors import DataLoss, Unavailable
from storage_svc import envelope as env
from storage_svc.blobstore import EncryptedBlobStore, blob_size
from storage_svc.keyring import Keyring, MissingKek

SEG = 1024  # small segments: many of them in small files


def make_store(root: Path, seg: int = SEG) -> EncryptedBlobStore:
    return EncryptedBlobStore(root / "storage", Keyring(root / "keyring.json"), segment_size=seg)


@pytest.fixture
def store(tmp_path: Path) -> EncryptedBlobStore:
    return make_store(tmp_path)


def content(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


async def collect(it: AsyncIterator[bytes]) -> bytes:
    out = bytearray()
    async for block in it:
        out += block
    return bytes(out)


async def upload(
    store: EncryptedBlobStore, name: str, data: bytes, chunks: list[int] | None = None, *, sync_every: int = 1
) -> str:
    await store.create_staging(name)
    pos, i = 0, 0
    rng = random.Random(len(data))
    while pos < len(data):
        n = chunks[i % len(chunks)] if chunks else rng.randint(1, 3 * SEG)
        await store.write_staging(name, pos, data[pos : pos + n])
        pos = min(pos + n, len(data))
        i += 1
        if i % sync_every == 0:
            await store.sync_staging(name)
    await store.sync_staging(name)
    blob_id = f"blob-{name}"
    await store.commit_staging(name, blob_id, len(data))
    return blob_id


SIZES = [0, 1, SEG - 1, SEG, SEG + 1, 5 * SEG, 5 * SEG + 7, 40_000]


@pytest.mark.parametrize("size", SIZES)
async def test_round_trip_any_size_and_chunking(store: EncryptedBlobStore, size: int) -> None:
    data = content(size)
    blob = await upload(store, f"u{size}", data)
    assert await collect(store.read(blob, 0, size, 4096)) == data
    assert await store.verify(blob) == size
    assert dict(store.list_blobs())[blob] == size
    rng = random.Random(size)
    for _ in range(20):  # random-access ranges, chunk sizes smaller and larger than a segment
        a = rng.randint(0, size)
        b = rng.randint(a, size)
        chunk = rng.choice([1, 100, SEG, 3000, 1 << 20])
        blocks = [blk async for blk in store.read(blob, a, b - a, chunk)]
        assert b"".join(blocks) == data[a:b]
        assert all(0 < len(blk) <= chunk for blk in blocks)


class _EndsTheSyncWhenTested:
    """A writer's sync_lock whose `locked()`, asked the second time by anyone but the syncing thread, first lets the
    sync in flight finish: the moment the load soak hit, a sync ending while a write was deciding whether its writer
    was stale (the first ask is the write that appends while the sync runs)."""

    def __init__(self, finish: threading.Event) -> None:
        self.real = threading.Lock()
        self.finish = finish
        self.syncer: threading.Thread | None = None
        self.asked = 0
        self.fired = False

    def __enter__(self) -> bool:
        return self.real.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.real.__exit__(*exc)

    def locked(self) -> bool:
        if self.syncer is not None and threading.current_thread() is not self.syncer:
            self.asked += 1
        if self.asked == 2 and not self.fired:
            self.fired = True
            self.finish.set()
            self.syncer.join(0.5)  # at once unless the tester holds what the sync needs to end (the writer's lock)
        return self.real.locked()


async def test_a_sync_ending_while_a_write_checks_its_writer_is_no_takeover(store: EncryptedBlobStore) -> None:
    """The false DATA_LOSS of the load soak (bench/README.md): a sync had journaled the partial segment and ended
    between a write's reading the disk and its testing the sync lock, so the write took its own writer for another
    process's, recovered from disk, and missed the bytes appended since that sync. Each byte must survive."""
    data = content(3 * SEG + 600)
    await store.create_staging("up")
    await store.write_staging("up", 0, data[: SEG + 100])  # a full segment, and 100 bytes of the next in memory
    journaled, finish = threading.Event(), threading.Event()
    real_put = store._put_record

    def put_then_hold(upload_id: str, w: Any, seq: int, record: bytes) -> None:
        real_put(upload_id, w, seq, record)
        journaled.set()  # the journal's stamp has moved; the writer's recorded stamp not yet
        assert finish.wait(10)

    lock = _EndsTheSyncWhenTested(finish)
    store._writers["up"].sync_lock = lock  # type: ignore[assignment]
    store._put_record = put_then_hold  # type: ignore[method-assign]
    lock.syncer = threading.Thread(target=store._sync, args=("up",))
    lock.syncer.start()
    try:
        assert journaled.wait(10)
        store._put_record = real_put  # type: ignore[method-assign]
        # While the sync is on its way, more bytes join the partial segment (in memory: the record has 100).
        await store.write_staging("up", SEG + 100, data[SEG + 100 : SEG + 200])
        await store.write_staging("up", SEG + 200, data[SEG + 200 :])
    finally:
        finish.set()
        lock.syncer.join(10)
    assert lock.fired
    await store.sync_staging("up")
    await store.commit_staging("up", "blob-up", len(data))
    assert await collect(store.read("blob-up", 0, len(data), 4096)) == data


async def test_chunks_larger_than_the_io_batch(tmp_path: Path) -> None:
    store = make_store(tmp_path, seg=4096)
    data = content(5 * 1024 * 1024 + 123)
    blob = await upload(store, "blob-ig", data, chunks=[3 * 1024 * 1024 + 17])
    assert await collect(store.read(blob, 0, len(data), 1 << 20)) == data
    assert await collect(store.read(blob, 4095, 2 * 1024 * 1024, 1 << 20)) == data[4095 : 4095 + 2 * 1024 * 1024]


async def test_what_the_page_cache_lacks_is_read_in_a_worker_thread(
    store: EncryptedBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads are served from the page cache in the event loop's thread; the rest waits for the disk in a thread."""
    data = content(40_000)
    blob = await upload(store, "cold", data)
    cached, waited = store._read_cached, store._read_waiting
    calls = {"cached": 0, "waited": 0}

    def half_cached(fd: int, buf: memoryview, pos: int) -> int:  # as if only half of every read were in memory
        calls["cached"] += 1
        return cached(fd, buf[: len(buf) // 2], pos)

    def waiting(fd: int, buf: memoryview, pos: int, ahead: int) -> int:
        calls["waited"] += 1
        return waited(fd, buf, pos, ahead)

    monkeypatch.setattr(store, "_read_cached", half_cached)
    monkeypatch.setattr(store, "_read_waiting", waiting)
    rng = random.Random(3)
    for _ in range(20):
        a = rng.randint(0, len(data))
        b = rng.randint(a, len(data))
        chunk = rng.choice([100, SEG, 3000, 1 << 20])
        assert await collect(store.read(blob, a, b - a, chunk)) == data[a:b]
    assert calls["cached"] and calls["waited"]


async def test_nothing_plain_at_rest(store: EncryptedBlobStore) -> None:
    marker = b"FLOWDOCK-PLAINTEXT-MARKER-"
    data = marker * 500
    await store.create_staging("p")
    await store.write_staging("p", 0, data[:7000])
    await store.sync_staging("p")
    staged = b"".join(p.read_bytes() for p in store.staging.iterdir())
    assert marker[:16] not in staged  # staging (file and journal) is encrypted too
    await store.write_staging("p", 7000, data[7000:])
    await store.sync_staging("p")
    await store.commit_staging("p", "blob-p", len(data))
    raw = store._blob("blob-p").read_bytes()
    assert marker[:16] not in raw
    assert len(raw) == env.stored_size(SEG, len(data))


async def test_fresh_data_key_per_upload(store: EncryptedBlobStore) -> None:
    data = content(3000)
    a = await upload(store, "a", data, chunks=[3000])
    b = await upload(store, "b", data, chunks=[3000])
    ha = env.parse_header(store._blob(a).read_bytes()[: env.HEADER_SIZE])
    hb = env.parse_header(store._blob(b).read_bytes()[: env.HEADER_SIZE])
    kek = store.keyring.aead(ha.kek_id)
    assert ha.unwrap(kek) != hb.unwrap(kek)
    assert ha.file_id != hb.file_id
    assert store._blob(a).read_bytes()[env.HEADER_SIZE :] != store._blob(b).read_bytes()[env.HEADER_SIZE :]


async def test_nonces_never_repeat_while_the_tail_is_rewritten(
    store: EncryptedBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[bytes] = []
    real = os.urandom

    def recording(n: int) -> bytes:
        value = real(n)
        if n == env.NONCE:
            drawn.append(value)
        return value

    monkeypatch.setattr(os, "urandom", recording)
    data = content(3 * SEG + 100)
    blob = await upload(store, "n", data, chunks=[37], sync_every=1)  # the partial segment re-sealed ~85 times
    assert len(drawn) > 80
    assert len(set(drawn)) == len(drawn)
    raw = store._blob(blob).read_bytes()
    nonces = [raw[env.segment_offset(SEG, i) : env.segment_offset(SEG, i) + env.NONCE] for i in range(4)]
    assert len(set(nonces)) == 4 and all(n in drawn for n in nonces)
    assert await collect(store.read(blob, 0, len(data), SEG)) == data


async def test_read_staging_and_digest(store: EncryptedBlobStore) -> None:
    data = content(4 * SEG + 3)
    await store.create_staging("s")
    await store.write_staging("s", 0, data)
    await store.sync_staging("s")
    assert await collect(store.read_staging("s", len(data), 1000)) == data
    assert await collect(make_store(store.root.parent).read_staging("s", len(data), 1000)) == data  # another process
    assert await store.digest_staging("s", len(data)) == hashlib.sha256(data).hexdigest()
    # From a start (the committed bytes a writer's hash lacks): mid-segment, on a boundary, into the partial one.
    for start, end in [(SEG // 2 + 1, len(data)), (SEG, 3 * SEG), (4 * SEG + 1, len(data)), (7, 7)]:
        assert await collect(make_store(store.root.parent).read_staging("s", end, 1000, start=start)) == data[start:end]


# -- resume and crashes -------------------------------------------------------------------------------------


async def test_resume_in_another_process_overwrites_unacknowledged_bytes(tmp_path: Path) -> None:
    first = make_store(tmp_path)
    data = content(6 * SEG + 11)
    await first.create_staging("r")
    await first.write_staging("r", 0, data[:2500])
    await first.sync_staging("r")  # committed: 2500 (mid segment 2)
    await first.write_staging("r", 2500, b"\xee" * 3000)  # a writer that crashed: written, even synced,
    await first.sync_staging("r")  # but never recorded as committed
    second = make_store(tmp_path)  # a fresh process (no cached state): resumes at the committed size
    await second.write_staging("r", 2500, data[2500:4000])
    await second.write_staging("r", 4000, data[4000:])
    await second.sync_staging("r")
    await second.commit_staging("r", "blob-r", len(data))
    assert await collect(second.read("blob-r", 0, len(data), 4096)) == data
    assert await second.verify("blob-r") == len(data)


@pytest.mark.parametrize("committed", [0, 1, SEG, 2 * SEG + 500])
async def test_resume_at_every_kind_of_offset(tmp_path: Path, committed: int) -> None:
    data = content(4 * SEG + 9, seed=committed)
    a = make_store(tmp_path)
    await a.create_staging("x")
    if committed:
        await a.write_staging("x", 0, data[:committed])
        await a.sync_staging("x")
    await a.write_staging("x", committed, content(3 * SEG, seed=99))  # lost writer
    b = make_store(tmp_path)
    await b.write_staging("x", committed, data[committed:])
    await b.sync_staging("x")
    await b.commit_staging("x", "blob-x", len(data))
    assert await collect(b.read("blob-x", 0, len(data), 777)) == data


async def test_torn_rewrite_of_the_partial_segment_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A crash tearing the segment that held committed bytes: the journal still has them."""
    data = content(5 * SEG)
    a = make_store(tmp_path)
    await a.create_staging("t")
    await a.write_staging("t", 0, data[: SEG + 300])
    await a.sync_staging("t")  # committed SEG + 300; bytes 1024..1324 live in the journal
    await a.write_staging("t", SEG + 300, content(2 * SEG, seed=5))  # segment 1 written in place, then torn:
    path = a._staging("t")
    raw = bytearray(path.read_bytes())
    at = env.segment_offset(SEG, 1)
    raw[at + 40 : at + 600] = bytes(560)
    path.write_bytes(bytes(raw))
    b = make_store(tmp_path)
    await b.write_staging("t", SEG + 300, data[SEG + 300 :])
    await b.sync_staging("t")
    await b.commit_staging("t", "blob-t", len(data))
    assert await collect(b.read("blob-t", 0, len(data), SEG)) == data


async def test_journal_damaged_but_segment_durable(tmp_path: Path) -> None:
    """The committed prefix only in the staging file (journal torn): recovered from there, journaled first."""
    data = content(4 * SEG)
    a = make_store(tmp_path)
    await a.create_staging("j")
    await a.write_staging("j", 0, data[: 2 * SEG + 10])
    await a.sync_staging("j")  # committed only SEG + 10 (the crash hit before the database update)
    a._journal("j").write_bytes(bytes(env.tail_stride(SEG) * 2))
    b = make_store(tmp_path)
    await b.write_staging("j", SEG + 10, data[SEG + 10 :])
    await b.sync_staging("j")
    await b.commit_staging("j", "blob-j", len(data))
    assert await collect(b.read("blob-j", 0, len(data), SEG)) == data


async def test_lost_acknowledged_bytes_are_data_loss(tmp_path: Path) -> None:
    a = make_store(tmp_path)
    await a.create_staging("l")
    await a.write_staging("l", 0, content(SEG + 10))
    await a.sync_staging("l")
    a._journal("l").unlink()
    b = make_store(tmp_path)
    with pytest.raises(DataLoss, match="acknowledged"):
        await b.write_staging("l", SEG + 10, b"more")
    with pytest.raises(DataLoss, match="shorter"):
        await b.write_staging("l", 5 * SEG, b"more")


async def test_header_never_synced_restarts_cleanly(tmp_path: Path) -> None:
    a = make_store(tmp_path)
    await a.create_staging("h")
    a._staging("h").write_bytes(b"")  # crash before the header reached the disk
    b = make_store(tmp_path)
    await b.write_staging("h", 0, b"hello")
    await b.sync_staging("h")
    await b.commit_staging("h", "blob-h", 5)
    assert await collect(b.read("blob-h", 0, 5, 10)) == b"hello"


async def test_interrupted_commit_can_be_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_store(tmp_path)
    data = content(3 * SEG + 77)
    await a.create_staging("c")
    await a.write_staging("c", 0, data)
    await a.sync_staging("c")

    def crash(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(Unavailable):
        await a.commit_staging("c", "blob-c", len(data))
    assert not a._journal("c").exists()  # the final segment was written and fsynced before the journal went
    monkeypatch.undo()
    b = make_store(tmp_path)
    await b.commit_staging("c", "blob-c", len(data))
    assert await collect(b.read("blob-c", 0, len(data), 4096)) == data
    await b.commit_staging("c", "blob-c", len(data))  # repeating a commit that completed is harmless
    assert await b.verify("blob-c") == len(data)


async def test_another_replica_wrote_meanwhile(tmp_path: Path) -> None:
    a, b = make_store(tmp_path), make_store(tmp_path)
    data = content(6 * SEG)
    await a.create_staging("m")
    await a.write_staging("m", 0, data[:1500])
    await a.sync_staging("m")
    await b.write_staging("m", 1500, data[1500:4000])  # replica b takes the next chunk
    await b.sync_staging("m")
    await a.write_staging("m", 4000, data[4000:])  # back on a: its cached state is stale and is not used
    await a.sync_staging("m")
    await a.commit_staging("m", "blob-m", len(data))
    assert await collect(b.read("blob-m", 0, len(data), 4096)) == data


async def test_missing_staging_is_unavailable(store: EncryptedBlobStore) -> None:
    with pytest.raises(Unavailable):
        await store.write_staging("nope", 0, b"x")
    with pytest.raises(Unavailable):
        await store.commit_staging("nope", "blob-nope", 0)
    await store.delete_staging("nope")


async def test_delete_staging_removes_everything(store: EncryptedBlobStore) -> None:
    await store.create_staging("d")
    await store.write_staging("d", 0, b"abc")
    await store.sync_staging("d")
    await store.delete_staging("d")
    assert list(store.staging.iterdir()) == []


# -- damage ------------------------------------------------------------------------------------------------


async def read_until_error(store: EncryptedBlobStore, blob: str, size: int) -> tuple[bytes, Exception | None]:
    got = bytearray()
    try:
        async for block in store.read(blob, 0, size, SEG):
            got += block
    except Exception as exc:
        return bytes(got), exc
    return bytes(got), None


async def test_a_flipped_byte_anywhere_is_data_loss_and_no_damaged_plaintext(store: EncryptedBlobStore) -> None:
    data = content(3 * SEG + 200)
    blob = await upload(store, "f", data)
    path = store._blob(blob)
    pristine = path.read_bytes()
    for i in range(len(pristine)):
        damaged = bytearray(pristine)
        damaged[i] ^= 0x04
        path.write_bytes(bytes(damaged))
        got, err = await read_until_error(store, blob, len(data))
        assert isinstance(err, DataLoss), f"byte {i}"
        if i >= env.HEADER_SIZE:
            bad_segment = (i - env.HEADER_SIZE) // env.stride(SEG)
            assert len(got) <= bad_segment * SEG  # only whole, authentic segments before the damage
            assert data.startswith(got)
        else:
            assert got == b""
        with pytest.raises(DataLoss):
            await store.verify(blob)
    path.write_bytes(pristine)
    assert await store.verify(blob) == len(data)


async def test_truncation_and_appending_are_data_loss(store: EncryptedBlobStore) -> None:
    data = content(4 * SEG + 100)
    blob = await upload(store, "tr", data)
    path = store._blob(blob)
    pristine = path.read_bytes()
    boundary = env.segment_offset(SEG, 4)  # dropping the whole final segment
    for cut in [0, 10, env.HEADER_SIZE, env.HEADER_SIZE + 30, boundary, boundary + 28, len(pristine) - 1]:
        path.write_bytes(pristine[:cut])
        with pytest.raises(DataLoss):
            await collect(store.read(blob, 0, 100, SEG))  # even a range far from the end
        with pytest.raises(DataLoss):
            await store.verify(blob)
    path.write_bytes(pristine + b"\0" * 50)
    with pytest.raises(DataLoss):
        await store.verify(blob)


async def test_full_segment_blob_losing_its_empty_final_segment(store: EncryptedBlobStore) -> None:
    data = content(3 * SEG)
    blob = await upload(store, "e", data)
    path = store._blob(blob)
    path.write_bytes(path.read_bytes()[: env.segment_offset(SEG, 3)])
    with pytest.raises(DataLoss):
        await store.verify(blob)


async def test_reordered_segments_are_data_loss(store: EncryptedBlobStore) -> None:
    data = content(4 * SEG + 5)
    blob = await upload(store, "o", data)
    path = store._blob(blob)
    raw = bytearray(path.read_bytes())
    st = env.stride(SEG)
    s1, s2 = env.segment_offset(SEG, 1), env.segment_offset(SEG, 2)
    raw[s1 : s1 + st], raw[s2 : s2 + st] = raw[s2 : s2 + st], raw[s1 : s1 + st]
    path.write_bytes(bytes(raw))
    got, err = await read_until_error(store, blob, len(data))
    assert isinstance(err, DataLoss) and got == data[:SEG]


async def test_segments_spliced_from_another_blob_are_data_loss(store: EncryptedBlobStore) -> None:
    a = await upload(store, "sa", content(3 * SEG, seed=1))
    b = await upload(store, "sb", content(3 * SEG, seed=2))
    ra, rb = bytearray(store._blob(a).read_bytes()), store._blob(b).read_bytes()
    s1 = env.segment_offset(SEG, 1)
    ra[s1 : s1 + env.stride(SEG)] = rb[s1 : s1 + env.stride(SEG)]
    store._blob(a).write_bytes(bytes(ra))
    with pytest.raises(DataLoss):
        await store.verify(a)
    # Another blob's header (a valid one, same KEK) does not open this blob's segments either.
    rb2 = bytearray(store._blob(b).read_bytes())
    rb2[: env.HEADER_SIZE] = ra[: env.HEADER_SIZE]
    store._blob(b).write_bytes(bytes(rb2))
    with pytest.raises(DataLoss):
        await store.verify(b)


async def test_missing_kek_names_it(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    blob = await upload(store, "k", b"secret")
    ring_path = tmp_path / "keyring.json"
    doc = json.loads(ring_path.read_text())
    lost = doc["current"]
    replacement = {"id": "kek-other", "created": "2026-01-01T00:00:00+00:00", "key": doc["keys"][0]["key"]}
    ring_path.write_text(json.dumps({**doc, "current": "kek-other", "keys": [replacement]}))
    fresh = make_store(tmp_path)
    with pytest.raises(MissingKek, match=lost) as info:
        await collect(fresh.read(blob, 0, 6, 10))
    assert info.value.kek_id == lost
    with pytest.raises(MissingKek, match=lost):
        await fresh.verify(blob)
    with pytest.raises(MissingKek, match=lost):
        await store.verify(blob)  # a running store reloads the keyring on an unknown id, then says which


async def test_missing_blob_is_data_loss(store: EncryptedBlobStore) -> None:
    with pytest.raises(DataLoss, match="missing"):
        await collect(store.read("blob-doesnotexist", 0, 1, 1))
    with pytest.raises(DataLoss):
        await store.link("blob-doesnotexist", "blob-other")


async def test_link_shares_content_and_delete(store: EncryptedBlobStore) -> None:
    data = content(2 * SEG + 1)
    blob = await upload(store, "ln", data)
    await store.link(blob, "blob-copy")
    await store.delete(blob)
    await store.delete(blob)  # idempotent
    assert await collect(store.read("blob-copy", 0, len(data), SEG)) == data
    assert [b for b, _ in store.list_blobs()] == ["blob-copy"]


async def test_list_blobs_reports_damaged_sizes(store: EncryptedBlobStore) -> None:
    blob = await upload(store, "ls", content(100))
    assert blob_size(store._blob(blob)) == 100
    store._blob(blob).write_bytes(b"junk")
    assert dict(store.list_blobs()) == {blob: -1}


def test_ids_cannot_name_paths(store: EncryptedBlobStore) -> None:
    for bad in ["../x", "a/b", "", ".hidden", "x" * 65, "abc"]:
        with pytest.raises(ValueError, match="service-generated"):
            store._blob(bad)


async def test_reading_a_large_blob_keeps_memory_flat(tmp_path: Path) -> None:
    store = make_store(tmp_path, seg=64 * 1024)
    size = 48 * 1024 * 1024
    chunk = bytes(1024 * 1024)
    await store.create_staging("blob-ig")
    for pos in range(0, size, len(chunk)):
        await store.write_staging("blob-ig", pos, chunk)
    await store.sync_staging("blob-ig")
    await store.commit_staging("blob-ig", "blob-big", size)
    tracemalloc.start()
    total = 0
    async for block in store.read("blob-big", 0, size, 1024 * 1024):
        total += len(block)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == size
    assert peak < 8 * 1024 * 1024


WRITER = """
import asyncio, random, sys, time
from pathlib import Path
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.keyring import Keyring

async def main() -> None:
    root, size = Path(sys.argv[1]), int(sys.argv[2])
    data = random.Random(7).randbytes(size)
    store = EncryptedBlobStore(root / "storage", Keyring(root / "keyring.json"), segment_size=1024)
    await store.create_staging("killed")
    rng, committed = random.Random(8), 0
    while True:  # writer sessions, each starting at the committed size, like UploadWriter
        pos = committed
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 5000)
            await store.write_staging("killed", pos, data[pos : pos + n])
            pos = min(pos + n, size)
            if rng.random() < 0.5:
                await store.sync_staging("killed")
                committed = pos
                (root / "committed.tmp").write_text(str(pos))
                (root / "committed.tmp").replace(root / "committed")  # what the database would record
        await store.write_staging("killed", pos, b"unacknowledged junk")  # a writer that goes away
        if rng.random() < 0.3:
            await store.sync_staging("killed")
        time.sleep(0.001)

asyncio.run(main())
"""


async def test_writer_killed_at_random_resumes_byte_exact(tmp_path: Path) -> None:
    """SIGKILL a writing process at random points; resuming from the last recorded offset gives the exact bytes."""
    size = 2_000_000
    data = random.Random(7).randbytes(size)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, str(tmp_path), str(size))
    for _ in range(500):
        await asyncio.sleep(0.01)
        if (tmp_path / "committed").exists() and int((tmp_path / "committed").read_text()) > 50_000:
            break
    await asyncio.sleep(random.random() * 0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    committed = int((tmp_path / "committed").read_text())
    assert 0 < committed < size
    store = make_store(tmp_path)
    await store.write_staging("killed", committed, data[committed:])
    await store.sync_staging("killed")
    assert await collect(store.read_staging("killed", size, 1 << 20)) == data
    await store.commit_staging("killed", "blob-killed", size)
    assert await store.verify("blob-killed") == size
    assert await collect(store.read("blob-killed", 0, size, 1 << 20)) == data


async def test_relative_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = EncryptedBlobStore(Path("data") / "storage", Keyring(Path("data") / "keyring.json"), segment_size=SEG)
    blob = await upload(store, "rel", b"relative")
    assert await collect(store.read(blob, 0, 8, 8)) == b"relative"
    assert (tmp_path / "data" / "storage" / "blobs").stat().st_mode & 0o077 == 0


async def test_put_writes_a_whole_blob_readable_and_checked(store: EncryptedBlobStore) -> None:
    for n in (0, 1, SEG - 1, SEG, 3 * SEG + 17):
        data = content(n, seed=n)
        blob = f"put{n}"
        await store.put(f"up{n}", blob, data)
        assert await collect(store.read(blob, 0, n, 1 << 20)) == data
        assert await store.verify(blob) == n
        assert not (store.staging / f"up{n}").exists()  # renamed away, nothing left to clean up


async def test_reading_from_memory_gives_the_event_loop_a_turn_per_unit(store: EncryptedBlobStore) -> None:
    """A consumer that never suspends (a hashing pass) must not freeze the service for a whole big file."""
    data = content(8 << 20)
    await store.put("upbig", "bigblob", data)
    await collect(store.read("bigblob", 0, len(data), 1 << 20))  # now in the page cache
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    h = hashlib.sha256()
    at_first: int | None = None
    async for block in store.read("bigblob", 0, len(data), 1 << 20):
        at_first = ticks if at_first is None else at_first  # (opening the blob hops to a thread: not counted)
        h.update(block)  # no await here
    during = ticks - (at_first or 0)
    done = True
    await task
    assert h.digest() == hashlib.sha256(data).digest()
    assert during >= 7  # a turn per MiB unit after the first


async def test_appends_go_on_while_a_sync_flushes_and_the_sync_keeps_what_it_covered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync holds no lock while the disk flushes, so the next bytes are written meanwhile (the upload pipeline
    relies on it); what it makes durable is what was written before it began, partial segment included, even
    when the appends then rewrite that segment and the writer dies without recording them."""
    data = content(12 * SEG + 300)
    synced = 3 * SEG + 100  # mid segment 3: its 100 bytes are only in memory until the sync journals them
    a = make_store(tmp_path)
    await a.create_staging("p")
    await a.write_staging("p", 0, data[:synced])
    real = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        time.sleep(0.3)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    sync = asyncio.ensure_future(a.sync_staging("p"))
    await asyncio.sleep(0.05)
    await a.write_staging("p", synced, content(6 * SEG, seed=9))  # completes segment 3, then 6 more
    assert not sync.done()  # the append finished while the sync was still flushing
    await sync
    monkeypatch.undo()
    b = make_store(tmp_path)  # a fresh process resumes at the offset that sync recorded
    await b.write_staging("p", synced, data[synced:])
    await b.sync_staging("p")
    await b.commit_staging("p", "blob-p", len(data))
    assert await collect(b.read("blob-p", 0, len(data), 4096)) == data
