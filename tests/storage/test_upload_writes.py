"""The upload use cases on a real database and a real EncryptedBlobStore, in process: what one chunk costs in
statements (issue 15: each chunk request cost ~6.5 ms of mesh time, most of it three transactions), that the
cheaper path still refuses what it refused (wrong caller, wrong offset, a held upload) without taking the hold,
and that what it acknowledges is on disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from flowdock_kernel import db
from flowdock_kernel.audit import Outbox
from flowdock_kernel.clock import SystemClock
from flowdock_kernel.errors import Aborted, FailedPrecondition, NotFound
from storage_svc.adapters import SqlUnitOfWork
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.bootstrap import MIGRATIONS
from storage_svc.domain import UploadState
from storage_svc.keyring import Keyring
from storage_svc.scanner import DisabledScanner
from storage_svc.usecases import Access, Housekeeping, Limits, Tree, Uploads
from tests.support.mesh import PG_URL, drop_databases, need_postgres

MiB = 1024 * 1024


class NoShares:
    """Every caller here writes their own files: the share policy is never asked."""

    async def decide(self, path: list[str], owner_id: str, action: str) -> Any:
        raise AssertionError("no shares in these tests")


@dataclass
class Stack:
    uploads: Uploads
    statements: list[str]
    root: Path

    def blob_store(self) -> EncryptedBlobStore:
        """Another instance over the same files: what a restarted process (or another replica) finds on disk."""
        return EncryptedBlobStore(self.root / "storage", Keyring(self.root / "keyring.json"))


@asynccontextmanager
async def stack(url: str, root: Path) -> AsyncIterator[Stack]:
    sync_url = make_url(url).set(drivername="sqlite" if url.startswith("sqlite") else "postgresql+psycopg")
    db.ensure_database(sync_url)
    db.migrate(sync_url, MIGRATIONS)
    engine = db.make_engine(make_url(url), sqlite_immediate=True)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()[:2]).upper())

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    sessions = db.connections(engine)

    async def send(batch: Any) -> None:
        return None

    outbox = Outbox(engine, service="storage", send=send)

    def uow(*, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions, outbox, read_only=read_only)

    blobs = EncryptedBlobStore(root / "storage", Keyring(root / "keyring.json"))
    clock = SystemClock()
    limits = Limits(
        chunk_bytes=MiB,
        max_chunk_bytes=16 * MiB,
        max_file_bytes=1 << 40,
        upload_expiry=timedelta(hours=1),
        sync_bytes=8 * MiB,
        list_page_size=100,
        list_max_page_size=1000,
        default_quota_bytes=1 << 40,
    )
    access = Access(uow=uow, policy=NoShares(), clock=clock)
    tree = Tree(uow=uow, blobs=blobs, access=access, limits=limits, clock=clock)
    uploads = Uploads(
        uow=uow,
        blobs=blobs,
        access=access,
        tree=tree,
        limits=limits,
        scanner=DisabledScanner(),
        events=outbox,
        clock=clock,
    )
    try:
        yield Stack(uploads, statements, root)
    finally:
        await engine.dispose()


def on_both(body: Callable[[Stack], Awaitable[None]], tmp_path: Path, database: str) -> None:
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"

        async def run() -> None:
            async with stack(url, tmp_path) as s:
                await body(s)

        asyncio.run(run())
        return
    need_postgres()
    prefix = f"fdupw_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{prefix}_storage"

    async def run_pg() -> None:
        async with stack(url, tmp_path) as s:
            await body(s)

    try:
        asyncio.run(run_pg())
    finally:
        drop_databases(prefix)


DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"])


@DATABASES
def test_a_chunk_is_two_statements_and_durable(tmp_path: Path, database: str) -> None:
    """One WriteUploadChunk: one UPDATE … RETURNING takes the hold and reads the upload, one UPDATE records the
    committed size and lets the hold go; no SELECT, no third transaction. The acknowledged bytes are on disk."""

    async def body(s: Stack) -> None:
        user = str(uuid.uuid4())
        data = os.urandom(3 * MiB + 5)
        up = await s.uploads.create_upload(user, "", "f.bin", len(data), "", "application/octet-stream")
        assert await s.uploads.write_chunk(user, up.id, 0, data[:MiB]) == MiB
        s.statements.clear()
        assert await s.uploads.write_chunk(user, up.id, MiB, data[MiB : 2 * MiB + 7]) == 2 * MiB + 7
        work = [q for q in s.statements if not q.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
        assert work == ["UPDATE UPLOADS", "UPDATE UPLOADS"], s.statements
        assert sum(q.startswith("BEGIN") for q in s.statements) <= 2
        # What was acknowledged is durable: a fresh store (another process) reads it back from the files.
        got = b"".join([b async for b in s.blob_store().read_staging(up.id, 2 * MiB + 7, MiB)])
        assert got == data[: 2 * MiB + 7]
        # The hold is gone: a stream writer may take it at once.
        async with s.uploads.writer(user, up.id) as writer:
            assert await writer.open(2 * MiB + 7) == 2 * MiB + 7
            await writer.write(data[2 * MiB + 7 :])
            assert await writer.flush(release=True) == len(data)
        done, node = await s.uploads.finish_upload(user, up.id)
        assert done.state == UploadState.COMPLETED and node is not None
        assert node.sha256 == hashlib.sha256(data).hexdigest()

    on_both(body, tmp_path, database)


@DATABASES
def test_refusals_take_no_hold(tmp_path: Path, database: str) -> None:
    """Another caller, a wrong offset, a held upload and a finished one are refused as before, and a refused call
    leaves the hold where it was (a wrong offset does not lock the rightful writer out)."""

    async def body(s: Stack) -> None:
        user, other = str(uuid.uuid4()), str(uuid.uuid4())
        up = await s.uploads.create_upload(user, "", "f.bin", 10, "", "application/octet-stream")
        with pytest.raises(NotFound):
            await s.uploads.write_chunk(other, up.id, 0, b"abc")
        with pytest.raises(NotFound):
            await s.uploads.write_chunk(user, str(uuid.uuid4()), 0, b"abc")
        with pytest.raises(FailedPrecondition) as wrong:
            await s.uploads.write_chunk(user, up.id, 3, b"abc")
        assert "0" in wrong.value.message
        assert await s.uploads.write_chunk(user, up.id, 0, b"abc") == 3  # nothing above held it
        async with s.uploads.writer(user, up.id) as holder:
            await holder.open(3)
            with pytest.raises(Aborted):
                await s.uploads.write_chunk(user, up.id, 3, b"def")
            with pytest.raises(FailedPrecondition):  # the offset is checked before the hold, as before
                await s.uploads.write_chunk(user, up.id, 5, b"def")
        assert await s.uploads.write_chunk(user, up.id, 3, b"defghij") == 10
        await s.uploads.finish_upload(user, up.id)
        with pytest.raises(FailedPrecondition):
            await s.uploads.write_chunk(user, up.id, 10, b"")
        async with s.uploads.uow(read_only=True) as uow:
            row = await uow.uploads.get(up.id)
        assert row is not None and row.state == UploadState.COMPLETED and row.writer_until is None

    on_both(body, tmp_path, database)


def test_claim_reads_what_get_reads(tmp_path: Path) -> None:
    """The claiming statement returns the same upload `get` reads (RETURNING every column)."""

    async def body(s: Stack) -> None:
        user = str(uuid.uuid4())
        up = await s.uploads.create_upload(user, "", "f.bin", 10, "", "text/plain")
        async with s.uploads.uow() as uow:
            clock = s.uploads.clock
            claimed = await uow.uploads.claim(up.id, "t" * 32, clock.now() + timedelta(seconds=60), clock.now())
            got = await uow.uploads.get(up.id)
        assert claimed is not None and claimed == got

    on_both(body, tmp_path, "sqlite")


DEAD_HOLDER = "from flowdock_kernel.incarnation import PROCESS; print(PROCESS.token())"


@DATABASES
def test_a_hold_whose_process_died_is_taken_over_at_once_on_the_real_database(tmp_path: Path, database: str) -> None:
    """A writer lease held by a process that has ended (a killed replica) is taken over by the next writer at once,
    on both databases (compare and swap on the dead token); one held by this live process is not."""
    dead = subprocess.run([sys.executable, "-c", DEAD_HOLDER], capture_output=True, text=True, check=True)
    dead_token = dead.stdout.strip()

    async def body(s: Stack) -> None:
        user = str(uuid.uuid4())
        data = os.urandom(MiB + 3)
        up = await s.uploads.create_upload(user, "", "f.bin", len(data), "", "application/octet-stream")
        assert await s.uploads.write_chunk(user, up.id, 0, data[:MiB]) == MiB
        async with s.uploads.uow() as uow:
            now = s.uploads.clock.now()
            assert await uow.uploads.acquire(up.id, dead_token, now + timedelta(seconds=60), now, UploadState.OPEN)
            await uow.commit()
        async with s.uploads.writer(user, up.id) as writer:
            assert await writer.open(MiB) == MiB  # no 45 s wait for the lease to lapse
            with pytest.raises(Aborted):  # and the new holder, alive, keeps it
                await s.uploads.write_chunk(user, up.id, MiB, data[MiB:])
            await writer.write(data[MiB:])
            assert await writer.flush(release=True) == len(data)
        done, node = await s.uploads.finish_upload(user, up.id)
        assert done.state == UploadState.COMPLETED and node is not None
        assert node.sha256 == hashlib.sha256(data).hexdigest()

    on_both(body, tmp_path, database)


@DATABASES
def test_a_finish_whose_finisher_died_is_resumed_by_housekeeping_at_once(tmp_path: Path, database: str) -> None:
    """A FINISHING upload whose finisher's process ended (a replica killed mid-finish) is picked up by the next
    housekeeping round (which runs first thing when a replica starts), not once its lease lapses; a finish held by
    a live process is left alone."""
    dead = subprocess.run([sys.executable, "-c", DEAD_HOLDER], capture_output=True, text=True, check=True)

    async def body(s: Stack) -> None:
        u = s.uploads
        housekeeping = Housekeeping(uow=u.uow, blobs=u.blobs, tree=u.tree, uploads=u, limits=u.limits, clock=u.clock)
        user = str(uuid.uuid4())
        data = os.urandom(MiB + 7)
        ups = []
        for token in (dead.stdout.strip(), u.holders.token()):
            up = await u.create_upload(user, "", f"{token[-4:]}.bin", len(data), "", "application/octet-stream")
            assert await u.write_chunk(user, up.id, 0, data) == len(data)
            async with u.uow() as uow:
                now = u.clock.now()
                assert await uow.uploads.acquire(up.id, token, now + timedelta(seconds=60), now, UploadState.FINISHING)
                await uow.commit()
            ups.append(up)
        assert (await housekeeping.run_once())["resumed_finishes"] == 1
        await asyncio.gather(*u._tasks)
        orphaned, live = [(await u.get_upload(user, up.id))[0] for up in ups]
        assert orphaned.state == UploadState.COMPLETED
        assert live.state == UploadState.FINISHING  # its (live) finisher's business

    on_both(body, tmp_path, database)
