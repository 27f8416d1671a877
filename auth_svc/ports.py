"""What the use cases need from the outside world; adapters implement these, unit tests fake them."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from auth_svc.domain import Session, User


class Users(Protocol):
    async def by_email(self, email: str) -> User | None: ...
    async def by_id(self, user_id: str) -> User | None: ...
    async def add(self, user: User) -> None: ...
    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...


class Sessions(Protocol):
    async def add(self, session: Session) -> None: ...


class UnitOfWork(Protocol):
    """A transaction: rolled back unless `commit` is called."""

    users: Users
    sessions: Sessions

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, stored_hash: str, password: str) -> bool: ...
    def needs_rehash(self, stored_hash: str) -> bool: ...


class TokenIssuer(Protocol):
    ttl_seconds: int

    def issue_access(self, user: User, session_id: str) -> str: ...
