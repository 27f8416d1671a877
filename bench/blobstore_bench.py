"""Encrypted blob store throughput against a plaintext reference measured in the same run.

    python bench/blobstore_bench.py [--mb 1024] [--chunk-kb 1024] [--sync-mb 8] [--segment-kb 64] [--runs 3]

Reference ("plain"): exactly the system calls of the plaintext LocalBlobStore: 1 MiB pwrite per chunk (one
asyncio.to_thread each), fdatasync every --sync-mb (the service's storage_sync_bytes), then fsync, rename and
directory fsync at commit; reads are 1 MiB preads. Encrypted: EncryptedBlobStore's write_staging / sync_staging
/ commit_staging and read. Medians of --runs; ratios are against the reference of the same run. Run with
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824 as the service is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.keyring import Keyring

MB = 1_000_000
MiB = 1024 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def plain_write(root: Path, chunk: bytes, total: int, sync_every: int) -> None:
    staging, blob = root / "plain.staging", root / "plain.blob"
    fd = os.open(staging, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    since = 0
    for pos in range(0, total, len(chunk)):

        def write(pos: int = pos) -> None:
            fd = os.open(staging, os.O_WRONLY)
            try:
                os.pwrite(fd, chunk, pos)
            finally:
                os.close(fd)

        await asyncio.to_thread(write)
        since += len(chunk)
        if since >= sync_every:
            since = 0

            def sync() -> None:
                fd = os.open(staging, os.O_WRONLY)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)

            await asyncio.to_thread(sync)

    def commit() -> None:
        fd = os.open(staging, os.O_WRONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(staging, blob)
        fsync_dir(root)

    await asyncio.to_thread(commit)


async def plain_read(root: Path, total: int, chunk: int) -> int:
    f = await asyncio.to_thread(open, root / "plain.blob", "rb")
    n = 0
    try:
        while n < total:
            block = await asyncio.to_thread(f.read, min(chunk, total - n))
            if not block:
                break
            n += len(block)
    finally:
        f.close()
    return n


async def enc_write(store: EncryptedBlobStore, chunk: bytes, total: int, sync_every: int) -> None:
    await store.create_staging("bench")
    since = 0
    for pos in range(0, total, len(chunk)):
        await store.write_staging("bench", pos, chunk)
        since += len(chunk)
        if since >= sync_every:
            since = 0
            await store.sync_staging("bench")
    await store.sync_staging("bench")
    await store.commit_staging("bench", "benchblob", total)


async def enc_read(store: EncryptedBlobStore, total: int, chunk: int) -> int:
    n = 0
    async for block in store.read("benchblob", 0, total, chunk):
        n += len(block)
    return n


async def plain_small(root: Path, data: bytes, i: int) -> None:
    """One small upload through the plaintext store's system calls: create, write, fsync, hash-read, commit."""
    staging, blob = root / f"s{i}", root / f"b{i}"

    def create() -> None:
        os.close(os.open(staging, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    def write_sync() -> None:
        fd = os.open(staging, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def commit() -> None:
        fd = os.open(staging, os.O_WRONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(staging, blob)
        fsync_dir(root)

    await asyncio.to_thread(create)
    await asyncio.to_thread(write_sync)
    await asyncio.to_thread(staging.read_bytes)
    await asyncio.to_thread(commit)


async def enc_small(store: EncryptedBlobStore, data: bytes, i: int) -> None:
    await store.create_staging(f"s{i}")
    await store.write_staging(f"s{i}", 0, data)
    await store.sync_staging(f"s{i}")
    async for _ in store.read_staging(f"s{i}", len(data), 1 << 20):
        pass
    await store.commit_staging(f"s{i}", f"small{i}", len(data))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def timed(work: Awaitable[object]) -> float:
    t = time.perf_counter()
    await work
    return time.perf_counter() - t


def drop_caches(enabled: bool) -> None:
    if enabled:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


async def run(args: argparse.Namespace) -> None:
    total = args.mb * MiB
    chunk = os.urandom(args.chunk_kb * 1024)
    total -= total % len(chunk)
    sync_every = args.sync_mb * MiB
    base = Path(tempfile.mkdtemp(prefix="flowdock-bench-", dir=args.dir or None))
    results: dict[str, list[float]] = {k: [] for k in ("plain_w", "enc_w", "plain_r", "enc_r")}
    try:
        for i in range(args.runs):
            root = base / "run"
            root.mkdir()
            store = EncryptedBlobStore(
                root / "storage", Keyring(root / "keyring.json"), segment_size=args.segment_kb * 1024
            )
            steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("plain_w", partial(plain_write, root, chunk, total, sync_every)),
                ("enc_w", partial(enc_write, store, chunk, total, sync_every)),
            ]
            reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("plain_r", partial(plain_read, root, total, len(chunk))),
                ("enc_r", partial(enc_read, store, total, len(chunk))),
            ]
            if i % 2:  # alternate which goes first: the disk's and page cache's state favour neither side
                steps.reverse()
                reads.reverse()
            for key, step in steps:
                results[key].append(await timed(step()))
            for key, step in reads:
                drop_caches(args.drop_caches)
                results[key].append(await timed(step()))
            shutil.rmtree(root)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    rate = {k: total / v / MB for k, v in med.items()}
    tunables = os.environ.get("GLIBC_TUNABLES", "(stock malloc)")
    print(
        f"{args.mb} MiB, chunks {args.chunk_kb} KiB, fsync every {args.sync_mb} MiB, segments {args.segment_kb} KiB, "
        f"median of {args.runs}, page cache {'dropped' if args.drop_caches else 'warm'} before reads"
    )
    print(f"GLIBC_TUNABLES={tunables}")
    print()
    print(f"| {'what':<52} | {'seconds':>8} | {'MB/s':>8} | {'ratio':>6} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")
    rows = [
        ("plain write+fsync+commit (reference)", "plain_w", "plain_w"),
        ("encrypted staging write + commit (AES-256-GCM)", "enc_w", "plain_w"),
        ("plain read (reference)", "plain_r", "plain_r"),
        ("encrypted read (decrypt + authenticate)", "enc_r", "plain_r"),
    ]
    for label, key, ref in rows:
        print(f"| {label:<52} | {med[key]:>8.3f} | {rate[key]:>8.0f} | {med[ref] / med[key]:>5.2f}x |")
    if args.small:
        base = Path(tempfile.mkdtemp(prefix="flowdock-bench-", dir=args.dir or None))
        try:
            store = EncryptedBlobStore(
                base / "storage", Keyring(base / "keyring.json"), segment_size=args.segment_kb * 1024
            )
            data = os.urandom(1024)
            lat: dict[str, list[float]] = {"plain": [], "enc": []}
            for i in range(args.small):
                lat["plain"].append(await timed(plain_small(base, data, i)))
                lat["enc"].append(await timed(enc_small(store, data, i)))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print()
        print(f"1 KiB upload in the blob store (create, write, fsync, read back, commit), {args.small} files:")
        print(f"| {'what':<52} | {'p50 ms':>8} | {'p95 ms':>8} |")
        print(f"|{'-' * 54}|{'-' * 10}|{'-' * 10}|")
        for label, key in (("plain (reference)", "plain"), ("encrypted", "enc")):
            p50, p95 = percentile(lat[key], 0.5) * 1000, percentile(lat[key], 0.95) * 1000
            print(f"| {label:<52} | {p50:>8.2f} | {p95:>8.2f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"peak RSS of the benchmark process: {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="MiB per transfer (default 1024 = 1 GiB)")
    parser.add_argument("--chunk-kb", type=int, default=1024)
    parser.add_argument("--sync-mb", type=int, default=8, help="fsync cadence (storage_sync_bytes)")
    parser.add_argument("--segment-kb", type=int, default=64, help="storage_segment_bytes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="", help="where to write (default: the system temp dir)")
    parser.add_argument("--small", type=int, default=200, help="1 KiB uploads to time (0: skip)")
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before reads (root)")
    logging.disable(logging.WARNING)  # the keyring's first-use notice
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
