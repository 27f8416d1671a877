"""The time a service reads, injected by its composition root, so tests can move it instead of sleeping.

A service builds one clock in bootstrap.py and hands it to everything that reads the time (use cases, repositories,
signing keys, rate limits, housekeeping). Production uses `SystemClock`; tests use `FakeClock`:

    clock = FakeClock()                       # starts at the real current time (tokens stay valid elsewhere)
    clock.advance(timedelta(minutes=61))      # or clock.advance(3660.0), in seconds
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
"""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time (aware UTC, or Unix seconds) and a monotonic reading for measuring intervals."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...

    def time(self) -> float:
        """The current time in seconds since the Unix epoch (same instant as `now`)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go backwards: for cache ages and reload intervals."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()


class FakeClock:
    """A clock that moves only when told: `advance` moves wall and monotonic time, `set` only wall time (like an
    administrator setting the system clock)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._monotonic = 0.0

    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        return self._now.timestamp()

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, delta: timedelta | float) -> None:
        """Move forward by `delta` (a timedelta, or seconds)."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("a clock advances forwards; use set() to move the wall time back")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds

    def set(self, at: datetime) -> None:
        """Put the wall time at `at` (aware); monotonic time does not move."""
        if at.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware time")
        self._now = at.astimezone(UTC)
