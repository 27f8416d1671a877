"""The small-file path of create + write + finish (issue 15 item 3) on a real database and a real EncryptedBlobStore:
create leaves nothing on disk, the whole-file chunk is one blob file and one write transaction, finishing only
reads; a small file sent in pieces makes its staging file at the first write and finishes as before."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from pathlib import Path

from storage_svc.domain import UploadState
from storage_svc.usecases import Uploads
from tests.storage.test_upload_writes import DATABASES, Stack, on_both

MiB = 1024 * 1024


def _small(uploads: Uploads) -> None:
    uploads.limits = dataclasses.replace(uploads.limits, small_upload_bytes=MiB)


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


@DATABASES
def test_a_whole_small_file_is_one_blob_write_and_one_write_transaction(tmp_path: Path, database: str) -> None:
    async def body(s: Stack) -> None:
        _small(s.uploads)
        user = str(uuid.uuid4())
        await s.uploads.upload_inline(user, "", "first", b"x", 1, "", "")  # the user's root exists
        staging, blobs = s.root / "storage" / "staging", s.root / "storage" / "blobs"
        before = _files(blobs)
        data = os.urandom(1024)
        up = await s.uploads.create_upload(user, "", "f.bin", len(data), hashlib.sha256(data).hexdigest(), "")
        assert _files(staging) == [] and _files(blobs) == before  # create wrote nothing to disk
        s.statements.clear()
        assert await s.uploads.write_chunk(user, up.id, 0, data) == len(data)
        writes = [q for q in s.statements if q.startswith(("UPDATE", "INSERT", "DELETE"))]
        assert writes and all(not q.startswith("DELETE") for q in writes), s.statements
        if database == "sqlite":  # BEGINs are statements here: one read, one write transaction
            assert [q for q in s.statements if q.startswith("BEGIN")] == ["BEGIN", "BEGIN IMMEDIATE"], s.statements
        assert _files(staging) == [] and len(_files(blobs)) == len(before) + 1
        s.statements.clear()
        done, node = await s.uploads.finish_upload(user, up.id)
        assert done.state == UploadState.COMPLETED and node is not None and node.size == len(data)
        assert not [q for q in s.statements if q.startswith(("UPDATE", "INSERT", "DELETE"))], s.statements
        assert node.sha256 == hashlib.sha256(data).hexdigest()
        # Durable and readable by another process: a fresh store over the same files.
        got = b"".join([b async for b in s.blob_store().read(node.blob_id, 0, len(data), MiB)])
        assert got == data
        async with s.uploads.uow(read_only=True) as uow:
            row = await uow.uploads.get(up.id)
            usage = await uow.quotas.get(user, 1 << 40)
        assert row is not None and row.committed_size == len(data) and row.writer_until is None
        assert (usage.used, usage.reserved) == (1 + len(data), 0)

    on_both(body, tmp_path, database)


@DATABASES
def test_a_small_file_in_pieces_stages_at_its_first_write(tmp_path: Path, database: str) -> None:
    async def body(s: Stack) -> None:
        _small(s.uploads)
        user = str(uuid.uuid4())
        data = os.urandom(200_000)
        up = await s.uploads.create_upload(user, "", "p.bin", len(data), "", "")
        staging = s.root / "storage" / "staging"
        assert _files(staging) == []
        assert await s.uploads.write_chunk(user, up.id, 0, data[:70_000]) == 70_000
        assert up.id in _files(staging)
        # What was acknowledged is durable: a fresh store reads it back.
        got = b"".join([b async for b in s.blob_store().read_staging(up.id, 70_000, MiB)])
        assert got == data[:70_000]
        assert await s.uploads.write_chunk(user, up.id, 70_000, data[70_000:]) == len(data)
        done, node = await s.uploads.finish_upload(user, up.id)
        assert done.state == UploadState.COMPLETED and node is not None
        assert node.sha256 == hashlib.sha256(data).hexdigest() and _files(staging) == []
        back = b"".join([b async for b in s.blob_store().read(node.blob_id, 0, len(data), MiB)])
        assert back == data

    on_both(body, tmp_path, database)


@DATABASES
def test_an_empty_small_upload_finishes(tmp_path: Path, database: str) -> None:
    async def body(s: Stack) -> None:
        _small(s.uploads)
        user = str(uuid.uuid4())
        up = await s.uploads.create_upload(user, "", "empty", 0, "", "")
        done, node = await s.uploads.finish_upload(user, up.id)
        assert done.state == UploadState.COMPLETED and node is not None and node.size == 0
        assert node.sha256 == hashlib.sha256(b"").hexdigest()
        assert await s.blob_store().verify(node.blob_id) == 0
        assert _files(s.root / "storage" / "staging") == []

    on_both(body, tmp_path, database)
