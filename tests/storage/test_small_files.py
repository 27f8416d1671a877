"""Small files in one call (issue 15): one short transaction and one durable blob write per file, and concurrent
files sharing transactions (group commit) without changing anyone's answer. Real SQLite and PostgreSQL, a real
EncryptedBlobStore; the fsync counts come from spying on the real system calls."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowdock_kernel.errors import AlreadyExists, ResourceExhausted
from storage_svc.domain import UploadState
from tests.storage.test_upload_writes import DATABASES, Stack, on_both


def _work(statements: list[str]) -> list[str]:
    return [q for q in statements if not q.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls of os.<name> (still made: the disk really flushes)."""
    calls: list[int] = []
    real: Callable[[int], None] = getattr(os, name)

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, name, counted)
    return calls


async def _content(s: Stack, blob_id: str, size: int) -> bytes:
    """The bytes as another process finds them on disk."""
    return b"".join([b async for b in s.blob_store().read(blob_id, 0, size, 1 << 20)])


@DATABASES
def test_a_small_file_is_one_transaction_and_one_durable_write(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lone single-call upload: one transaction of six statements (folder, quota, file, version, upload, audit
    event), one fdatasync of the blob, and its directory fsynced; a lone client waits for no batch."""

    async def body(s: Stack) -> None:
        user = str(uuid.uuid4())
        content = os.urandom(1024)
        await s.uploads.upload_inline(user, "", "first.bin", content, len(content), "", "")  # makes the root
        s.statements.clear()
        datasyncs, syncs = _spy(monkeypatch, "fdatasync"), _spy(monkeypatch, "fsync")
        upload, node = await s.uploads.upload_inline(user, "", "f.bin", content, len(content), "", "")
        assert upload.state == UploadState.COMPLETED and node is not None
        assert _work(s.statements) == [
            "SELECT NODES.ID,",
            "UPDATE QUOTAS",
            "INSERT INTO",
            "INSERT INTO",
            "INSERT INTO",
            "INSERT INTO",
        ], s.statements
        assert sum(q.startswith("BEGIN") for q in s.statements) <= 1
        assert len(datasyncs) == 1  # the blob
        assert 1 <= len(syncs) <= 3  # its directory (and the shard directories, the first time one is made)
        assert await _content(s, node.blob_id, len(content)) == content
        assert node.sha256 == hashlib.sha256(content).hexdigest()

    on_both(body, tmp_path, database)


@DATABASES
def test_concurrent_small_files_share_transactions(tmp_path: Path, database: str) -> None:
    """16 users sending 4 files each at once: every file is committed whole, in fewer transactions than files
    (each transaction: one UPDATE per owner, one INSERT per table)."""

    async def body(s: Stack) -> None:
        users = [str(uuid.uuid4()) for _ in range(16)]
        for user in users:  # roots made, so every file below can go in a batch
            await s.uploads.upload_inline(user, "", "first.bin", b"x", 1, "", "")
        s.statements.clear()
        contents = {(u, f"f{i}.bin"): os.urandom(1024) for u in users for i in range(4)}

        async def send(user: str, name: str) -> Any:
            data = contents[user, name]
            return await s.uploads.upload_inline(user, "", name, data, len(data), "", "")

        done = await asyncio.gather(*(send(u, n) for u, n in contents))
        for (user, name), (upload, node) in zip(contents, done, strict=True):
            assert upload.state == UploadState.COMPLETED and node.name == name and node.owner_id == user
            assert await _content(s, node.blob_id, 1024) == contents[user, name]
        inserts = sum(q == "INSERT INTO" for q in _work(s.statements))
        assert inserts <= 4 * len(contents) // 2, f"{inserts} INSERTs for {len(contents)} files: no batching"
        charges = sum(q == "UPDATE QUOTAS" for q in _work(s.statements))
        assert charges <= len(contents) // 2, f"{charges} quota UPDATEs for {len(contents)} files"
        async with s.uploads.uow(read_only=True) as uow:
            for user in users:
                assert (await uow.quotas.get(user, 1 << 40)).used == 1 + 4 * 1024

    on_both(body, tmp_path, database)


@DATABASES
def test_a_refusal_in_a_batch_refuses_only_that_file(tmp_path: Path, database: str) -> None:
    """A name sent twice at once and a user over quota, among others' files: exactly one of the twins lands, the
    over-quota user gets RESOURCE_EXHAUSTED for what does not fit, everyone else's files land; a refused file's
    blob is gone."""

    async def body(s: Stack) -> None:
        users = [str(uuid.uuid4()) for _ in range(6)]
        tight = users[0]
        for user in users:
            await s.uploads.upload_inline(user, "", "first.bin", b"x", 1, "", "")
        async with s.uploads.uow() as uow:
            await uow.quotas.set_limit(tight, 1 + 1500)
            await uow.commit()
        twin = users[1]
        jobs = [(tight, "a.bin"), (tight, "b.bin"), (twin, "same.bin"), (twin, "same.bin")]
        jobs += [(u, f"{i}.bin") for u in users[2:] for i in range(3)]

        async def send(user: str, name: str) -> Any:
            return await s.uploads.upload_inline(user, "", name, os.urandom(1024), 1024, "", "")

        outcomes = await asyncio.gather(*(send(u, n) for u, n in jobs), return_exceptions=True)
        by_job = list(zip(jobs, outcomes, strict=True))
        tight_out = [o for (u, _), o in by_job if u == tight]
        assert sum(isinstance(o, ResourceExhausted) for o in tight_out) == 1, tight_out
        twin_out = [o for (u, _), o in by_job if u == twin]
        assert sum(isinstance(o, AlreadyExists) for o in twin_out) == 1, twin_out
        others = [o for (u, _), o in by_job if u not in (tight, twin)]
        assert all(isinstance(o, tuple) and o[0].state == UploadState.COMPLETED for o in others), others
        landed = [o[1].blob_id for _, o in by_job if isinstance(o, tuple)]
        assert len(landed) == len(jobs) - 2
        blobs = {b for b, _ in s.blob_store().list_blobs()}
        assert set(landed) <= blobs
        assert len(blobs) == len(landed) + len(users)  # the refused files' blobs were removed (+ the first files)
        async with s.uploads.uow(read_only=True) as uow:
            assert (await uow.quotas.get(tight, 1 << 40)).used == 1 + 1024
            assert (await uow.quotas.get(twin, 1 << 40)).used == 1 + 1024

    on_both(body, tmp_path, database)
