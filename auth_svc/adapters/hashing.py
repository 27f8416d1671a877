"""Passwords: Argon2id hashing off the event loop, and the list of common passwords refused at registration."""

from __future__ import annotations

import argon2

from flowdock_kernel.workers import BoundedPool


class Argon2Hasher:
    """Argon2id on a bounded worker pool (never on the event loop): a full pool answers RESOURCE_EXHAUSTED at once.
    `requester` (the client IP) caps how many slots one client may hold."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, pool: BoundedPool | None = None) -> None:
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
        )
        self._pool = pool or BoundedPool("auth.password_hashing", workers=1, queue=64)

    def hash_now(self, password: str) -> str:
        """On the calling thread: for the CLI (creating an admin), not for request handling."""
        return self._ph.hash(password)

    def _verify_now(self, stored_hash: str, password: str) -> bool:
        try:
            return self._ph.verify(stored_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def hash(self, password: str, *, requester: str = "") -> str:
        return await self._pool.run(self._ph.hash, password, key=requester)

    async def verify(self, stored_hash: str, password: str, *, requester: str = "") -> bool:
        return await self._pool.run(self._verify_now, stored_hash, password, key=requester)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._ph.check_needs_rehash(stored_hash)

    def check_capacity(self, *, requester: str = "") -> None:
        self._pool.check(requester)

    def close(self) -> None:
        self._pool.close()


def common_passwords(count: int) -> frozenset[str]:
    """The `count` most common passwords of zxcvbn's ranked list (30,000 from real leaks), lower-cased."""
    if count <= 0:
        return frozenset()
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"][:count])
