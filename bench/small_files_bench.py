"""Small files in one call, in process (issue 15): what storage_svc's use case costs without the gateway, the
network and the other services, and what group commit changes, beside the durable floor, in one run.

    python bench/small_files_bench.py                                   # SQLite in a temp dir
    python bench/small_files_bench.py --db postgresql://postgres@127.0.0.1:5432 --files 400

Rows: the durable floor (plaintext create+write+fdatasync+rename+dir fsync, and EncryptedBlobStore.put); one
client's `upload_inline` p50/p95 and CPU-ms per file; --clients concurrent clients (each its own user) with group
commit, and the same with batches of one (every file its own transaction, as before group commit), files/s and
statements per file; and the three calls (create_upload + write_chunk + finish_upload, one client) with the
small-file path (storage_small_upload_bytes: create stages nothing, the whole-file chunk is written once as the final
blob and completes the upload) and without it (0: the resumable path, as before), with statements, transactions
(BEGINs, reads included) and commits per file. The real use case over a real database and EncryptedBlobStore; the
in-process counterpart of paths_bench.py's "small" rows (which add Envoy, the mesh's TLS and the REST transcoding).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench._common import pct, small_floor  # noqa: E402
from flowdock_kernel import db  # noqa: E402
from flowdock_kernel.audit import Outbox  # noqa: E402
from flowdock_kernel.clock import SystemClock  # noqa: E402
from storage_svc.adapters import SqlUnitOfWork  # noqa: E402
from storage_svc.blobstore import EncryptedBlobStore  # noqa: E402
from storage_svc.bootstrap import MIGRATIONS  # noqa: E402
from storage_svc.domain import UploadState  # noqa: E402
from storage_svc.keyring import Keyring  # noqa: E402
from storage_svc.scanner import DisabledScanner  # noqa: E402
from storage_svc.usecases import Access, Limits, Tree, Uploads  # noqa: E402

MiB = 1024 * 1024


class NoShares:
    async def decide(self, path: list[str], owner_id: str, action: str) -> Any:
        raise AssertionError("no shares here")


async def run(args: argparse.Namespace, base: Path) -> list[tuple[str, str]]:
    if args.db:
        name = f"fdsmallbench_{uuid.uuid4().hex[:8]}"
        url = f"{args.db.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    else:
        url = f"sqlite+aiosqlite:///{base / 'storage.db'}"
    sync_url = make_url(url).set(drivername="sqlite" if url.startswith("sqlite") else "postgresql+psycopg")
    db.ensure_database(sync_url)
    db.migrate(sync_url, MIGRATIONS)
    engine = db.make_engine(make_url(url), sqlite_immediate=True)
    statements = [0]
    transactions = [0, 0]  # begun, committed

    def seen(*_: Any) -> None:
        statements[0] += 1

    def begun(*_: Any) -> None:
        transactions[0] += 1

    def committed(*_: Any) -> None:
        transactions[1] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    event.listen(engine.sync_engine, "begin", begun)
    event.listen(engine.sync_engine, "commit", committed)

    async def send(batch: Any) -> None:
        return None

    outbox = Outbox(engine, service="storage", send=send)
    sessions = db.connections(engine)

    def uow(*, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions, outbox, read_only=read_only)

    blobs = EncryptedBlobStore(base / "storage", Keyring(base / "keyring.json"))
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

    def uploads(batch: int, small: int = 0) -> Uploads:
        u = Uploads(
            uow=uow,
            blobs=blobs,
            access=access,
            tree=tree,
            limits=dataclasses.replace(limits, small_upload_bytes=small),
            scanner=DisabledScanner(),
            events=outbox,
            clock=clock,
        )
        u._small_files().max_batch = batch  # 1: every file its own transaction (no group commit)
        return u

    content = os.urandom(1024)
    rows: list[tuple[str, str]] = []
    try:
        floor = await small_floor(base, content, min(args.files, 200))
        rows.append(("durable floor: plaintext syscalls, p50 / p95", _ms(floor["plain"])))
        rows.append(("durable floor: EncryptedBlobStore.put, p50 / p95", _ms(floor["enc"])))
        one = uploads(64)
        user = str(uuid.uuid4())
        for i in range(20):
            await one.upload_inline(user, "", f"w{i}", content, len(content), "", "")
        times = []
        cpu, n0 = time.process_time(), statements[0]
        for i in range(args.files):
            t = time.perf_counter()
            await one.upload_inline(user, "", f"s{i}", content, len(content), "", "")
            times.append(time.perf_counter() - t)
        cpu_ms = (time.process_time() - cpu) / args.files * 1000
        per = (statements[0] - n0) / args.files
        rows.append(
            (
                "1 KiB upload_inline, 1 client, p50 / p95",
                f"{pct(times, 50) * 1000:.2f} / {pct(times, 95) * 1000:.2f} ms · {cpu_ms:.2f} CPU-ms, "
                f"{per:.1f} statements per file",
            )
        )
        for label, small in (("small-file path", MiB), ("resumable path (before)", 0)):
            three = uploads(64, small)
            user = str(uuid.uuid4())
            await _three_calls(three, user, "w", 20, content)
            cpu, n0, b0, c0 = time.process_time(), statements[0], transactions[0], transactions[1]
            times = await _three_calls(three, user, "t", args.files, content)
            n = args.files
            rows.append(
                (
                    f"1 KiB create + write_chunk + finish, 1 client, {label}, p50 / p95",
                    f"{pct(times, 50) * 1000:.2f} / {pct(times, 95) * 1000:.2f} ms · "
                    f"{(time.process_time() - cpu) / n * 1000:.2f} CPU-ms, {(statements[0] - n0) / n:.1f} statements, "
                    f"{(transactions[0] - b0) / n:.1f} transactions "
                    f"({(transactions[1] - c0) / n:.1f} commits) per file",
                )
            )
        for label, batch in (("group commit", 64), ("one transaction per file", 1)):
            rate, cpu_ms, per = await _concurrent(uploads(batch), args, content, statements)
            rows.append(
                (
                    f"1 KiB upload_inline, {args.clients} clients, {label}",
                    f"{rate:.0f} files/s · {cpu_ms:.2f} CPU-ms, {per:.1f} statements per file",
                )
            )
    finally:
        await engine.dispose()
        if args.db:
            admin = make_url(args.db.replace("postgresql://", "postgresql+psycopg://", 1)).set(database="postgres")
            import sqlalchemy as sa

            e = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            with e.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            e.dispose()
    return rows


async def _concurrent(
    uploads: Uploads, args: argparse.Namespace, content: bytes, statements: list[int]
) -> tuple[float, float, float]:
    users = [str(uuid.uuid4()) for _ in range(args.clients)]
    for user in users:
        await uploads.upload_inline(user, "", "first", content, len(content), "", "")
    names = iter(range(args.files * 4))

    async def client(user: str) -> int:
        done = 0
        for n in names:
            await uploads.upload_inline(user, "", f"c{n}", content, len(content), "", "")
            done += 1
        return done

    cpu, n0, t = time.process_time(), statements[0], time.perf_counter()
    done = sum(await asyncio.gather(*(client(u) for u in users)))
    elapsed = time.perf_counter() - t
    return done / elapsed, (time.process_time() - cpu) / done * 1000, (statements[0] - n0) / done


async def _three_calls(uploads: Uploads, user: str, prefix: str, n: int, content: bytes) -> list[float]:
    """create_upload → write_chunk (the whole file) → finish_upload, n times in a row; each one's seconds."""
    times = []
    for i in range(n):
        t = time.perf_counter()
        up = await uploads.create_upload(user, "", f"{prefix}{i}", len(content), "", "")
        await uploads.write_chunk(user, up.id, 0, content)
        done, _ = await uploads.finish_upload(user, up.id)
        times.append(time.perf_counter() - t)
        assert done.state == UploadState.COMPLETED, done
    return times


def _ms(v: dict[str, float]) -> str:
    return f"{v['p50_ms']:.2f} / {v['p95_ms']:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="", help="PostgreSQL base URL (default: SQLite in the temp dir)")
    parser.add_argument("--files", type=int, default=300, help="files per sequential run (x4 for the concurrent)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--dir", default="", help="where the temp dir goes (default: the system's)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="flowdock-small-", dir=args.dir or None))
    try:
        rows = asyncio.run(run(args, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()
    print(f"database: {'PostgreSQL' if args.db else 'SQLite'} · load average {load[0]:.1f} · {os.cpu_count()} CPUs")
    width = max(len(r[0]) for r in rows)
    for what, value in rows:
        print(f"{what:<{width}}  {value}")


if __name__ == "__main__":
    main()
