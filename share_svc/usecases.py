"""Share use cases: listings and access decisions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowdock_kernel.errors import InvalidArgument
from share_svc import domain
from share_svc.domain import Action, Share
from share_svc.ports import UnitOfWork

MAX_PATH = 512
MAX_PAGE = 1000


@dataclass
class Sharing:
    uow: Callable[[], UnitOfWork]
    page_size: int

    async def check_access(self, caller: str, node_path: list[str], owner_id: str, action: Action) -> bool:
        if not node_path:
            raise InvalidArgument("node_path", "must name the node and its ancestors")
        if len(node_path) > MAX_PATH:
            raise InvalidArgument("node_path", f"must have at most {MAX_PATH} entries")
        if caller == owner_id:
            return True
        async with self.uow() as uow:
            grants = await uow.shares.for_grantee_on(caller, owner_id, node_path)
        return domain.permits(grants, action)

    def _limit(self, page_size: int) -> int:
        if page_size < 0 or page_size > MAX_PAGE:
            raise InvalidArgument("page_size", f"must be between 0 and {MAX_PAGE}")
        return page_size or self.page_size

    async def outgoing(self, caller: str, page_size: int, page_token: str) -> tuple[list[Share], str]:
        limit = self._limit(page_size)
        async with self.uow() as uow:
            rows = await uow.shares.outgoing(caller, page_token, limit + 1)
        return rows[:limit], rows[limit - 1].id if len(rows) > limit else ""

    async def incoming(self, caller: str, page_size: int, page_token: str) -> tuple[list[Share], str]:
        limit = self._limit(page_size)
        async with self.uow() as uow:
            rows = await uow.shares.incoming(caller, page_token, limit + 1)
        return rows[:limit], rows[limit - 1].id if len(rows) > limit else ""
