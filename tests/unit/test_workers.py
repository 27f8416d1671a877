"""The bounded pool password hashing runs on: off the event loop, a bounded backlog, a per-client cap, and a
refusal (ResourceExhausted with a retry delay, mapped to RESOURCE_EXHAUSTED + RetryInfo) when full."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from auth_svc.adapters import Argon2Hasher
from flowdock_kernel.errors import ResourceExhausted
from flowdock_kernel.grpc_errors import to_status
from flowdock_kernel.workers import BoundedPool


async def test_a_full_pool_refuses_at_once_with_a_retry_delay() -> None:
    pool = BoundedPool("test.pool", workers=1, queue=2)
    gate = threading.Event()
    try:
        running = [asyncio.ensure_future(pool.run(gate.wait, 10)) for _ in range(3)]  # 1 running + 2 queued
        await asyncio.sleep(0.05)
        assert pool.pending == 3
        started = time.monotonic()
        with pytest.raises(ResourceExhausted) as refused:
            await pool.run(time.sleep, 0)
        assert time.monotonic() - started < 0.5  # refused at once, not queued
        assert refused.value.limit == "test.pool.queue" and refused.value.retry_after_seconds
        assert _status_of(refused.value).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        gate.set()
        assert await asyncio.gather(*running) == [True, True, True]
        assert pool.pending == 0
        assert await pool.run(sum, [1, 2]) == 3  # room again
    finally:
        gate.set()
        pool.close()


def _status_of(exc: ResourceExhausted) -> status_pb2.Status:
    """The google.rpc.Status the kernel's error mapping sends: it carries RetryInfo."""
    status = to_status(exc)
    details = dict(status.trailing_metadata)["grpc-status-details-bin"]
    proto = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in proto.details) and retry.retry_delay.ToNanoseconds() > 0
    return proto


async def test_one_client_cannot_hold_more_than_its_share() -> None:
    pool = BoundedPool("test.pool", workers=1, queue=10, per_key=2)
    gate = threading.Event()
    try:
        mine = [asyncio.ensure_future(pool.run(gate.wait, 10, key="198.51.100.1")) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ResourceExhausted) as refused:
            await pool.run(time.sleep, 0, key="198.51.100.1")
        assert refused.value.limit == "test.pool.per_client"
        with pytest.raises(ResourceExhausted):  # the same answer up front, before a caller does any work
            pool.check("198.51.100.1")
        pool.check("198.51.100.2")
        assert pool.pending == 2  # checking admits nothing
        other = asyncio.ensure_future(pool.run(lambda: "other", key="198.51.100.2"))  # another client still gets in
        gate.set()
        assert await other == "other"
        await asyncio.gather(*mine)
    finally:
        gate.set()
        pool.close()


async def test_hashing_does_not_stall_the_event_loop() -> None:
    """Argon2id verifications run on the pool's threads: the loop keeps ticking meanwhile.

    The reference is one verification timed on the loop in the same test, so the check holds on a fast machine and a
    slow one alike (a fixed tick count failed in CI on a machine where hashing was quicker than here).
    """
    hasher = Argon2Hasher(memory_kib=19456, time_cost=4, parallelism=1, pool=BoundedPool("t", workers=1, queue=16))
    try:
        stored = hasher.hash_now("correct horse battery staple")
        started = time.monotonic()
        hasher._verify_now(stored, "wrong password!!")
        one = time.monotonic() - started  # what a single verification would block the loop for
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.002)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.ensure_future(ticker())
        results = await asyncio.gather(*(hasher.verify(stored, "wrong password!!") for _ in range(6)))
        done.set()
        await tick
        assert results == [False] * 6
        assert await hasher.verify(stored, "correct horse battery staple")
        # On the loop, the ticker would run only between verifications: about six gaps, each as long as `one`.
        # Off it, the ticker keeps running, so most gaps are far shorter than one verification.
        median = sorted(gaps)[len(gaps) // 2]
        assert len(gaps) > 12 and median < one / 3, (one, gaps)
    finally:
        hasher.close()
