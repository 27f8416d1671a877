"""What share use cases need from the outside."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from share_svc.domain import Share


class Shares(Protocol):
    async def for_grantee_on(self, grantee_id: str, owner_id: str, node_ids: list[str]) -> list[Share]: ...
    async def outgoing(self, owner_id: str, after: str, limit: int) -> list[Share]: ...
    async def incoming(self, grantee_id: str, after: str, limit: int) -> list[Share]: ...


class UnitOfWork(Protocol):
    @property
    def shares(self) -> Shares: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...
