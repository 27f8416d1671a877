"""Scrub now: `python -m storage_svc.scrub [--all]` (`flowdock scrub`), whether or not the system is running.

Authenticates every segment of the blobs from the scrub's saved position to the end of its pass (`--all`: a new
pass over every blob), at the configured byte budget (`--bytes-per-second` to change it), with the same lease as
the storage replicas' background scrub (it waits while a replica's round holds it) and the same reports: damage is
logged as DATA_LOSS and recorded as a `storage.damaged` event in storage's audit outbox (a running storage_svc
delivers it to the owner's activity; otherwise the next start does). The background scrub's metrics are the
running replicas'; this command prints what it found instead. Exit code: 0 nothing damaged, 1 damage found,
2 bad configuration or a database without the scrub's table (run `flowdock migrate`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from flowdock_kernel import db, logs
from flowdock_kernel.audit import Outbox
from flowdock_kernel.clock import SystemClock
from flowdock_kernel.config import ConfigError, load
from flowdock_kernel.incarnation import PROCESS
from storage_svc.adapters import SqlUnitOfWork
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.config import StorageConfig
from storage_svc.usecases.scrub import Scrubber, ScrubReport

NAME = "storage"


class _Quiet:
    """The command records no metrics (no one scrapes it): it prints its findings."""

    def verified(self, blobs: int, stored_bytes: int) -> None:
        pass

    def damaged(self) -> None:
        pass

    def pass_completed(self, at: datetime) -> None:
        pass


async def _never_sent(_events: list[dict[str, object]]) -> None:
    raise RuntimeError("the command only writes events; storage_svc delivers them")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


async def scrub(config: StorageConfig, *, from_start: bool, show: bool) -> ScrubReport:
    engine = db.make_engine(db.service_url(config, NAME), sqlite_immediate=True)
    outbox = Outbox(engine, service=NAME, send=_never_sent)
    sessions = db.connections(engine)

    def uow(*, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions, outbox, read_only=read_only)

    scrubber = Scrubber(
        uow=uow,
        blobs=EncryptedBlobStore.from_config(config),
        clock=SystemClock(),
        holders=PROCESS,
        monitor=_Quiet(),
        fraction_per_day=config.storage_scrub_fraction_per_day,
        bytes_per_second=config.storage_scrub_bytes_per_second,
    )
    try:
        with _Progress(show) as progress:
            return await scrubber.run_pass(from_start=from_start, progress=progress)
    finally:
        await engine.dispose()


class _Progress:
    """A rich progress bar over blobs on a terminal's stderr; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("scrub"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[read]} read, {task.fields[damaged]} damaged"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("scrub", total=None, read="0 B", damaged=0)
        return self

    def __call__(self, report: ScrubReport, total: int) -> None:
        if self.bar is not None:
            self.bar.update(
                self.task,
                completed=report.blobs,
                total=max(total, report.blobs),
                read=_human(report.bytes),
                damaged=len(report.damaged),
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage_svc.scrub", description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="a new pass over every blob, not the rest of this one")
    parser.add_argument(
        "--bytes-per-second", type=int, help="read budget (default: FLOWDOCK_STORAGE_SCRUB_BYTES_PER_SECOND)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--data-dir", help="override FLOWDOCK_DATA_DIR")
    args = parser.parse_args(argv)
    try:
        config = load(StorageConfig)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.setup(NAME, "warning", config.log_format)  # the DATA_LOSS lines, on stderr as the service writes them
    if args.data_dir:
        config = replace(config, data_dir=Path(args.data_dir))
    if args.bytes_per_second is not None:
        if args.bytes_per_second <= 0:
            print("error: --bytes-per-second must be greater than 0", file=sys.stderr)
            return 2
        config = replace(config, storage_scrub_bytes_per_second=args.bytes_per_second)
    try:
        report = asyncio.run(scrub(config, from_start=args.all, show=not args.no_progress))
    except TimeoutError as exc:
        print(f"error: {exc}; try again later", file=sys.stderr)
        return 2
    except Exception as exc:
        if "scrub_state" in str(exc):
            print("error: the storage database has no scrub table yet; run `flowdock migrate`", file=sys.stderr)
            return 2
        raise
    print(f"verified {report.blobs} blobs ({_human(report.bytes)} read); damaged: {len(report.damaged)}")
    for damage in report.damaged:
        blob = damage.blob
        print(
            f"  DATA_LOSS file {blob.node_id} ({blob.name}) version {blob.version_id} blob {blob.blob_id} "
            f"owner {blob.owner_id}: {damage.reason}"
        )
    if report.passes_completed:
        print("pass complete")
    return 1 if report.damaged else 0


if __name__ == "__main__":
    raise SystemExit(main())
