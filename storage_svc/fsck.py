"""Consistency check of metadata against stored bytes: `python -m storage_svc.fsck [--deep] [--repair]`.

Finds blobs without a version row (orphans, e.g. after a crash between rename and commit), version rows whose
blob is missing, blobs whose size differs from the row, and staging files without an upload. --deep decrypts
every blob (authenticating every segment). --repair deletes orphans older than an hour (never anything a row
points to). Exit code: 0 consistent, 1 problems found, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlalchemy as sa

from flowdock_kernel import db
from flowdock_kernel.config import ConfigError, load
from flowdock_kernel.errors import DataLoss
from storage_svc.adapters import uploads, versions
from storage_svc.blobstores import open_blob_store
from storage_svc.config import StorageConfig

GRACE_SECONDS = 3600


@dataclass
class Report:
    blobs: int = 0
    rows: int = 0
    orphan_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    wrong_sizes: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    orphan_staging: list[str] = field(default_factory=list)
    repaired: int = 0

    @property
    def problems(self) -> int:
        return sum(
            len(x) for x in (self.orphan_blobs, self.missing_blobs, self.wrong_sizes, self.damaged, self.orphan_staging)
        )


def check(config: StorageConfig, *, deep: bool = False, repair: bool = False) -> Report:
    store = open_blob_store(config)
    engine = sa.create_engine(db.service_url(config, "storage", driver_async=False))
    with engine.connect() as conn:
        rows = {r.blob_id: r.size for r in conn.execute(sa.select(versions.c.blob_id, versions.c.size))}
        upload_ids = {r.id for r in conn.execute(sa.select(uploads.c.id))}
    engine.dispose()
    report = Report(rows=len(rows))
    on_disk: dict[str, int] = {}
    for blob_id, size in store.list_blobs():
        on_disk[blob_id] = size
    report.blobs = len(on_disk)
    for blob_id, size in sorted(on_disk.items()):
        if blob_id not in rows:
            report.orphan_blobs.append(blob_id)
            if repair and store.blob_age(blob_id) > GRACE_SECONDS:
                asyncio.run(store.delete(blob_id))
                report.repaired += 1
        elif size != rows[blob_id]:
            report.wrong_sizes.append(f"{blob_id}: {size} bytes stored, {rows[blob_id]} recorded")
        elif deep:
            try:
                asyncio.run(store.verify(blob_id))
            except DataLoss as exc:
                report.damaged.append(f"{blob_id}: {exc.message}")
    report.missing_blobs = sorted(set(rows) - set(on_disk))
    for upload_id, name, age in store.staging_entries():
        if upload_id not in upload_ids:
            report.orphan_staging.append(name.rsplit("/", 1)[-1] if config.storage_blob_backend == "local" else name)
            if repair and age > GRACE_SECONDS:
                store.remove_staging_entry(name)
                report.repaired += 1
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage_svc.fsck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deep", action="store_true", help="decrypt and authenticate every blob")
    parser.add_argument("--repair", action="store_true", help=f"delete orphans older than {GRACE_SECONDS} s")
    parser.add_argument("--data-dir", help="override FLOWDOCK_DATA_DIR")
    args = parser.parse_args(argv)
    try:
        config = load(StorageConfig)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.data_dir:
        config = replace(config, data_dir=Path(args.data_dir))
    report = check(config, deep=args.deep, repair=args.repair)
    print(f"blobs stored: {report.blobs}   version rows: {report.rows}")
    for title, items in (
        ("blobs without a row", report.orphan_blobs),
        ("rows without a blob", report.missing_blobs),
        ("wrong sizes", report.wrong_sizes),
        ("damaged blobs", report.damaged),
        ("staging files without an upload", report.orphan_staging),
    ):
        print(f"{title}: {len(items)}")
        for item in items[:50]:
            print(f"  {item}")
    if report.repaired:
        print(f"repaired (deleted orphans): {report.repaired}")
    print("consistent" if report.problems == 0 else f"{report.problems} problem(s) found")
    return 0 if report.problems == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
