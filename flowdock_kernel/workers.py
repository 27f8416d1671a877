"""A bounded pool for CPU-heavy calls (password hashing): off the event loop, never an unbounded backlog.

Argon2id costs tens of milliseconds of CPU per call. Run on the event loop, every anonymous guess stalls every other
call of the process; run on an unbounded executor, a flood builds a queue that makes everyone wait seconds. Here at
most `workers` calls run at once and at most `queue` more wait; beyond that (or beyond `per_key` calls of one
requester, e.g. one client IP, so a few flooding clients cannot fill the queue for everyone) the answer is
ResourceExhausted with a retry delay, at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from flowdock_kernel.errors import ResourceExhausted

T = TypeVar("T")


class BoundedPool:
    def __init__(
        self, name: str, *, workers: int, queue: int, per_key: int = 0, retry_after_seconds: float = 1.0
    ) -> None:
        if workers < 1 or queue < 0 or per_key < 0:
            raise ValueError("workers must be >= 1, queue and per_key >= 0")
        self.name = name
        self.workers = workers
        self.capacity = workers + queue
        self.per_key = per_key
        self.retry_after_seconds = retry_after_seconds
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()  # done-callbacks run on worker threads
        self._pending = 0
        self._by_key: Counter[str] = Counter()

    @property
    def pending(self) -> int:
        """Calls running or waiting (for metrics and tests)."""
        return self._pending

    def check(self, key: str = "") -> None:
        """Refuse now (ResourceExhausted) if a call for `key` would be refused: lets a caller skip the work it would
        do before its call (database round trips) when the pool is full anyway. Admits nothing."""
        with self._lock:
            self._refuse_if_full(key)

    def _refuse_if_full(self, key: str) -> None:
        if self._pending >= self.capacity:
            raise ResourceExhausted(
                f"the server is busy ({self.name}: {self.capacity} calls running or queued); retry shortly",
                limit=f"{self.name}.queue",
                retry_after_seconds=self.retry_after_seconds,
            )
        if key and self.per_key and self._by_key[key] >= self.per_key:
            raise ResourceExhausted(
                f"too many concurrent requests from this client ({self.name}: at most {self.per_key}); retry shortly",
                limit=f"{self.name}.per_client",
                retry_after_seconds=self.retry_after_seconds,
            )

    def _admit(self, key: str) -> None:
        with self._lock:
            self._refuse_if_full(key)
            self._pending += 1
            if key:
                self._by_key[key] += 1

    def _done(self, key: str) -> None:
        with self._lock:
            self._pending -= 1
            if key:
                self._by_key[key] -= 1
                if self._by_key[key] <= 0:
                    del self._by_key[key]

    async def run(self, fn: Callable[..., T], *args: object, key: str = "") -> T:
        """`fn(*args)` on a worker thread. The slot is held until the thread finishes, even if the caller gives up
        (a cancelled call cannot stop a running hash, so it still counts)."""
        self._admit(key)
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._done(key)
            raise
        future.add_done_callback(lambda _f: self._done(key))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
