"""The listing fast paths give exactly what the general conversions give: rows → Nodes (SQLite and PostgreSQL),
datetimes → protobuf Timestamps, and the listing read model's pages (rows → serialised ListChildrenResponse, with
the same order, paging and cursors as Nodes.children) on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from sqlalchemy.engine import make_url

from flowdock.storage.v1 import storage_pb2
from flowdock_kernel import db
from flowdock_kernel.wire import timestamp
from storage_svc import readmodel
from storage_svc.adapters import SqlUnitOfWork, _node, nodes
from storage_svc.bootstrap import MIGRATIONS
from storage_svc.domain import CURSOR_KEYS, Cursor, Kind, Node, OrderBy, from_micros, kind_rank, micros, sort_key
from storage_svc.servicer import add_nodes, node_pb
from tests.support.mesh import PG_URL, drop_databases, need_postgres

MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2030, 6, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
    datetime(2026, 3, 29, 1, 30, 0, 250000),  # naive: UTC, as Timestamp.FromDatetime reads it
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_timestamps_as_from_datetime(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    assert timestamp(moment) == expected


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_cursor_times_exact(moment: datetime) -> None:
    """A listing cursor's modification time (µs since 1970) is exact from year 1 to 9999 and back (a float
    timestamp rounded year 9999 into year 10000, which no cursor could then be decoded from)."""
    us = micros(moment)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert from_micros(us) == aware and from_micros(us).utcoffset() == timedelta(0)
    assert us == (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def reference_pb(node: Node) -> storage_pb2.Node:
    """node_pb as it was written before the fast path: the specification of the wire format."""
    created, modified = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    created.FromDatetime(node.created_at)
    modified.FromDatetime(node.modified_at)
    kinds = {Kind.FOLDER: storage_pb2.NODE_KIND_FOLDER, Kind.FILE: storage_pb2.NODE_KIND_FILE}
    return storage_pb2.Node(
        id=node.id,
        parent_id=node.parent_id or "",
        name=node.name,
        kind=kinds[node.kind],
        size=node.size,
        create_time=created,
        modify_time=modified,
        content_type=node.content_type,
        sha256=node.sha256,
        owner_id=node.owner_id,
    )


def sample_tree(owner: str) -> list[Node]:
    """A root and its children: files and folders, unicode names, empty fields, timestamps from year 1 to 9999 (and
    before 1970), equal sort values (ties broken by id), and two trashed entries that no listing may show."""
    base = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    root = Node(str(uuid.uuid4()), owner, None, "", Kind.FOLDER, 0, base, base)
    many = [root]
    names = ["日本語のファイル.txt", "Ärger", "emoji 🚀 file", "zz", "ZZ top", "a", "Ωmega.bin", "same size"]
    for i, name in enumerate(names):
        is_file = i % 3 != 1
        many.append(
            Node(
                str(uuid.uuid4()),
                owner,
                root.id,
                name,
                Kind.FILE if is_file else Kind.FOLDER,
                4096 if is_file else 0,  # equal sizes: the id decides
                base,
                base if i % 2 else MOMENTS[3],  # equal modification times too
                content_type="" if i == 0 else ("application/octet-stream" if is_file else ""),  # an empty type
                sha256="" if i == 0 else ("ab" * 32 if is_file else ""),
                blob_id="ab" * 32 if is_file else "",
                version_id=str(uuid.uuid4()) if is_file else "",
            )
        )
    for name in ("trashed file.txt", "trashed folder"):
        many.append(
            Node(
                str(uuid.uuid4()), owner, root.id, name, Kind.FILE if "file" in name else Kind.FOLDER, 7, base, base,
                trashed_at=base, trash_root_id="",
            )
        )  # fmt: skip
    for i, moment in enumerate(MOMENTS[:6] * 3):
        is_file = i % 2 == 0
        digest = hashlib.sha256(str(i).encode()).hexdigest()
        many.append(
            Node(
                str(uuid.uuid4()),
                owner,
                root.id,
                f"Éntry {i:02d}.txt" if is_file else f"folder {i:02d}",
                Kind.FILE if is_file else Kind.FOLDER,
                i * 1_234_567 if is_file else 0,
                moment,
                moment + timedelta(days=1, microseconds=i) if moment.year < 9999 else moment,
                content_type="text/plain" if is_file else "",
                sha256=digest if is_file else "",
                blob_id=digest if is_file else "",
                version_id=str(uuid.uuid4()) if is_file else "",
            )
        )
    return many


async def compare(url: str) -> None:
    sync_url = make_url(url).set(drivername="sqlite" if url.startswith("sqlite") else "postgresql+psycopg")
    db.ensure_database(sync_url)
    db.migrate(sync_url, MIGRATIONS)
    engine = db.make_engine(make_url(url))
    sessions = db.connections(engine)
    owner = str(uuid.uuid4())
    tree = sample_tree(owner)
    try:
        async with SqlUnitOfWork(sessions) as uow:
            await uow.nodes.add_many(tree)
            await uow.commit()
        async with SqlUnitOfWork(sessions) as uow:
            listed = await uow.nodes.children(tree[0].id, OrderBy.NAME, False, None, 1000)
        q = (
            sa.select(nodes)
            .where(nodes.c.parent_id == tree[0].id, nodes.c.trashed_at.is_(None))
            .order_by(nodes.c.kind_rank, nodes.c.name_key, nodes.c.id)
        )
        async with engine.connect() as conn:
            general = [_node(r) for r in (await conn.execute(q)).all()]
        assert listed == general and len(listed) == len(tree) - 3  # the root and two trashed entries
        for fast, slow in zip(listed, general, strict=True):
            assert (fast.created_at.utcoffset(), fast.modified_at.utcoffset()) == (timedelta(0), timedelta(0))
            assert node_pb(fast) == reference_pb(slow)
        response = storage_pb2.ListChildrenResponse(next_page_token="t")
        add_nodes(response.nodes, listed)
        expected = storage_pb2.ListChildrenResponse(nodes=[reference_pb(n) for n in general], next_page_token="t")
        assert response.SerializeToString() == expected.SerializeToString()
        await compare_pages(sessions, tree[0].id, general)
    finally:
        await engine.dispose()


async def compare_pages(sessions: db.Connections, folder_id: str, live: list[Node]) -> None:
    """The read model's pages against the general path (Nodes.children → domain Nodes → the reference conversion),
    in every order, both directions, with page sizes that split ties, paging with the cursors each side makes."""
    for order in OrderBy:
        for descending in (False, True):
            for size in (1, 2, 3, 1000):
                seen: list[str] = []
                after: Cursor | None = None
                while True:
                    async with SqlUnitOfWork(sessions) as uow:
                        page = await uow.listings.children(folder_id, order, descending, after, size)
                        rows = await uow.nodes.children(folder_id, order, descending, after, size + 1)
                    more, rows = len(rows) > size, rows[:size]
                    token = Cursor(kind_rank(rows[-1].kind), sort_key(rows[-1], order), rows[-1].id) if more else None
                    expected = storage_pb2.ListChildrenResponse(nodes=[reference_pb(n) for n in rows])
                    assert page.wire == expected.SerializeToString(), (order, descending, size)
                    assert (page.count, page.more) == (len(rows), more)
                    if more:
                        assert page.last is not None
                        assert Cursor(kind_rank(page.last.kind), sort_key(page.last, order), page.last.id) == token
                    seen += [n.id for n in rows]
                    if token is None:
                        break
                    after = Cursor.decode(token.encode(), CURSOR_KEYS[order])
                assert sorted(seen) == sorted(n.id for n in live) and len(set(seen)) == len(seen)
                # Folders first, then the order asked for, ties broken by id (reversed with `descending`).
                ranked = sorted(live, key=lambda n: (sort_key(n, order), n.id), reverse=descending)
                assert seen == [n.id for n in sorted(ranked, key=lambda n: kind_rank(n.kind))]


async def empty_page(url: str) -> None:
    engine = db.make_engine(make_url(url))
    try:
        async with SqlUnitOfWork(db.connections(engine)) as uow:
            page = await uow.listings.children(str(uuid.uuid4()), OrderBy.NAME, False, None, 10)
        assert (page.wire, page.count, page.more, page.last) == (b"", 0, False, None)
    finally:
        await engine.dispose()


def test_listing_rows_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}"
    asyncio.run(compare(url))
    asyncio.run(empty_page(url))


def test_listing_rows_postgres() -> None:
    need_postgres()
    prefix = f"fdconv_{uuid.uuid4().hex[:8]}"
    try:
        url = f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://', 1)}/{prefix}_storage"
        asyncio.run(compare(url))
        asyncio.run(empty_page(url))
    finally:
        drop_databases(prefix)


def test_listing_memo_gives_each_row_its_own_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memoised entries are the bytes a fresh build gives, a changed row is built again, and a full memo starts over."""
    monkeypatch.setattr(readmodel, "_memo", {})
    monkeypatch.setattr(readmodel, "MEMO_ENTRIES", 5)
    owner, parent = str(uuid.uuid4()), str(uuid.uuid4())

    def row(name: str, size: int = 0) -> tuple[object, ...]:
        kind, sha = ("file", "ab" * 32) if size else ("folder", "")
        when = "2026-12-03 11:05:00.123456"
        return (str(uuid.uuid4()), parent, name, kind, size, when, when, "text/plain" if size else "", sha, owner)

    rows = [row("a"), row("b", 300), row("é" * 200, 1 << 40)]  # a Node over 127 bytes: a two-byte length
    first = readmodel.encode(rows)
    assert first == readmodel._build(rows) and len(readmodel._memo) == 3
    assert readmodel.encode(rows) == first and readmodel.encode(rows[::-1]) == readmodel._build(rows[::-1])
    renamed = [rows[0], (*rows[1][:2], "b2", *rows[1][3:]), rows[2]]
    assert readmodel.encode(renamed) == readmodel._build(renamed) != first
    assert len(readmodel._memo) == 4
    more = [row(f"n{i}") for i in range(3)]
    assert readmodel.encode(more) == readmodel._build(more) and len(readmodel._memo) == 3  # 4 + 3 > 5: started over
    assert readmodel.encode(list(map(list, rows))) == first  # rows as lists (any sequence) too


def test_compact_entries_leave_out_the_shared_parent_and_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readmodel, "_memo", {})
    owner, other, parent = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    when = "2026-12-03 11:05:00.123456"
    rows = [
        (str(uuid.uuid4()), parent, f"n{i}", "folder", 0, when, when, "", "", o) for i, o in enumerate([owner, other])
    ]
    full = storage_pb2.ListChildrenResponse.FromString(readmodel.encode(rows))
    compact = storage_pb2.ListChildrenResponse.FromString(readmodel.encode(rows, owner))
    assert [(n.parent_id, n.owner_id) for n in full.nodes] == [(parent, owner), (parent, other)]
    assert [(n.parent_id, n.owner_id) for n in compact.nodes] == [("", ""), ("", other)]  # a differing owner stays
    assert readmodel.encode(rows) == full.SerializeToString()  # both forms memoised apart
    for n in compact.nodes:
        n.parent_id, n.owner_id = parent, n.owner_id or owner
    assert compact == full
