"""Rate-limit windows in Redis (auth_redis_url): exact under concurrency, shared by replicas, fail closed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from auth_svc.adapters import RedisRateLimiter
from flowdock_kernel.clock import FakeClock
from flowdock_kernel.errors import Unavailable
from tests.support.mesh import REDIS_URL, Running, need_redis, start_up, stop_up


async def test_sliding_window_is_exact_under_concurrency() -> None:
    need_redis()
    limiter = RedisRateLimiter(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        results = await asyncio.gather(*(limiter.hit("k", limit=5, window_seconds=60) for _ in range(20)))
        assert sum(r is None for r in results) == 5
        # Each hit reads its own clock; concurrent ones may land a few ms out of order.
        assert all(r is not None and 1.0 <= r <= 60.5 for r in results if r is not None)
        assert await limiter.count("k", window_seconds=60) == 5
        assert await limiter.hit("other", limit=5, window_seconds=60) is None  # keys are independent
    finally:
        await limiter.close()


async def test_window_slides() -> None:
    need_redis()
    clock = FakeClock(datetime.fromtimestamp(1000, UTC))
    limiter = RedisRateLimiter(REDIS_URL, clock=clock, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        assert await limiter.hit("k", limit=2, window_seconds=10) is None
        clock.advance(4)
        assert await limiter.hit("k", limit=2, window_seconds=10) is None
        wait = await limiter.hit("k", limit=2, window_seconds=10)
        assert wait is not None
        assert wait == pytest.approx(6.0)
        clock.advance(6.5)  # the first attempt left the window
        assert await limiter.hit("k", limit=2, window_seconds=10) is None
    finally:
        await limiter.close()


async def test_unreachable_redis_fails_closed() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(Unavailable):
            await limiter.hit("k", limit=5, window_seconds=60)
    finally:
        await limiter.close()


@pytest.fixture(scope="module")
def redis_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    need_redis()
    env = {"FLOWDOCK_AUTH_REDIS_URL": REDIS_URL, "FLOWDOCK_AUTH_RATE_LOGIN_PER_ACCOUNT": "3"}
    running = start_up(Path(tmp_path_factory.mktemp("redis")) / "data", "sqlite", extra_env=env)
    try:
        yield running
    finally:
        code, err = stop_up(running)
        assert code == 0, err


def test_auth_svc_throttles_logins_through_redis(redis_mesh: Running) -> None:
    import redis

    email = f"r{uuid.uuid4().hex[:10]}@example.org"
    codes = [
        httpx.post(
            f"{redis_mesh.url}/api/v1/auth/login", json={"email": email, "password": "wrong password"}
        ).status_code
        for _ in range(6)
    ]
    assert codes[:3] == [401, 401, 401]
    assert set(codes[3:]) == {429}
    keys = redis.Redis.from_url(REDIS_URL).keys("flowdock:auth:rate:*")
    assert any(email.encode() in key for key in keys), keys
