"""Group commit ("commit whoever is waiting"): concurrent callers' items go into one batch of work (one transaction,
one round of fsyncs) instead of one each, with no added wait for a lone caller.

Leader/follower: `submit` queues an item; if no batch is running, a task starts one at once and goes on while items
are waiting; items that arrive during a batch make the next one. Used by storage_svc for small files' metadata
(storage_svc/usecases/smallfiles.py). Not for their blobs' fsyncs: one thread doing a batch's fdatasyncs in turn
was 5-10x slower than a thread per file (ext4's journal already lets concurrent fsyncs share a commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
R = TypeVar("R")


class GroupCommit(Generic[ItemT, R]):
    """Leader/follower batching: `submit` queues an item; if no batch is running, a task starts one at once and
    goes on while items are waiting. `run` gets the batch and returns one outcome per item (a result or the
    exception that item's caller gets)."""

    def __init__(self, run: Callable[[list[ItemT]], Awaitable[list[R | BaseException]]], max_batch: int):
        self._run = run
        self._max = max_batch
        self._waiting: list[tuple[ItemT, asyncio.Future[R]]] = []
        self._leader: asyncio.Task[None] | None = None

    def submit(self, item: ItemT) -> asyncio.Future[R]:
        """Queue `item`; the future is its outcome. Await it shielded: the batch goes on if the caller goes away
        (a cancelled RPC must not cancel the transaction holding the others' files), and the outcome then still
        says whether the item was committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._leader is None:
            self._leader = asyncio.create_task(self._lead())
        return future

    async def _lead(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                stop: BaseException | None = None
                try:
                    outcomes = await self._run([item for item, _ in batch])
                except BaseException as exc:
                    outcomes = [exc] * len(batch)  # every caller of the batch gets it
                    stop = None if isinstance(exc, Exception) else exc
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, asyncio.CancelledError):
                        future.cancel()
                    elif isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                if stop is not None:
                    raise stop  # the loop is going away (cancelled): nothing more starts
        finally:
            self._leader = None
            for _, future in self._waiting:
                if not future.done():
                    future.cancel()
            self._waiting = []
