"""share_svc adapters: the shares table and its SQL repository."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from share_svc.domain import Role, Share

metadata = sa.MetaData()

shares = sa.Table(
    "shares",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("owner_id", sa.String(36), nullable=False),
    sa.Column("grantee_id", sa.String(36), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def _share(row: Any) -> Share:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Share(row.id, row.node_id, row.owner_id, row.grantee_id, Role(row.role), created)


class SqlShares:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def for_grantee_on(self, grantee_id: str, owner_id: str, node_ids: list[str]) -> list[Share]:
        q = sa.select(shares).where(
            shares.c.grantee_id == grantee_id, shares.c.owner_id == owner_id, shares.c.node_id.in_(node_ids)
        )
        return [_share(r) for r in (await self.s.execute(q)).all()]

    async def outgoing(self, owner_id: str, after: str, limit: int) -> list[Share]:
        q = sa.select(shares).where(shares.c.owner_id == owner_id, shares.c.id > after)
        return [_share(r) for r in (await self.s.execute(q.order_by(shares.c.id).limit(limit))).all()]

    async def incoming(self, grantee_id: str, after: str, limit: int) -> list[Share]:
        q = sa.select(shares).where(shares.c.grantee_id == grantee_id, shares.c.id > after)
        return [_share(r) for r in (await self.s.execute(q.order_by(shares.c.id).limit(limit))).all()]


class SqlUnitOfWork:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    async def __aenter__(self) -> Self:
        self._session = self._factory()
        self.shares = SqlShares(self._session)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()


def now() -> datetime:
    return datetime.now(UTC)
