"""The whole-file SHA-256 computed as an upload's bytes arrive (storage_svc/usecases/hashing.py, issue 15 item 2),
over in-memory fakes: finishing reads nothing back when the writer saw every byte, the virus scan is the only
pass when scanning is on, a writer on another replica (or after a restart) hashes only the committed bytes it
lacks, once, and the per-process cache takes a state only once its offset is committed. Each `Uploads` built
here has its own cache: two of them over the same fakes are two replicas. The same over a real database, blob
store and a SIGKILLed process: tests/storage/test_upload_hashing.py."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable

import pytest

from flowdock_kernel.errors import Aborted, Unavailable
from storage_svc.domain import UploadState
from storage_svc.scanner import DisabledScanner
from storage_svc.usecases import Uploads, UploadWriter
from storage_svc.usecases.hashing import UploadHashes
from tests.support.fakes_storage import FakeBlobStore, StorageFakes, sha256

ALICE = "alice"
DATA = bytes(range(256)) + b"the rest of the file" * 10  # 456 bytes: finished inline (small_limits: 512)


class CountingBlobs(FakeBlobStore):
    """Counts every byte read back through the BlobStore port (staging, blobs, and whole-blob verifies)."""

    def __init__(self) -> None:
        super().__init__()
        self.read_bytes = 0
        self.reads: list[tuple[str, int, int]] = []  # (what, start, end)
        self.fail_staging_reads = False

    async def read_staging(self, upload_id: str, size: int, chunk: int, *, start: int = 0) -> AsyncIterator[bytes]:
        if self.fail_staging_reads:
            raise Unavailable("storage I/O error (test); retry shortly")
        self.reads.append(("staging", start, size))
        async for block in super().read_staging(upload_id, size, chunk, start=start):
            self.read_bytes += len(block)
            yield block

    async def read(
        self, blob_id: str, offset: int, length: int, chunk: int, frame: Callable[[int], bytes] | None = None
    ) -> AsyncIterator[bytes]:
        self.reads.append(("blob", offset, offset + length))
        async for block in super().read(blob_id, offset, length, chunk, frame):
            self.read_bytes += len(block)
            yield block

    async def verify(self, blob_id: str) -> int:
        size = await super().verify(blob_id)
        self.reads.append(("verify", 0, size))
        self.read_bytes += size
        return size


@pytest.fixture
def blobs() -> CountingBlobs:
    return CountingBlobs()


@pytest.fixture
def fakes(blobs: CountingBlobs) -> StorageFakes:
    return StorageFakes(blobs=blobs)


def replica(fakes: StorageFakes, *, scanning: bool = False) -> Uploads:
    """One storage process over the shared fakes (database and blob files): its own hash cache."""
    uploads = fakes.uploads()
    if not scanning:
        uploads.scanner = DisabledScanner()
    return uploads


async def send(uploads: Uploads, upload_id: str, start: int, end: int, step: int = 40) -> None:
    """Unary WriteUploadChunk calls for DATA[start:end]."""
    for at in range(start, end, step):
        await uploads.write_chunk(ALICE, upload_id, at, DATA[at : min(at + step, end)])


async def write(writer: UploadWriter, data: bytes, step: int = 40) -> None:
    """Stream messages of at most `step` bytes (small_limits: chunks of at most 64)."""
    for at in range(0, len(data), step):
        await writer.write(data[at : at + step])


async def test_finish_reads_nothing_back_when_the_writer_hashed_every_byte(
    fakes: StorageFakes, blobs: CountingBlobs
) -> None:
    uploads = replica(fakes)
    up = await uploads.create_upload(ALICE, "root", "f.bin", len(DATA), sha256(DATA), "")
    await send(uploads, up.id, 0, 200)  # unary chunks, one writer each
    async with uploads.writer(ALICE, up.id) as stream:  # then a stream, flushed twice
        await stream.open(200)
        await write(stream, DATA[200:300])
        await stream.flush()
        await write(stream, DATA[300:])
        assert await stream.flush(release=True) == len(DATA)
    assert blobs.reads == []
    done, node = await uploads.finish_upload(ALICE, up.id)
    assert done.state == UploadState.COMPLETED and node is not None
    assert node.sha256 == sha256(DATA) and fakes.content(node.id) == DATA
    assert blobs.reads == [] and blobs.read_bytes == 0  # no pass over the bytes at all
    assert len(uploads.hashes) == 0  # forgotten once finished


async def test_with_scanning_on_the_scan_is_the_only_pass(fakes: StorageFakes, blobs: CountingBlobs) -> None:
    uploads = replica(fakes, scanning=True)
    up = await uploads.create_upload(ALICE, "root", "f.bin", len(DATA), "", "")
    await send(uploads, up.id, 0, len(DATA))
    done, node = await uploads.finish_upload(ALICE, up.id)
    assert done.state == UploadState.COMPLETED and node is not None and node.sha256 == sha256(DATA)
    assert blobs.reads == [("staging", 0, len(DATA))] and blobs.read_bytes == len(DATA)
    assert fakes.scanner.scanned == [DATA]


async def test_a_declared_checksum_that_does_not_match_is_still_refused(
    fakes: StorageFakes, blobs: CountingBlobs
) -> None:
    uploads = replica(fakes)
    declared = sha256(DATA[:-1] + b"?")
    up = await uploads.create_upload(ALICE, "root", "f.bin", len(DATA), declared, "")
    await send(uploads, up.id, 0, len(DATA))
    done, node = await uploads.finish_upload(ALICE, up.id)
    assert done.state == UploadState.FAILED and node is None
    assert f"content SHA-256 is {sha256(DATA)}, not the declared {declared}" in done.failure
    assert blobs.read_bytes == 0 and fakes.usage(ALICE) == (0, 0) and up.id not in blobs.staging
    assert len(uploads.hashes) == 0


async def test_a_writer_on_another_replica_hashes_only_the_committed_bytes_it_lacks(
    fakes: StorageFakes, blobs: CountingBlobs
) -> None:
    """Chunks alternate between two replicas (a round-robin gateway): each reads back, once, the chunk the other
    wrote since it last wrote, never the whole prefix again; finishing reads only what the finishing replica
    lacks."""
    a, b = replica(fakes), replica(fakes)
    up = await a.create_upload(ALICE, "root", "f.bin", len(DATA), sha256(DATA), "")
    await send(a, up.id, 0, 100)
    assert blobs.reads == []
    await send(b, up.id, 100, 150)  # b knows nothing yet: the committed prefix, once
    assert blobs.reads == [("staging", 0, 100)]
    await send(b, up.id, 150, 200)  # b's own state goes on
    assert blobs.reads == [("staging", 0, 100)]
    await send(a, up.id, 200, 300)  # a lacks b's 100 bytes, and only those
    assert blobs.reads[1:] == [("staging", 100, 200)]
    await send(b, up.id, 300, len(DATA))
    assert blobs.reads[2:] == [("staging", 200, 300)]
    blobs.reads.clear()
    blobs.read_bytes = 0
    done, node = await a.finish_upload(ALICE, up.id)  # a lacks b's last bytes
    assert done.state == UploadState.COMPLETED and node is not None and node.sha256 == sha256(DATA)
    assert blobs.reads == [("staging", 300, len(DATA))]
    assert blobs.read_bytes == len(DATA) - 300


async def test_a_restarted_process_hashes_the_committed_prefix_once(fakes: StorageFakes, blobs: CountingBlobs) -> None:
    before = replica(fakes)
    up = await before.create_upload(ALICE, "root", "f.bin", len(DATA), sha256(DATA), "")
    await send(before, up.id, 0, 160)
    after = replica(fakes)  # the same files and rows, an empty cache
    async with after.writer(ALICE, up.id) as stream:
        await stream.open(160)
        for at in range(160, len(DATA), 30):
            await stream.write(DATA[at : at + 30])
            await stream.flush_soon()
        assert await stream.flush(release=True) == len(DATA)
    assert blobs.reads == [("staging", 0, 160)]
    _, node = await after.finish_upload(ALICE, up.id)
    assert node is not None and node.sha256 == sha256(DATA) and blobs.read_bytes == 160


async def test_the_cache_takes_a_state_only_once_its_offset_is_committed(
    fakes: StorageFakes, blobs: CountingBlobs
) -> None:
    """Bytes received but not acknowledged never enter the cache: not when the machine crashed before they were
    flushed, not when the writer lost its hold and another wrote different bytes at that offset."""
    uploads = replica(fakes)
    other = DATA[:100] + bytes(reversed(DATA[100:]))
    up = await uploads.create_upload(ALICE, "root", "f.bin", len(DATA), sha256(other), "")
    first = uploads.writer(ALICE, up.id)
    await first.open(0)
    await write(first, DATA[:100])
    assert await first.flush() == 100
    state = uploads.hashes.get(up.id)
    assert state is not None and state[0] == 100 and state[1].hexdigest() == sha256(DATA[:100])
    await write(first, DATA[100:150])  # received, hashed in the writer, not flushed
    assert (cached := uploads.hashes.get(up.id)) is not None and cached[0] == 100
    fakes.blobs.crash()
    fakes.clock.advance(seconds=61)  # the first writer's hold lapses (its client vanished)
    async with uploads.writer(ALICE, up.id) as second:
        await second.open(100)
        with pytest.raises(Aborted):
            await first.flush()  # the lost writer cannot record, so its state never enters the cache
        await first.close()
        assert (cached := uploads.hashes.get(up.id)) is not None and cached[0] == 100
        await write(second, other[100:])
        assert await second.flush(release=True) == len(DATA)
    assert (cached := uploads.hashes.get(up.id)) is not None and cached[0] == len(DATA)
    assert blobs.reads == []  # the second writer went on from the committed state
    done, node = await uploads.finish_upload(ALICE, up.id)
    assert done.state == UploadState.COMPLETED and node is not None
    assert node.sha256 == sha256(other) and fakes.content(node.id) == other and blobs.read_bytes == 0


async def test_a_hash_that_could_not_catch_up_leaves_finishing_to_hash_it_all(
    fakes: StorageFakes, blobs: CountingBlobs
) -> None:
    a = replica(fakes)
    up = await a.create_upload(ALICE, "root", "f.bin", len(DATA), sha256(DATA), "")
    await send(a, up.id, 0, 100)
    b = replica(fakes)
    blobs.fail_staging_reads = True  # b's catch-up read fails: b writes on without a hash
    async with b.writer(ALICE, up.id) as stream:
        await stream.open(100)
        blobs.fail_staging_reads = False
        await write(stream, DATA[100:])
        assert await stream.flush(release=True) == len(DATA)
    assert len(b.hashes) == 0  # nothing known, nothing cached
    _, node = await b.finish_upload(ALICE, up.id)
    assert node is not None and node.sha256 == sha256(DATA)
    assert blobs.reads[-1] == ("staging", 0, len(DATA)) and blobs.read_bytes == len(DATA)


def test_the_cache_is_bounded_keeps_the_furthest_state_and_hands_out_copies() -> None:
    hashes = UploadHashes(capacity=2)
    h = hashlib.sha256(b"abc")
    hashes.put("u1", 3, h.copy())
    hashes.put("u1", 1, hashlib.sha256(b"a"))  # a state behind the cached one: the cached one stays
    got = hashes.get("u1")
    assert got is not None and got[0] == 3 and got[1].hexdigest() == h.hexdigest()
    got[1].update(b"more")  # the caller's copy
    again = hashes.get("u1")
    assert again is not None and again[1].hexdigest() == h.hexdigest()
    hashes.put("u2", 1, hashlib.sha256(b"x"))
    hashes.get("u1")  # used last: u2 is the oldest now
    hashes.put("u3", 1, hashlib.sha256(b"y"))
    assert len(hashes) == 2 and hashes.get("u2") is None and hashes.get("u1") is not None
    hashes.forget("u1")
    assert hashes.get("u1") is None and len(hashes) == 1
