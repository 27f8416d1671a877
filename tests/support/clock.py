"""The kernel's `FakeClock` at a fixed start, with keyword steps (`advance(minutes=5)`) for readable tests.

It is also callable (returns `now()`), which the port fakes use where a repository reads the time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowdock_kernel.clock import FakeClock as KernelFakeClock

# A fixed start: a test that depends on the wall clock would pass or fail by the time of day.
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock(KernelFakeClock):
    def __init__(self, start: datetime = START) -> None:
        super().__init__(start)

    def __call__(self) -> datetime:
        return self.now()

    def advance(self, delta: timedelta | float | None = None, **units: float) -> datetime:  # type: ignore[override]
        """Move forward by `delta` and/or keyword units (`minutes=5`); returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=float(delta or 0))
        super().advance(step + timedelta(**units))
        return self.now()
