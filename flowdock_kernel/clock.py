"""Time as a dependency: use cases ask an injected clock, so tests can set the time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told (tests): `set` a time or `advance` it."""

    def __init__(self, at: datetime | None = None) -> None:
        self._at = at or datetime(2024, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, seconds: float) -> None:
        self._at += timedelta(seconds=seconds)
