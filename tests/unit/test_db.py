"""The kernel's SQLite connections: one trip to the connection's thread per statement, same results."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from flowdock_kernel import db

things = sa.Table(
    "things", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String, unique=True)
)


def test_each_statement_is_one_trip_and_results_are_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trips: list[Any] = []
    original = db._OneTripConnection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(db._OneTripConnection, "_execute", counted)

    async def main() -> None:
        engine = db.make_engine(
            sa.URL.create("sqlite+aiosqlite", database=str(tmp_path / "t.db")), sqlite_immediate=True
        )
        async with engine.begin() as conn:
            await conn.run_sync(things.metadata.create_all)
        sessions = db.connections(engine)
        async with sessions() as s:
            await s.execute(things.insert(), [{"id": i, "name": f"n{i}"} for i in range(1, 301)])
            await s.commit()
        async with sessions() as s:
            await s.execute(sa.text("SELECT 1"))  # BEGIN IMMEDIATE happens here, not counted below
            trips.clear()
            rows = (await s.execute(sa.select(things).order_by(things.c.id))).all()
            assert len(trips) == 1
            assert [r.name for r in rows[:2]] == ["n1", "n2"] and len(rows) == 300
            assert (await s.execute(sa.select(things.c.name).where(things.c.id == 7))).scalar_one() == "n7"
            assert (await s.execute(sa.select(things).where(things.c.id == 0))).first() is None
            result = await s.execute(things.update().where(things.c.id > 290).values(name=things.c.name + "x"))
            assert result.rowcount == 10  # type: ignore[attr-defined]
            assert len(trips) == 4
            await s.commit()
        async with sessions() as s:
            with pytest.raises(IntegrityError):
                await s.execute(things.insert().values(id=999, name="n1"))
            await s.rollback()
            assert (await s.execute(sa.select(sa.func.count()).select_from(things))).scalar_one() == 300
        await engine.dispose()

    asyncio.run(main())
