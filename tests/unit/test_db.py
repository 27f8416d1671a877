"""The kernel's SQLite connections: one trip to the connection's thread per statement, same results."""

from __future__ import annotations

import asyncio
import json
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


class _Things(db.SqlUnitOfWork):
    def _bind(self, conn: Any) -> None:
        self.conn = conn


def _outbox(engine: Any) -> Any:
    from flowdock_kernel.audit import Outbox

    async def never(events: list[dict[str, Any]]) -> None:
        raise AssertionError("not delivering in this test")

    return Outbox(engine, service="test", send=never)


def test_read_only_units_of_work_do_not_wait_for_a_writer_and_cannot_commit(tmp_path: Path) -> None:
    """On SQLite every writing transaction takes the write lock at BEGIN (IMMEDIATE); a read-only one begins
    deferred and reads its snapshot while a writer holds the lock, instead of queueing behind it."""

    async def main() -> None:
        engine = db.make_engine(
            sa.URL.create("sqlite+aiosqlite", database=str(tmp_path / "t.db")), sqlite_immediate=True
        )
        async with engine.begin() as conn:
            await conn.run_sync(things.metadata.create_all)
            await conn.execute(things.insert().values(id=1, name="before"))
        sessions = db.connections(engine)
        async with _Things(sessions) as writer:
            await writer.conn.execute(things.update().values(name="uncommitted"))  # holds the write lock
            async with _Things(sessions, read_only=True) as reader:
                names = await asyncio.wait_for(reader.conn.execute(sa.select(things.c.name)), timeout=2)
                assert names.scalars().all() == ["before"]
                with pytest.raises(RuntimeError, match="read-only"):
                    await reader.commit()
            async with _Things(sessions) as second:  # a second writer waits for the lock, as it should
                waiting = asyncio.ensure_future(second.conn.execute(sa.select(things.c.name)))
                await asyncio.sleep(0.5)
                assert not waiting.done()
                await writer.commit()
                assert (await asyncio.wait_for(waiting, timeout=5)).scalars().all() == ["uncommitted"]
        await engine.dispose()

    asyncio.run(main())


def test_writers_of_one_process_queue_in_order(tmp_path: Path) -> None:
    """Write transactions of one process take SQLite's lock in the order they asked for it (an in-process queue),
    not whichever busy-handler poll happens to come first; every one of them commits."""

    async def main() -> None:
        engine = db.make_engine(
            sa.URL.create("sqlite+aiosqlite", database=str(tmp_path / "t.db")), sqlite_immediate=True
        )
        async with engine.begin() as conn:
            await conn.run_sync(things.metadata.create_all)
        sessions = db.connections(engine)
        order: list[int] = []

        async def writer(i: int) -> None:
            async with _Things(sessions) as w:
                await w.conn.execute(things.insert().values(id=i, name=f"n{i}"))
                order.append(i)  # this writer holds SQLite's lock now
                await asyncio.sleep(0.01)  # holds the lock while the others wait
                await w.commit()

        tasks = []
        for i in range(12):
            tasks.append(asyncio.ensure_future(writer(i)))
            await asyncio.sleep(0)  # each asks in turn
        await asyncio.gather(*tasks)
        assert order == list(range(12))
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(things))).scalar_one() == 12
        await engine.dispose()

    asyncio.run(main())


def test_audit_events_commit_with_their_change_and_never_without_it(tmp_path: Path) -> None:
    from flowdock_kernel.audit import audit_outbox
    from flowdock_kernel.audit import metadata as outbox_metadata

    async def main() -> None:
        engine = db.make_engine(
            sa.URL.create("sqlite+aiosqlite", database=str(tmp_path / "t.db")), sqlite_immediate=True
        )
        async with engine.begin() as conn:
            await conn.run_sync(things.metadata.create_all)
            await conn.run_sync(outbox_metadata.create_all)
        sessions, outbox = db.connections(engine), _outbox(engine)

        async def kinds() -> list[str]:
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.select(audit_outbox.c.event).order_by(audit_outbox.c.seq))).scalars()
                return [json.loads(r)["kind"] for r in rows]

        async with _Things(sessions, outbox) as uow:  # committed: the row and its event
            await uow.conn.execute(things.insert().values(id=1, name="a"))
            uow.events.record("thing.added", actor="u1", details={"id": "1"})
            await uow.commit()
        async with _Things(sessions, outbox) as uow:  # not committed: neither
            await uow.conn.execute(things.insert().values(id=2, name="b"))
            uow.events.record("thing.added", actor="u1", details={"id": "2"})
        async with _Things(sessions, outbox) as uow:  # refused: the error leaves the unit of work uncommitted
            uow.events.record("thing.added", actor="u1", details={"id": "3"})
            with pytest.raises(IntegrityError):
                await uow.conn.execute(things.insert().values(id=3, name="a"))
        assert await kinds() == ["thing.added"]
        assert await outbox.pending() == 1
        with pytest.raises(RuntimeError, match="no outbox"):
            _Things(sessions).events.record("x", actor="")
        await engine.dispose()

    asyncio.run(main())
