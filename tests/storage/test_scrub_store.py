"""The scrub's adapters for real: EncryptedBlobStore.verify paced unit by unit (and DataLoss on a flipped bit), the
`scrub_state` lease as compare-and-swap and the walk by blob id on SQLite and PostgreSQL (migrated as the service
migrates), and a pass over real blobs writing its `storage.damaged` event into the audit outbox in the transaction
that saves the position."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from flowdock_kernel import db
from flowdock_kernel.audit import Outbox, audit_outbox
from flowdock_kernel.clock import SystemClock
from flowdock_kernel.errors import DataLoss
from flowdock_kernel.incarnation import PROCESS
from storage_svc import envelope as env
from storage_svc.adapters import SqlUnitOfWork
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.bootstrap import MIGRATIONS
from storage_svc.domain import Version
from storage_svc.keyring import Keyring
from storage_svc.usecases.scrub import Scrubber
from tests.support.fakes_storage import FakeScrubMonitor
from tests.support.mesh import PG_URL, drop_databases, need_postgres

MiB = 1024 * 1024
SEGMENT = 64 * 1024
DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"])


def flip(path: Path, segment: int) -> None:
    at = env.HEADER_SIZE + segment * env.stride(SEGMENT) + env.NONCE + 7
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x80]))


async def test_a_paced_verify_reads_unit_by_unit_and_accounts_every_stored_byte(tmp_path: Path) -> None:
    store = EncryptedBlobStore(tmp_path / "storage", Keyring(tmp_path / "keyring.json"), segment_size=SEGMENT)
    data = os.urandom(3 * MiB + 1000)
    await store.put("up-1", "blob-paced", data)
    paced: list[int] = []

    async def pace(n: int) -> None:
        paced.append(n)

    assert await store.verify("blob-paced", pace) == len(data)
    path = next((tmp_path / "storage" / "blobs").glob("*/*/blob-paced"))
    assert sum(paced) == path.stat().st_size  # every stored byte, header and final segment included
    assert len(paced) == 1 + 4  # opening (header + final segment), then one call per MiB unit
    flip(path, 5)  # inside the first unit
    paced.clear()
    with pytest.raises(DataLoss):
        await store.verify("blob-paced", pace)
    assert len(paced) == 1  # nothing of the damaged unit counted as verified
    with pytest.raises(DataLoss):
        await store.verify("blob-paced")  # fsck's unpaced path says the same


@dataclass
class Stack:
    uow: Callable[..., SqlUnitOfWork]
    store: EncryptedBlobStore
    engine: AsyncEngine


@asynccontextmanager
async def stack(url: str, root: Path) -> AsyncIterator[Stack]:
    sync_url = make_url(url).set(drivername="sqlite" if url.startswith("sqlite") else "postgresql+psycopg")
    db.ensure_database(sync_url)
    db.migrate(sync_url, MIGRATIONS)
    engine = db.make_engine(make_url(url), sqlite_immediate=True)
    sessions = db.connections(engine)

    async def send(batch: object) -> None:
        return None

    outbox = Outbox(engine, service="storage", send=send)

    def uow(*, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions, outbox, read_only=read_only)

    try:
        store = EncryptedBlobStore(root / "storage", Keyring(root / "keyring.json"), segment_size=SEGMENT)
        yield Stack(uow, store, engine)
    finally:
        await engine.dispose()


def on_both(body: Callable[[Stack], Awaitable[None]], tmp_path: Path, database: str) -> None:
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
        prefix = ""
    else:
        need_postgres()
        prefix = f"fdscr_{uuid.uuid4().hex[:8]}"
        url = f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{prefix}_storage"

    async def run() -> None:
        async with stack(url, tmp_path) as s:
            await body(s)

    try:
        asyncio.run(run())
    finally:
        if prefix:
            drop_databases(prefix)


async def add_version(s: Stack, blob_id: str, data: bytes, owner: str = "alice") -> Version:
    await s.store.put(f"up-{blob_id}", blob_id, data)
    version = Version(
        id=str(uuid.uuid4()),
        node_id=str(uuid.uuid4()),
        owner_id=owner,
        number=1,
        blob_id=blob_id,
        size=len(data),
        sha256="0" * 64,
        content_type="application/octet-stream",
        created_at=datetime.now(UTC),
    )
    async with s.uow() as uow:
        await uow.versions.add(version)
        await uow.commit()
    return version


@DATABASES
def test_the_lease_is_a_compare_and_swap_and_the_walk_goes_by_blob_id(tmp_path: Path, database: str) -> None:
    async def body(s: Stack) -> None:
        for blob_id in ("blob-c", "blob-a", "blob-b"):
            await add_version(s, blob_id, b"x" * 10)
        now = datetime.now(UTC)
        async with s.uow() as uow:
            assert (await uow.scrub.state()).position == ""  # the row the migration made
            assert await uow.scrub.claim("A", now + timedelta(seconds=60), now) is not None
            assert await uow.scrub.claim("B", now + timedelta(seconds=60), now) is None  # held
            assert await uow.scrub.claim("A", now + timedelta(seconds=60), now) is not None  # its own
            state = await uow.scrub.state()
            assert not await uow.scrub.save("B", state, now)  # not the holder
            assert await uow.scrub.take_over("B", "C", now) is None  # B never held it
            assert (await uow.scrub.take_over("A", "B", now + timedelta(seconds=60))) is not None
            assert not await uow.scrub.save("A", state, now)  # A lost it
            assert [b.blob_id for b in await uow.scrub.blobs_after("", 10)] == ["blob-a", "blob-b", "blob-c"]
            assert [b.blob_id for b in await uow.scrub.blobs_after("blob-a", 1)] == ["blob-b"]
            assert await uow.scrub.count() == 3 and await uow.scrub.count("blob-b") == 1
            await uow.scrub.release("B")
            await uow.commit()
        later = now + timedelta(seconds=1)
        async with s.uow() as uow:  # released: anyone may take it; a lapsed lease too
            assert await uow.scrub.claim("D", later, later) is not None
            assert await uow.scrub.claim("E", later + timedelta(seconds=5), later + timedelta(seconds=2)) is not None
            await uow.commit()

    on_both(body, tmp_path, database)


@DATABASES
def test_a_pass_over_real_blobs_records_the_damage_with_the_saved_position(tmp_path: Path, database: str) -> None:
    async def body(s: Stack) -> None:
        await add_version(s, "blob-good", os.urandom(200_000))
        bad = await add_version(s, "blob-hurt", os.urandom(300_000), owner="bob")
        flip(next((tmp_path / "storage" / "blobs").glob("*/*/blob-hurt")), 2)
        monitor = FakeScrubMonitor()
        scrubber = Scrubber(
            uow=s.uow,
            blobs=s.store,
            clock=SystemClock(),
            holders=PROCESS,
            monitor=monitor,
            fraction_per_day=1.0,
            bytes_per_second=1 << 40,
        )
        report = await scrubber.run_pass(from_start=True)
        assert report.blobs == 2 and report.passes_completed == 1
        assert [d.blob.blob_id for d in report.damaged] == ["blob-hurt"] and monitor.damaged_blobs == 1
        good = next((tmp_path / "storage" / "blobs").glob("*/*/blob-good")).stat().st_size
        assert good < monitor.bytes < good + 300_000  # all of the good one, the damaged one until the damage
        async with s.uow(read_only=True) as uow:
            state = await uow.scrub.state()
        assert state.position == "" and state.last_pass_at is not None and state.holder is None
        async with s.engine.connect() as conn:
            events = [json.loads(e) for e in (await conn.execute(sa.select(audit_outbox.c.event))).scalars()]
        damaged = [e for e in events if e["kind"] == "storage.damaged"]
        assert len(damaged) == 1 and damaged[0]["subject_id"] == "bob"
        assert damaged[0]["details"]["blob_id"] == "blob-hurt" and damaged[0]["details"]["version_id"] == bad.id

    on_both(body, tmp_path, database)
