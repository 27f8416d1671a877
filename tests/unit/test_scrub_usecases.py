"""The scrub (storage_svc/usecases/scrub.py) over in-memory fakes: its share per day, its pacing (by the bytes it
accounts for and the fake clock its sleeps move: never real time), damage reported once per finding with the file
and owner, the position kept across restarts, and one replica at a time. The real blob store, database and metrics:
tests/e2e/test_scrub.py."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from storage_svc.domain import Node, ScrubState
from storage_svc.usecases import Uploads
from storage_svc.usecases.scrub import LEASE
from tests.support.fakes_storage import FakeHolders, FakeScrubMonitor, StorageFakes, small_limits

ALICE, BOB = "alice", "bob"


@pytest.fixture
def fakes() -> StorageFakes:
    # Files of a few KiB in 4 KiB chunks, finished inline (the defaults of the fakes are a few bytes).
    limits = small_limits(
        max_file_bytes=1 << 20,
        default_quota_bytes=1 << 30,
        max_chunk_bytes=4096,
        inline_finish_bytes=1 << 20,
        sync_bytes=4096,
    )
    return StorageFakes(limits=limits)


async def put(uploads: Uploads, name: str, data: bytes, caller: str = ALICE) -> Node:
    upload = await uploads.create_upload(caller, "root", name, len(data), "", "text/plain")
    step = uploads.limits.max_chunk_bytes
    for offset in range(0, len(data), step):
        await uploads.write_chunk(caller, upload.id, offset, data[offset : offset + step])
    _, node = await uploads.finish_upload(caller, upload.id)
    assert node is not None
    return node


async def files(fakes: StorageFakes, *sizes: int) -> list[Node]:
    uploads = fakes.uploads()
    return [await put(uploads, f"f{i}.bin", bytes([i % 251]) * size) for i, size in enumerate(sizes)]


def blob_order(fakes: StorageFakes) -> list[str]:
    return sorted(v.blob_id for v in fakes.state.versions.values())


async def test_a_round_verifies_the_share_accrued_since_the_last_one(fakes: StorageFakes) -> None:
    await files(fakes, 10, 10, 10, 10)
    seen: list[str] = []
    fakes.blobs.on_verify = seen.append
    monitor = FakeScrubMonitor()
    scrub = fakes.scrubber(monitor, fraction_per_day=0.5)  # 4 blobs x 0.5 a day: 2 a day
    assert (await scrub.run_once()).blobs == 0  # the first round only starts the clock
    fakes.clock.advance(hours=12)
    assert (await scrub.run_once()).blobs == 1
    fakes.clock.advance(hours=6)  # half a blob owed: kept as credit, nothing verified
    assert (await scrub.run_once()).blobs == 0
    fakes.clock.advance(hours=6)
    assert (await scrub.run_once()).blobs == 1
    assert seen == blob_order(fakes)[:2] and monitor.blobs == 2
    assert fakes.state.scrub.position == blob_order(fakes)[1] and fakes.state.scrub.holder is None
    fakes.clock.advance(days=30)  # a long stop: at most one pass is owed, not thirty
    report = await scrub.run_once()
    assert report.blobs == 4 and report.passes_completed == 1
    assert seen[2:] == [*blob_order(fakes)[2:], *blob_order(fakes)[:2]]
    assert fakes.state.scrub.last_pass_at is not None and monitor.passes == [fakes.state.scrub.last_pass_at]


async def test_clean_blobs_produce_no_event_no_damage_and_no_data_loss_line(
    fakes: StorageFakes, caplog: pytest.LogCaptureFixture
) -> None:
    await files(fakes, 3000, 5, 1)
    events_before = list(fakes.state.events)
    monitor = FakeScrubMonitor()
    with caplog.at_level(logging.INFO, "flowdock.storage"):
        report = await fakes.scrubber(monitor).run_pass(from_start=True)
    assert report.blobs == 3 and report.damaged == [] and report.passes_completed == 1
    assert fakes.state.events == events_before and monitor.damaged_blobs == 0
    assert not [r for r in caplog.records if "DATA_LOSS" in r.getMessage()]


async def test_damage_is_an_event_for_the_owner_a_data_loss_line_and_a_count(
    fakes: StorageFakes, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = await files(fakes, 4096, 4096)
    fakes.blobs.damaged.add(bad.blob_id)
    monitor = FakeScrubMonitor()
    with caplog.at_level(logging.ERROR, "flowdock.storage"):
        report = await fakes.scrubber(monitor).run_pass(from_start=True)
    assert [d.blob.blob_id for d in report.damaged] == [bad.blob_id] and report.blobs == 2
    damaged = [e for e in fakes.state.events if e.kind == "storage.damaged"]
    assert len(damaged) == 1
    assert damaged[0].subject == ALICE and damaged[0].actor == ""
    assert damaged[0].details["node_id"] == bad.id and damaged[0].details["blob_id"] == bad.blob_id
    assert damaged[0].details["name"] == bad.name and damaged[0].details["version_id"] == bad.version_id
    assert monitor.damaged_blobs == 1
    lines = [r for r in caplog.records if r.getMessage().startswith("DATA_LOSS")]
    assert len(lines) == 1
    assert lines[0].__dict__["blob_id"] == bad.blob_id and lines[0].__dict__["file_id"] == bad.id
    assert good.blob_id not in caplog.text


async def test_a_blob_deleted_while_it_is_read_is_not_damage(fakes: StorageFakes) -> None:
    (node,) = await files(fakes, 100)

    def delete_it(blob_id: str) -> None:
        fakes.store.state.versions.pop(node.version_id)
        fakes.blobs.blobs.pop(blob_id)

    fakes.blobs.on_verify = delete_it
    report = await fakes.scrubber().run_pass(from_start=True)
    assert report.damaged == [] and not [e for e in fakes.state.events if e.kind == "storage.damaged"]


async def test_pacing_spends_the_byte_budget_on_every_byte_read(fakes: StorageFakes) -> None:
    sizes = (10_000, 3_000, 1, 2_048)
    await files(fakes, *sizes)
    monitor = FakeScrubMonitor()
    scrub = fakes.scrubber(monitor, bytes_per_second=2048)
    started = fakes.clock.monotonic()  # only the pacer's sleeps move this clock
    report = await scrub.run_pass(from_start=True)
    assert report.bytes == monitor.bytes == sum(sizes)
    assert fakes.clock.monotonic() - started == pytest.approx(sum(sizes) / 2048)
    # Paced inside a blob too: each blob is read a unit (here 1,024 bytes) at a time, with a sleep after each.
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    scrub.sleep = record
    await scrub.run_pass(from_start=True)
    assert len(sleeps) == 10 + 3 + 1 + 2 and max(sleeps) == 1024 / 2048
    assert sum(sleeps) == pytest.approx(sum(sizes) / 2048)


async def test_the_position_survives_a_restart(fakes: StorageFakes) -> None:
    await files(fakes, 10, 10, 10, 10, 10)
    seen: list[str] = []
    fakes.blobs.on_verify = seen.append
    first = fakes.scrubber(fraction_per_day=1.0)
    await first.run_once()
    fakes.clock.advance(timedelta(days=3 / 5))  # 3 of 5 blobs owed
    assert (await first.run_once()).blobs == 3
    restarted = fakes.scrubber(fraction_per_day=1.0, holders=FakeHolders())  # a new process: new tokens
    fakes.clock.advance(timedelta(days=2 / 5))
    report = await restarted.run_once()
    assert report.blobs == 2 and report.passes_completed == 1
    assert seen == blob_order(fakes)  # each once, in order: nothing verified twice, nothing skipped


async def test_scrub_now_finishes_the_current_pass_or_with_all_a_new_one(fakes: StorageFakes) -> None:
    await files(fakes, 10, 10, 10, 10)
    seen: list[str] = []
    fakes.blobs.on_verify = seen.append
    scrub = fakes.scrubber(fraction_per_day=1.0)
    await scrub.run_once()
    fakes.clock.advance(timedelta(days=1 / 4))
    await scrub.run_once()
    seen.clear()
    report = await scrub.run_pass()
    assert seen == blob_order(fakes)[1:] and report.passes_completed == 1 and fakes.state.scrub.position == ""
    seen.clear()
    await scrub.run_pass(from_start=True)
    assert seen == blob_order(fakes)


async def test_one_replica_at_a_time(fakes: StorageFakes) -> None:
    await files(fakes, 10, 10)
    other = FakeHolders()
    other.issued = 100  # another process's tokens
    fakes.store.state.scrub = ScrubState(ticked_at=fakes.clock.now() - timedelta(days=1))  # a pass is owed
    async with fakes.store.uow() as uow:  # a replica in the middle of a round
        now = fakes.clock.now()
        assert await uow.scrub.claim("holder-900", now + LEASE, now) is not None
        await uow.commit()
    scrub = fakes.scrubber(fraction_per_day=100.0, holders=other)
    assert (await scrub.run_once()).skipped
    fakes.clock.advance(timedelta(seconds=30))
    assert (await scrub.run_once()).skipped and fakes.state.scrub.holder == "holder-900"
    # Its process provably ended (a crash): taken over at once, not when the lease lapses.
    other.kill("holder-900")
    report = await scrub.run_once()
    assert not report.skipped and report.blobs == 2 and fakes.state.scrub.holder is None


async def test_a_lease_whose_holder_cannot_be_checked_lapses_by_time(fakes: StorageFakes) -> None:
    await files(fakes, 10)
    async with fakes.store.uow() as uow:  # a replica on another machine: never "gone"
        now = fakes.clock.now()
        await uow.scrub.claim("elsewhere", now + LEASE, now)
        await uow.commit()
    scrub = fakes.scrubber(fraction_per_day=100.0)
    assert (await scrub.run_once()).skipped
    fakes.clock.advance(LEASE + timedelta(seconds=1))
    assert not (await scrub.run_once()).skipped


async def test_a_fraction_of_zero_switches_it_off(fakes: StorageFakes) -> None:
    await files(fakes, 10)
    scrub = fakes.scrubber(fraction_per_day=0.0)
    fakes.clock.advance(days=400)
    assert (await scrub.run_once()).skipped and fakes.state.scrub.holder is None
