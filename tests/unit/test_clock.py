"""The kernel's clock: the system one agrees with the machine, the fake one moves only when told."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from flowdock_kernel.clock import Clock, FakeClock, SystemClock


def test_the_system_clock_reads_the_machine_time_in_utc() -> None:
    clock: Clock = SystemClock()
    before = time.time()
    now, stamp = clock.now(), clock.time()
    after = time.time()
    assert now.tzinfo is UTC
    assert before - 1 <= now.timestamp() <= after + 1 and before <= stamp <= after
    first = clock.monotonic()
    assert clock.monotonic() >= first


def test_the_fake_clock_moves_only_when_told() -> None:
    start = datetime(2030, 1, 1, 12, tzinfo=UTC)
    clock: Clock = FakeClock(start)
    assert isinstance(clock, FakeClock)
    assert clock.now() == start and clock.time() == start.timestamp() and clock.monotonic() == 0.0
    clock.advance(timedelta(minutes=61))
    clock.advance(2.5)
    assert clock.now() == start + timedelta(minutes=61, seconds=2.5)
    assert clock.time() == clock.now().timestamp()
    assert clock.monotonic() == 61 * 60 + 2.5
    clock.set(start - timedelta(days=1))  # the wall clock set back: intervals keep counting forwards
    assert clock.now() == start - timedelta(days=1) and clock.monotonic() == 61 * 60 + 2.5


def test_the_fake_clock_starts_near_now_and_keeps_utc() -> None:
    assert abs(FakeClock().time() - time.time()) < 5
    berlin = datetime(2030, 6, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert FakeClock(berlin).now() == berlin and FakeClock(berlin).now().tzinfo is UTC


def test_the_fake_clock_refuses_naive_times_and_going_back() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))
    clock = FakeClock()
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="forwards"):
        clock.advance(-1)
