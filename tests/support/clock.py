"""A clock the tests move by hand.

The use cases take `clock: Callable[[], datetime]` today; the kernel's `Clock` protocol (`now()`,
flowdock_kernel/clock.py) is on its way. This fake is both (callable, and `now()`), so the use-case tests work
before and after; once the kernel's `FakeClock` lands, this one can go.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# A fixed start: a test that depends on the wall clock would pass or fail by the time of day.
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by `delta` or by keyword units (`minutes=5`); returns the new time."""
        self.current += (delta or timedelta()) + timedelta(**units)
        return self.current
