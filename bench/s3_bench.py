"""The S3 blob store against a real OpenStack Swift, next to the local-disk store, in one run.

    python bench/s3_bench.py [--mb 1024] [--runs 3] [--replicas 1] [--segment-kb 64] [--part-mb 8]

Starts its own Swift all-in-one (tests/support/swift.py: proxy with s3api, account, container, object servers,
memcached; devices in a temp dir), then for each run: the local EncryptedBlobStore (1 MiB writes, sync every
8 MiB as storage_sync_bytes, commit; read), the S3BlobStore the same way, and the client library alone (obstore
put of the same bytes as one multipart upload, and one GET) as the object store's ceiling. Medians of --runs;
ratios against the ceiling of the same run. Swift runs one process per server (workers = 0) on the same two
cores as the bench: absolute numbers are this machine's, compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import obstore

from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.keyring import Keyring
from storage_svc.s3store import S3BlobStore
from tests.support.swift import running_swift

MB = 1_000_000
MiB = 1024 * 1024


async def write(store: Any, name: str, chunk: bytes, total: int, sync_every: int) -> None:
    await store.create_staging(name)
    since = 0
    for pos in range(0, total, len(chunk)):
        await store.write_staging(name, pos, chunk)
        since += len(chunk)
        if since >= sync_every:
            since = 0
            await store.sync_staging(name)
    await store.sync_staging(name)
    await store.commit_staging(name, f"blob-{name}", total)


async def read(store: Any, name: str, total: int, chunk: int) -> int:
    n = 0
    async for block in store.read(f"blob-{name}", 0, total, chunk):
        n += len(block)
    assert n == total
    return n


async def raw_put(store: Any, key: str, data: bytes, part: int) -> None:
    await obstore.put_async(store, key, data, use_multipart=True, chunk_size=part, max_concurrency=4)


async def raw_get(store: Any, key: str, total: int) -> None:
    result = await obstore.get_async(store, key)
    n = 0
    async for block in result.stream(min_chunk_size=8 * MiB):
        n += len(block)
    assert n == total


async def timed(work: Awaitable[object]) -> float:
    t = time.perf_counter()
    await work
    return time.perf_counter() - t


async def run(args: argparse.Namespace) -> None:
    total = args.mb * MiB
    chunk = os.urandom(MiB)
    data = chunk * (total // MiB)
    base = Path(tempfile.mkdtemp(prefix="flowdock-s3bench-", dir=args.dir or None))
    keys = ("local_w", "local_r", "s3_w", "s3_r", "raw_w", "raw_r")
    results: dict[str, list[float]] = {k: [] for k in keys}
    load_before = os.getloadavg()
    try:
        with running_swift(base / "swift", replicas=args.replicas) as swift:
            bucket = swift.new_bucket()
            keyring = Keyring(base / "keyring.json")
            seg = args.segment_kb * 1024
            s3 = S3BlobStore(swift.s3_settings(bucket), keyring, segment_size=seg, part_size=args.part_mb * MiB)  # type: ignore[arg-type]
            for i in range(args.runs):
                local = EncryptedBlobStore(base / f"local{i}", keyring, segment_size=seg)
                results["local_w"].append(await timed(write(local, f"l{i}", chunk, total, 8 * MiB)))
                results["local_r"].append(await timed(read(local, f"l{i}", total, MiB)))
                results["s3_w"].append(await timed(write(s3, f"s{i}", chunk, total, 8 * MiB)))
                results["s3_r"].append(await timed(read(s3, f"s{i}", total, MiB)))
                results["raw_w"].append(await timed(raw_put(s3.store, f"raw/{i}", data, args.part_mb * MiB)))
                results["raw_r"].append(await timed(raw_get(s3.store, f"raw/{i}", total)))
                shutil.rmtree(base / f"local{i}", ignore_errors=True)
                await s3.delete(f"blob-s{i}")
                await obstore.delete_async(s3.store, f"raw/{i}")
            start_seconds = swift.start_seconds
    finally:
        shutil.rmtree(base, ignore_errors=True)
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in results.items()}
    rate = {k: total / v / MB for k, v in med.items()}
    print(
        f"{args.mb} MiB, 1 MiB writes, sync every 8 MiB, segments {args.segment_kb} KiB, "
        f"run objects {args.part_mb} MiB, Swift {args.replicas} replica(s) (started in {start_seconds:.1f} s), "
        f"median of {args.runs}"
    )
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print()
    print(f"| {'what':<58} | {'seconds':>8} | {'MB/s':>7} | {'ratio':>6} |")
    print(f"|{'-' * 60}|{'-' * 10}|{'-' * 9}|{'-' * 8}|")
    rows = [
        ("local disk: EncryptedBlobStore upload (write, sync, commit)", "local_w", "raw_w"),
        ("S3 on Swift: S3BlobStore upload (write, sync, commit)", "s3_w", "raw_w"),
        ("S3 on Swift: obstore put alone, multipart (ceiling)", "raw_w", "raw_w"),
        ("local disk: EncryptedBlobStore download", "local_r", "raw_r"),
        ("S3 on Swift: S3BlobStore download (ranged GETs, decrypt)", "s3_r", "raw_r"),
        ("S3 on Swift: obstore GET alone (ceiling)", "raw_r", "raw_r"),
    ]
    for label, key, ref in rows:
        print(f"| {label:<58} | {med[key]:>8.2f} | {rate[key]:>7.0f} | {med[ref] / med[key]:>5.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="MiB per transfer (default 1024 = 1 GiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 3))
    parser.add_argument("--segment-kb", type=int, default=64)
    parser.add_argument("--part-mb", type=int, default=8, help="storage_s3_part_bytes")
    parser.add_argument("--dir", default="", help="where Swift's devices and the local store go (default: temp)")
    logging.disable(logging.WARNING)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
