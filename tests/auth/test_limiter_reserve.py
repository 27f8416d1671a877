"""Every rate limiter counts first, then decides: 50 attempts at once on one key with a limit of 5 get exactly 5
through (auth_svc's SQL limiter on SQLite and PostgreSQL, and the Redis one); a reserved attempt released (it was
not a failure) frees its place."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auth_svc import bootstrap
from auth_svc.adapters import RedisRateLimiter, SqlRateLimiter
from auth_svc.config import AuthConfig
from auth_svc.ports import RateLimiter
from tests.support.mesh import PG_URL, REDIS_URL, drop_databases, need_postgres, need_redis


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RateLimiter]:
    if request.param == "redis":
        need_redis()
        redis_limiter = RedisRateLimiter(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
        try:
            yield redis_limiter
        finally:
            await redis_limiter.close()
        return
    prefix = ""
    if request.param == "postgres":
        need_postgres()
        prefix = f"fdlim_{uuid.uuid4().hex[:8]}"
        config = AuthConfig(data_dir=tmp_path, db_url=f"{PG_URL}/{prefix}")
    else:
        config = AuthConfig(data_dir=tmp_path)
    bootstrap.migrate(config)
    engine = bootstrap.make_engine(config)
    try:
        yield SqlRateLimiter(engine)
    finally:
        await engine.dispose()
        if prefix:
            drop_databases(prefix)


async def test_fifty_attempts_at_once_get_exactly_the_limit_through(limiter: RateLimiter) -> None:
    results = await asyncio.gather(*(limiter.reserve("k", limit=5, window_seconds=60) for _ in range(50)))
    allowed = [attempt for attempt, wait in results if wait is None]
    assert len(allowed) == 5 and all(allowed), results
    assert all(wait is not None and wait > 0 for attempt, wait in results if attempt == "")
    assert await limiter.count("k", window_seconds=60) == 5
    waits = await asyncio.gather(*(limiter.hit("k", limit=5, window_seconds=60) for _ in range(10)))
    assert all(w is not None for w in waits)
    # A released attempt frees exactly one place.
    await limiter.release("k", allowed[0])
    again = await asyncio.gather(*(limiter.reserve("k", limit=5, window_seconds=60) for _ in range(10)))
    assert sum(wait is None for _, wait in again) == 1
    assert await limiter.count("k", window_seconds=60) == 5
    assert await limiter.hit("other", limit=5, window_seconds=60) is None  # keys are independent
