"""Rate limits for guessable operations: a sliding-window log in Redis (several replicas) or the database."""

from __future__ import annotations

import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth_svc.adapters.tables import rate_events
from flowdock_kernel import db
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.errors import Unavailable

log = logging.getLogger("flowdock.auth")


class RedisRateLimiter:
    """The same sliding-window log in Redis: one sorted set per key (score = time), trimmed, counted and added to by
    one Lua script, so concurrent attempts on several auth replicas are counted exactly (count first, then decide)."""

    _HIT = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
return false
"""

    def __init__(self, url: str, clock: Clock | None = None, *, prefix: str = "flowdock:auth:rate:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._clock = clock or SystemClock()
        self._prefix = prefix
        self._script = self._redis.register_script(self._HIT)

    async def reserve(self, key: str, *, limit: int, window_seconds: float) -> tuple[str, float | None]:
        now = self._clock.time()
        member = f"{now}:{uuid.uuid4().hex}"
        try:
            wait = await self._script(keys=[self._prefix + key], args=[now, window_seconds, limit, member])
        except Exception as exc:  # redis.RedisError and connection failures alike: fail closed, retryable
            raise Unavailable("rate-limit store (Redis) unreachable; retry shortly") from exc
        return ("", max(1.0, float(wait))) if wait is not None else (member, None)

    async def release(self, key: str, attempt_id: str) -> None:
        try:
            await self._redis.zrem(self._prefix + key, attempt_id)
        except Exception:  # the attempt succeeded; at worst it stays counted as a failure until the window ends
            log.warning("rate-limit store (Redis) unreachable; an attempt stays counted", exc_info=True)

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        return (await self.reserve(key, limit=limit, window_seconds=window_seconds))[1]

    async def count(self, key: str, *, window_seconds: float) -> int:
        try:
            return int(await self._redis.zcount(self._prefix + key, self._clock.time() - window_seconds, "+inf"))
        except Exception as exc:
            raise Unavailable("rate-limit store (Redis) unreachable; retry shortly") from exc

    async def close(self) -> None:
        await self._redis.aclose()


class SqlRateLimiter:
    """Sliding-window log in the service's database: one row per attempt, counted over the last window.

    Count first, then decide: attempts on one key are serialised (a PostgreSQL advisory lock on the key; on SQLite
    the transaction's first statement, a delete of the key's expired rows, takes the database's write lock), so
    the count an attempt sees includes every attempt before it and 50 parallel guesses cannot all pass."""

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._last_prune = 0.0

    async def _count(self, conn: AsyncConnection, key: str, since: float) -> tuple[int, float | None]:
        row = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.min(rate_events.c.at)).where(
                    rate_events.c.key == key, rate_events.c.at > since
                )
            )
        ).one()
        return int(row[0]), (float(row[1]) if row[1] is not None else None)

    async def reserve(self, key: str, *, limit: int, window_seconds: float) -> tuple[str, float | None]:
        now = self._clock.time()
        since = now - window_seconds
        async with self._engine.begin() as conn:
            await db.lock_key(conn, "auth.rate:" + key)
            await conn.execute(rate_events.delete().where(rate_events.c.key == key, rate_events.c.at <= since))
            count, oldest = await self._count(conn, key, since)
            if count >= limit:
                return "", max(1.0, (oldest or now) + window_seconds - now)
            seq = (
                await conn.execute(rate_events.insert().values(key=key, at=now).returning(rate_events.c.seq))
            ).scalar_one()
            if now - self._last_prune > 300:
                self._last_prune = now
                await conn.execute(rate_events.delete().where(rate_events.c.at < now - 86400))
        return str(seq), None

    async def release(self, key: str, attempt_id: str) -> None:
        if not attempt_id.isdigit():
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                rate_events.delete().where(rate_events.c.key == key, rate_events.c.seq == int(attempt_id))
            )

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> float | None:
        return (await self.reserve(key, limit=limit, window_seconds=window_seconds))[1]

    async def count(self, key: str, *, window_seconds: float) -> int:
        async with self._engine.connect() as conn:
            count, _ = await self._count(conn, key, self._clock.time() - window_seconds)
        return count
