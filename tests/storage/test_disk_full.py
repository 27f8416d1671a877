"""EncryptedBlobStore on a real full disk (a small tmpfs): DiskFull naming the disk, nothing half-written kept,
and the same upload goes on once space is freed (tests/e2e/test_faults.py does the same through the gateway)."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flowdock_kernel.errors import DiskFull
from storage_svc import envelope as env
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.keyring import Keyring
from tests.support.mesh import REQUIRE_SERVERS

SEG = 64 * 1024


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root, or mount rights in a user namespace, needed)."""
    path = tmp_path / "disk"
    path.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True)
    if run.returncode != 0:
        why = f"cannot mount a small tmpfs here ({run.stderr.decode(errors='replace').strip()}); run as root"
        if REQUIRE_SERVERS:
            pytest.fail(f"{why} (FLOWDOCK_REQUIRE_SERVERS=1: CI machines can, so this must run)")
        pytest.skip(why)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int = 0) -> Path:
    filler = path / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        for block in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, bytes(block))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return filler


async def collect(it: AsyncIterator[bytes]) -> bytes:
    out = bytearray()
    async for block in it:
        out += block
    return bytes(out)


def store_on(disk: Path, keys: Path) -> EncryptedBlobStore:
    return EncryptedBlobStore(disk / "storage", Keyring(keys / "keyring.json"), segment_size=SEG)


async def test_a_write_that_does_not_fit_is_cut_and_the_upload_resumes(disk: Path, tmp_path: Path) -> None:
    store = store_on(disk, tmp_path)
    data = random.Random(3).randbytes(3 * SEG + 5_000)
    uid = str(uuid.uuid4())
    await store.create_staging(uid)
    await store.write_staging(uid, 0, data[: SEG + 1_000])
    await store.sync_staging(uid)  # committed: SEG + 1,000 (the partial segment in the journal)
    filler = fill(disk)
    with pytest.raises(DiskFull) as full:
        await store.write_staging(uid, SEG + 1_000, data[SEG + 1_000 :])
    assert str(disk / "storage") in full.value.message and "not your storage quota" in full.value.message
    assert (store.staging / uid).stat().st_size <= env.segment_offset(SEG, 1)  # what the write appended is gone
    with pytest.raises(DiskFull):
        await store.create_staging(str(uuid.uuid4()))
    assert sorted(p.name for p in store.staging.iterdir()) == [uid, f"{uid}.tail"]  # nothing left by the refusal
    filler.unlink()
    # A new writer (as after the refused request) resumes at the committed size.
    store._forget(uid)
    await store.write_staging(uid, SEG + 1_000, data[SEG + 1_000 :])
    await store.sync_staging(uid)
    await store.commit_staging(uid, "blob" + uid[:8], len(data))
    assert await collect(store.read("blob" + uid[:8], 0, len(data), SEG)) == data


async def test_a_final_segment_that_does_not_fit_leaves_the_upload_as_it_was(disk: Path, tmp_path: Path) -> None:
    store = store_on(disk, tmp_path)
    data = random.Random(4).randbytes(2 * SEG + 60_000)
    uid, blob = str(uuid.uuid4()), "blob" + uuid.uuid4().hex[:8]
    await store.create_staging(uid)
    await store.write_staging(uid, 0, data)
    await store.sync_staging(uid)
    size = (store.staging / uid).stat().st_size
    filler = fill(disk, leave=16 * 1024)
    with pytest.raises(DiskFull):
        await store.commit_staging(uid, blob, len(data))
    assert (store.staging / uid).stat().st_size == size  # the torn final segment was cut
    assert not list(store.blobs.glob("*/*/*"))
    filler.unlink()
    await store.commit_staging(uid, blob, len(data))
    assert await collect(store.read(blob, 0, len(data), SEG)) == data
    assert not list(store.staging.iterdir())
