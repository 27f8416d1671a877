"""The SHA-256 computed as the bytes arrive, on a real database (SQLite and PostgreSQL) and the real encrypted
blob store, across a storage process killed with SIGKILL mid-upload (issue 15 item 2).

"Replica 0" is a child process running the upload use cases over the shared database and data directory; it
streams half a file, is killed with bytes in flight, and "replica 1" (this process: its own blob-store instance,
its own empty hash cache, a clock past replica 0's lease) resumes at the committed offset and finishes. The
acknowledged bytes survive, the file is byte-exact, its recorded SHA-256 is hashlib's of the source, and replica 1
read the committed prefix back once (to continue the hash) and nothing at finish. The cache rules with fakes:
tests/unit/test_upload_hashing.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flowdock_kernel.clock import SystemClock
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.domain import UploadState
from storage_svc.keyring import Keyring
from tests.storage.test_upload_writes import stack
from tests.support.mesh import PG_URL, drop_databases, need_postgres

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]

REPLICA_0 = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from tests.storage.test_upload_writes import stack

    url, root, user, upload_id, source = sys.argv[1:6]
    MiB = 1024 * 1024

    async def main() -> None:
        data = Path(source).read_bytes()
        async with stack(url, Path(root)) as s:
            writer = s.uploads.writer(user, upload_id)
            await writer.open(0)
            offset = 0
            while offset < len(data) // 2:  # like the servicer's stream: flushes in the background
                await writer.write(data[offset : offset + MiB])
                offset += MiB
                if writer.unflushed >= s.uploads.limits.sync_bytes:
                    await writer.flush_soon()
                if (acked := writer.acknowledge()) is not None:
                    print(acked, flush=True)
            print(await writer.flush(), flush=True)
            await writer.write(data[offset : offset + MiB + 12345])  # in flight, never acknowledged
            await writer.flush_soon()
            await writer.write(data[offset + MiB + 12345 : offset + 2 * MiB])
            print("killable", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


class LaterClock(SystemClock):
    """Replica 1's clock, past replica 0's writer lease (a killed process never lets go of its hold)."""

    def now(self) -> datetime:
        return super().now() + timedelta(minutes=2)


class CountingStore(EncryptedBlobStore):
    """The real store, noting which staged ranges are read back."""

    reads: list[tuple[int, int]]

    async def read_staging(self, upload_id: str, size: int, chunk: int, *, start: int = 0) -> AsyncIterator[bytes]:
        self.reads.append((start, size))
        async for block in super().read_staging(upload_id, size, chunk, start=start):
            yield block


def on(database: str, tmp_path: Path, body: Callable[[str], Awaitable[None]]) -> None:
    if database == "sqlite":
        asyncio.run(body(f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"))
        return
    need_postgres()
    prefix = f"fdhash_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(body(f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{prefix}_storage"))
    finally:
        drop_databases(prefix)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_hash_resumed_on_another_replica_after_sigkill_is_right(tmp_path: Path, database: str) -> None:
    data = os.urandom(24 * MiB + 777)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    user = str(uuid.uuid4())

    async def body(url: str) -> None:
        async with stack(url, tmp_path) as s:
            up = await s.uploads.create_upload(
                user, "", "big.bin", len(data), hashlib.sha256(data).hexdigest(), "application/octet-stream"
            )
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                REPLICA_0,
                url,
                str(tmp_path),
                user,
                up.id,
                str(source),
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
            )
            assert child.stdout is not None
            acked = 0
            async with asyncio.timeout(120):
                while (line := (await child.stdout.readline()).decode().strip()) != "killable":
                    assert line, "replica 0 ended before it was killed"
                    acked = int(line)
            child.send_signal(signal.SIGKILL)
            await child.wait()
            assert child.returncode == -signal.SIGKILL
            assert acked >= len(data) // 2

            store = CountingStore(tmp_path / "storage", Keyring(tmp_path / "keyring.json"))  # replica 1's
            store.reads = []
            s.uploads.blobs, s.uploads.clock = store, LaterClock()
            got, _ = await s.uploads.get_upload(user, up.id)
            committed = got.committed_size
            assert acked <= committed < len(data)  # every acknowledged byte survived; the rest is resumed
            async with s.uploads.writer(user, up.id) as writer:
                assert await writer.open(committed) == committed
                for at in range(committed, len(data), MiB):
                    await writer.write(data[at : at + MiB])
                assert await writer.flush(release=True) == len(data)
            assert store.reads == [(0, committed)]  # the prefix replica 0 wrote, hashed here once
            done, node = await s.uploads.finish_upload(user, up.id)
            assert done.state == UploadState.COMPLETED and node is not None
            assert node.sha256 == hashlib.sha256(data).hexdigest()
            assert store.reads == [(0, committed)]  # finishing read nothing back
            content = b"".join([b async for b in store.read(node.blob_id, 0, node.size, MiB)])
            assert content == data

    on(database, tmp_path, body)
