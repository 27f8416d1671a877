"""The listing page cache (storage_svc/readmodel.py, issue 15 item 4) on real databases: a page is served again
from memory only while the folder's children revision (bumped by triggers, migration 0007) is unchanged, so a
change made by another replica (its own engine and use cases), or by any process writing the database directly,
is seen by the very next listing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from flowdock.storage.v1 import storage_pb2
from storage_svc import readmodel
from storage_svc.domain import OnConflict
from storage_svc.usecases import Tree
from tests.storage.test_upload_writes import Stack, stack
from tests.support.mesh import PG_URL, drop_databases, need_postgres

Body = Callable[[Stack, Stack, sa.Engine], Awaitable[None]]


def _two_replicas(body: Body, tmp_path: Path, database: str) -> None:
    """Two stacks (engines, use cases) over one database, as two replicas are, and a plain synchronous engine
    standing for any other process."""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
        prefix = ""
    else:
        need_postgres()
        prefix = f"fdlist_{uuid.uuid4().hex[:8]}"
        url = f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{prefix}_storage"
    other = sa.create_engine(make_url(url).set(drivername="sqlite" if database == "sqlite" else "postgresql+psycopg"))

    async def run() -> None:
        async with stack(url, tmp_path / "a") as a, stack(url, tmp_path / "b") as b:
            await body(a, b, other)

    try:
        asyncio.run(run())
    finally:
        other.dispose()
        if prefix:
            drop_databases(prefix)


async def _no_shares(*_: object) -> None:
    return None


async def _listed(tree: Tree, user: str, folder: str) -> dict[str, str]:
    """name → id of the folder's children, decoded from the wire bytes the listing serves."""
    page, _, _ = await tree.list_children(user, folder, 1000, "")
    wire = page.wire  # type: ignore[attr-defined]  # the read model's WirePage
    return {n.name: n.id for n in storage_pb2.ListChildrenResponse.FromString(wire).nodes}


async def _names(tree: Tree, user: str, folder: str) -> list[str]:
    return sorted(await _listed(tree, user, folder))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_change_anywhere_is_seen_by_the_next_listing(tmp_path: Path, database: str) -> None:
    async def body(a: Stack, b: Stack, other: sa.Engine) -> None:
        ta, tb = a.uploads.tree, b.uploads.tree
        user = str(uuid.uuid4())
        docs = await ta.create_folder(user, "root", "Docs")
        for i in range(3):
            await ta.create_folder(user, docs.id, f"f{i}")
        assert await _names(ta, user, docs.id) == ["f0", "f1", "f2"]
        # Listed again, unchanged: the same page object from the cache, and no rows of `nodes` read for it.
        first, _, _ = await ta.list_children(user, docs.id, 1000, "")
        a.statements.clear()
        again, _, _ = await ta.list_children(user, docs.id, 1000, "")
        assert again is first

        # Another replica adds an entry: seen at once by this one.
        await tb.create_folder(user, docs.id, "from-b")
        assert await _names(ta, user, docs.id) == ["f0", "f1", "f2", "from-b"]
        # Another process renames one in the database directly.
        with other.begin() as conn:
            conn.execute(sa.text("UPDATE nodes SET name = 'renamed', name_key = 'renamed' WHERE name = 'f1'"))
        assert await _names(ta, user, docs.id) == ["f0", "f2", "from-b", "renamed"]
        # A move by the other replica changes both listings; trash takes an entry out.
        inner = await ta.create_folder(user, "root", "Inner")
        assert await _names(ta, user, inner.id) == []
        ids = await _listed(ta, user, docs.id)
        await tb.update_node(user, ids["f0"], "", inner.id, OnConflict.FAIL)
        assert await _names(ta, user, inner.id) == ["f0"]
        assert await _names(ta, user, docs.id) == ["f2", "from-b", "renamed"]
        tb.access.policy.drop_shares = _no_shares  # type: ignore[attr-defined]  # no share_svc here: none to drop
        await tb.delete_node(user, ids["f2"])
        assert await _names(ta, user, docs.id) == ["from-b", "renamed"]
        with other.begin() as conn:
            revs = dict(conn.execute(sa.text("SELECT folder_id, rev FROM folder_revs")).all())
        assert revs[docs.id] >= 7 and revs[inner.id] >= 1

    _two_replicas(body, tmp_path, database)


def test_the_cache_is_bounded_by_bytes() -> None:
    cache = readmodel.PageCache(4000)
    for i in range(20):
        cache.put(("f", i), readmodel.WirePage(b"x" * 500, 1, False, None))
    assert cache.bytes <= 4000 and len(cache) == 8
    assert cache.get(("f", 0)) is None and cache.get(("f", 19)) is not None
    cache.put(("big", 0), readmodel.WirePage(b"x" * 1500, 1, False, None))  # over a quarter: not kept
    assert cache.get(("big", 0)) is None
