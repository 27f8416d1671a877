"""The S3 blob store on a 3-replica Swift: one object server stopped (SIGKILL, as a lost machine) during uploads
and downloads loses nothing; every byte reads back exact, with the server down and after it is back."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path
from typing import TYPE_CHECKING

from storage_svc.keyring import Keyring
from storage_svc.s3store import S3BlobStore

if TYPE_CHECKING:
    from tests.support.swift import SwiftCluster

pytest_plugins = ["tests.support.swift"]

SEG = 64 * 1024


def make(swift: SwiftCluster, bucket: str, keyring: Path) -> S3BlobStore:
    return S3BlobStore(swift.s3_settings(bucket), Keyring(keyring), segment_size=SEG, part_size=1 << 20)  # type: ignore[arg-type]


async def read_all(store: S3BlobStore, blob: str, size: int) -> bytes:
    out = bytearray()
    async for block in store.read(blob, 0, size, 1 << 20):
        out += block
    return bytes(out)


async def test_one_object_server_down_loses_nothing(swift3: SwiftCluster, tmp_path: Path) -> None:
    bucket = swift3.new_bucket()
    keyring = tmp_path / "keyring.json"
    store = make(swift3, bucket, keyring)
    files = {f"f{i}": random.Random(i).randbytes(3 * (1 << 20) + 1000 * i) for i in range(4)}

    async def upload(name: str, data: bytes, on_half: asyncio.Event | None = None) -> None:
        await store.create_staging(name)
        step = 300_001
        for pos in range(0, len(data), step):
            await store.write_staging(name, pos, data[pos : pos + step])
            await store.sync_staging(name)
            if on_half is not None and pos >= len(data) // 2:
                on_half.set()
                await asyncio.sleep(0.3)  # the object server goes down now
                on_half = None
        await store.commit_staging(name, f"blob-{name}", len(data))

    await upload("f0", files["f0"])
    half = asyncio.Event()
    task = asyncio.create_task(upload("f1", files["f1"], half))
    await half.wait()
    swift3.stop_object(1)  # mid-upload
    await task
    # With the server down: what was stored before, during and after reads back, and new uploads go on.
    assert await read_all(store, "blob-f0", len(files["f0"])) == files["f0"]
    assert await read_all(store, "blob-f1", len(files["f1"])) == files["f1"]
    await upload("f2", files["f2"])
    downloading = asyncio.create_task(read_all(make(swift3, bucket, keyring), "blob-f2", len(files["f2"])))
    await asyncio.sleep(0.05)
    swift3.start_object(1)
    swift3.stop_object(2)  # another one, mid-download
    assert await downloading == files["f2"]
    await upload("f3", files["f3"])
    swift3.start_object(2)
    fresh = make(swift3, bucket, keyring)
    for name, data in files.items():
        got = await read_all(fresh, f"blob-{name}", len(data))
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), name
        assert await fresh.verify(f"blob-{name}") == len(data)
