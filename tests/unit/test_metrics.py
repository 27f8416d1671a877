"""The kernel's metric helpers: outcome classification, the pool and disk collector, the sampling job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from flowdock_kernel import db, metrics


@pytest.mark.parametrize(
    ("why", "outcome"),
    [
        ("content SHA-256 is ab12, not the declared cd34; upload it again", "failed_checksum"),
        ("virus found: Eicar-Test-Signature; the content was destroyed", "infected"),
        ("an entry named 'a' appeared in the folder meanwhile", "refused"),
        ("the virus scanner could not scan all of this file (too large); refused", "refused"),
    ],
)
def test_failures_are_classified_into_the_bounded_outcomes(why: str, outcome: str) -> None:
    assert metrics.outcome_of_failure(why) == outcome
    assert outcome in metrics.UPLOAD_OUTCOME_VALUES


async def test_pool_and_disk_are_read_at_scrape_time(tmp_path: Path) -> None:
    engine = db.make_engine(make_url(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    registry = CollectorRegistry()
    registry.register(metrics.PoolAndDiskCollector("auth", engine, tmp_path))
    async with engine.connect():
        text = generate_latest(registry).decode()
        assert 'flowdock_db_pool_connections{service="auth",state="in_use"} 1.0' in text
    text = generate_latest(registry).decode()
    assert 'flowdock_db_pool_connections{service="auth",state="in_use"} 0.0' in text
    free = next(line for line in text.splitlines() if line.startswith("flowdock_data_disk_free_bytes"))
    size = next(line for line in text.splitlines() if line.startswith("flowdock_data_disk_size_bytes"))
    assert 0 < float(free.split()[-1]) <= float(size.split()[-1])
    await engine.dispose()


async def test_database_probe_says_up_and_down(tmp_path: Path) -> None:
    gauge = metrics.DATABASE_UP.labels("share")
    engine = db.make_engine(make_url(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    await metrics.database_probe("share", engine)()
    assert gauge._value.get() == 1
    await engine.dispose()
    # A database that cannot be opened (its folder is missing): the probe says 0 and lets the sampler log why.
    broken = db.make_engine(make_url(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}"))
    with pytest.raises(OperationalError):
        await metrics.database_probe("share", broken)()
    assert gauge._value.get() == 0
    await broken.dispose()


async def test_a_failing_step_does_not_stop_the_sampler() -> None:
    ran: list[str] = []

    async def broken() -> None:
        ran.append("broken")
        raise RuntimeError("database down")

    async def fine() -> None:
        ran.append("fine")

    job = asyncio.create_task(metrics.sampler("storage", [broken, fine], interval=0.01)())
    await asyncio.sleep(0.1)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert ran.count("fine") >= 2 and ran.count("broken") == ran.count("fine")
    assert metrics.SAMPLE_SECONDS.labels("storage")._value.get() > 0
