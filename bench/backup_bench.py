"""Backup and restore throughput (issue 19): `flowdock backup` of a running installation, `backup --verify` and
`flowdock restore`, each beside a reference on the same bytes in the same run: `cp -a` of the blob folder + `sync`
(what a copy without snapshots, hashing or a manifest costs) and `sha256sum` of the blobs (reading and hashing).

    python bench/backup_bench.py [--mb 512] [--files 16] [--db postgresql://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import PASSWORD, Mesh, bench_database, drop_bench_databases, login  # noqa: E402


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=512, help="data uploaded before the backup (MiB)")
    parser.add_argument("--files", type=int, default=16, help="number of files it is split into")
    parser.add_argument("--db", default="", help="PostgreSQL base URL (default: SQLite)")
    args = parser.parse_args()
    from flowdock_sdk import Client

    work = Path(tempfile.mkdtemp(prefix="fdbackupbench-"))
    db = bench_database(args.db) if args.db else ""
    flowdock = [sys.executable, "-m", "flowdock_runtime"]
    env = {**os.environ, "FLOWDOCK_STORAGE_VIRUS_SCAN": "off"}
    mesh = Mesh.start(work / "data", work / "up.err", db)
    rows: list[tuple[str, float, str]] = []
    try:
        email = f"bench{uuid.uuid4().hex[:8]}@example.org"
        login(mesh.url, email, register=True)
        src = work / "src"
        src.mkdir()
        size = args.mb * 2**20 // args.files
        for i in range(args.files):
            (src / f"f{i}.bin").write_bytes(os.urandom(size))
        with Client(mesh.url, email=email, password=PASSWORD) as client:
            client.upload(src, "/bench", contents=True)
        shutil.rmtree(src)
        server = ["--data-dir", str(mesh.data_dir), *(["--db", db] if db else [])]
        backup = timed([*flowdock, "backup", str(work / "b"), "--with-keys", "--no-progress", *server], env)
        start = time.perf_counter()
        subprocess.run(["cp", "-a", str(mesh.data_dir / "storage" / "blobs"), str(work / "cp")], check=True)
        os.sync()
        copy = time.perf_counter() - start
        blobs = [str(p) for p in (work / "b" / "blobs").rglob("*") if p.is_file()]
        verify = timed([*flowdock, "backup", "--verify", str(work / "b"), "--no-progress", "--data-dir", str(work)])
        hashing = timed(["sha256sum", *blobs])
    finally:
        mesh.stop()
    restore_db = bench_database(args.db) if args.db else ""
    try:
        server = ["--data-dir", str(work / "restored"), *(["--db", restore_db] if restore_db else [])]
        restore = timed([*flowdock, "restore", str(work / "b"), "--no-progress", *server], env)
    finally:
        if args.db:
            drop_bench_databases(args.db, db)
            drop_bench_databases(args.db, restore_db)
        shutil.rmtree(work, ignore_errors=True)
    mib = args.mb
    rows = [
        ("flowdock backup (running, --with-keys)", backup, f"{copy / backup:.2f} of cp -a + sync ({copy:.2f} s)"),
        ("flowdock backup --verify", verify, f"{hashing / verify:.2f} of sha256sum ({hashing:.2f} s)"),
        ("flowdock restore", restore, f"{copy / restore:.2f} of cp -a + sync"),
    ]
    print(
        f"{mib} MiB in {args.files} files, {'PostgreSQL' if args.db else 'SQLite'}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; times include the command's start (~1-2 s of imports)"
    )
    print(f"| {'step':<40} | {'s':>6} | {'MiB/s':>7} | ratio |")
    print(f"|{'-' * 42}|{'-' * 8}|{'-' * 9}|-------|")
    for name, seconds, ratio in rows:
        print(f"| {name:<40} | {seconds:6.2f} | {mib / seconds:7.1f} | {ratio} |")


if __name__ == "__main__":
    main()
