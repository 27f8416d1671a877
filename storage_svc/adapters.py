"""storage_svc adapters: tables and SQL repositories, the local-disk blob store, share_svc's access client."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock_kernel import db, metrics
from flowdock_kernel.errors import AlreadyExists, NotFound, ResourceExhausted, Unauthenticated, Unavailable
from storage_svc.domain import (
    Cursor,
    Decision,
    Kind,
    LinkScope,
    Node,
    OnConflict,
    OrderBy,
    ScrubState,
    StoredBlob,
    TrashEntry,
    Upload,
    UploadState,
    Usage,
    Version,
    from_micros,
    kind_rank,
    name_key,
)

metadata = sa.MetaData()

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.String(36), nullable=False),
    sa.Column("parent_id", sa.String(36), sa.ForeignKey("nodes.id"), nullable=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(1024), nullable=False),
    sa.Column("kind_rank", sa.SmallInteger, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("blob_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("version_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("trash_root_id", sa.String(36), nullable=True),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("owner_id", sa.String(36), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("blob_id", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

quotas = sa.Table(
    "quotas",
    metadata,
    sa.Column("owner_id", sa.String(36), primary_key=True),
    sa.Column("used_bytes", sa.BigInteger, nullable=False),
    sa.Column("reserved_bytes", sa.BigInteger, nullable=False),
    sa.Column("limit_bytes", sa.BigInteger, nullable=True),
)

#: What each file-drop link has taken so far (every upload started through it counts, an aborted one too).
link_drops = sa.Table(
    "link_drops",
    metadata,
    sa.Column("link_id", sa.String(80), primary_key=True),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

#: Each folder's children revision, bumped by triggers on `nodes` (migration 0007): the listing page cache's key.
folder_revs = sa.Table(
    "folder_revs",
    metadata,
    sa.Column("folder_id", sa.String(36), primary_key=True),
    sa.Column("rev", sa.BigInteger, nullable=False),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.String(36), nullable=False, index=True),
    sa.Column("parent_id", sa.String(36), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("committed_size", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("writer", sa.String(32), nullable=True),
    sa.Column("writer_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("on_conflict", sa.String(16), nullable=False, server_default="fail"),
    sa.Column("target_node_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("failure", sa.String(1024), nullable=False, server_default=""),
    sa.Column("creator_id", sa.String(80), nullable=False, server_default=""),
)

#: Where the scrub is and who holds its lease: one row (id "blobs"), created by migration 0006.
scrub_state = sa.Table(
    "scrub_state",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("position", sa.String(64), nullable=False, server_default=""),
    sa.Column("pass_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("credit", sa.Float, nullable=False, server_default="0"),
    sa.Column("ticked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("holder", sa.String(32), nullable=True),
    sa.Column("holder_until", sa.DateTime(timezone=True), nullable=True),
)
SCRUB_ROW = "blobs"

LIVE = nodes.c.trashed_at.is_(None)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _node(row: Any) -> Node:
    return Node(
        id=row.id,
        owner_id=row.owner_id,
        parent_id=row.parent_id,
        name=row.name,
        kind=Kind(row.kind),
        size=row.size,
        created_at=_aware(row.created_at),
        modified_at=_aware(row.modified_at),
        content_type=row.content_type,
        sha256=row.sha256,
        blob_id=row.blob_id,
        version_id=row.version_id,
        trashed_at=_aware(row.trashed_at) if row.trashed_at else None,
        trash_root_id=row.trash_root_id or "",
    )


# Listings turn up to a page (1,000) of rows into Nodes per request, so that path is kept lean: only the columns a
# Node holds, in one fixed order unpacked as a tuple (no per-attribute row lookups), and the timestamps as SQLite
# stores them (text, UTC), parsed with one C call per value instead of SQLAlchemy's DateTime processing plus a
# `replace(tzinfo=...)`. PostgreSQL hands back aware datetimes either way; they pass through unchanged.
_TEXT_TIMES = ("created_at", "modified_at", "trashed_at")


def node_columns(names: tuple[str, ...]) -> tuple[Any, ...]:
    """Columns of `nodes` by name, in that order, the timestamps as stored (SQLite: text; see above)."""
    return tuple(
        sa.type_coerce(nodes.c[name], sa.String).label(name) if name in _TEXT_TIMES else nodes.c[name] for name in names
    )


NODE_COLUMNS = node_columns((
    "id", "owner_id", "parent_id", "name", "kind", "size", "created_at", "modified_at",
    "content_type", "sha256", "blob_id", "version_id", "trashed_at", "trash_root_id",
))  # fmt: skip
_KINDS = {k.value: k for k in Kind}
_from_iso = datetime.fromisoformat


def stored_time(value: str | datetime) -> datetime:
    """A stored timestamp as an aware datetime: SQLite's text (written by SQLAlchemy: UTC, no offset) or a driver's
    datetime (naive means UTC, as in `_aware`)."""
    if isinstance(value, str):
        return _from_iso(value + "+00:00")
    return _aware(value)


def _nodes(rows: Any) -> list[Node]:
    """Nodes from rows selected with NODE_COLUMNS (the listing path; same values as `_node`)."""
    kinds = _KINDS
    when = stored_time
    return [
        Node(i, o, p, n, kinds[k], s, when(c), when(m), ct, sha, b, v, when(t) if t else None, tr or "")
        for i, o, p, n, k, s, c, m, ct, sha, b, v, t, tr in rows
    ]


def _node_values(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "owner_id": node.owner_id,
        "parent_id": node.parent_id,
        "name": node.name,
        "name_key": name_key(node.name),
        "kind_rank": kind_rank(node.kind),
        "kind": node.kind.value,
        "size": node.size,
        "content_type": node.content_type,
        "sha256": node.sha256,
        "blob_id": node.blob_id,
        "created_at": node.created_at,
        "modified_at": node.modified_at,
        "trashed_at": node.trashed_at,
        "version_id": node.version_id,
        "trash_root_id": node.trash_root_id or None,
    }


def _version(row: Any) -> Version:
    return Version(
        id=row.id,
        node_id=row.node_id,
        owner_id=row.owner_id,
        number=row.number,
        blob_id=row.blob_id,
        size=row.size,
        sha256=row.sha256,
        content_type=row.content_type,
        created_at=_aware(row.created_at),
    )


def _version_values(version: Version) -> dict[str, Any]:
    return {
        "id": version.id,
        "node_id": version.node_id,
        "owner_id": version.owner_id,
        "number": version.number,
        "blob_id": version.blob_id,
        "size": version.size,
        "sha256": version.sha256,
        "content_type": version.content_type,
        "created_at": version.created_at,
    }


def _upload(row: Any) -> Upload:
    return Upload(
        id=row.id,
        owner_id=row.owner_id,
        parent_id=row.parent_id,
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        content_type=row.content_type,
        committed_size=row.committed_size,
        state=UploadState(row.state),
        created_at=_aware(row.created_at),
        expires_at=_aware(row.expires_at),
        node_id=row.node_id,
        on_conflict=OnConflict(row.on_conflict),
        target_node_id=row.target_node_id,
        failure=row.failure,
        creator_id=row.creator_id,
        writer_until=_aware(row.writer_until) if row.writer_until is not None else None,
        writer=row.writer or "",
    )


_ORDER_COLUMNS = {OrderBy.NAME: nodes.c.name_key, OrderBy.SIZE: nodes.c.size, OrderBy.MODIFIED: nodes.c.modified_at}


def _cursor_value(order: OrderBy, key: str | int) -> Any:
    if order == OrderBy.MODIFIED:
        return from_micros(int(key))
    return key


_KIND_RANKS = sorted({kind_rank(k) for k in Kind})  # folders (0) before files (1)


def children_statements(
    columns: tuple[Any, ...], order: OrderBy, descending: bool, after_rank: int | None
) -> tuple[Any, ...]:
    """The statements whose results, concatenated, are a folder's live children in listing order (folders first;
    `descending` reverses the rest) after a cursor of kind `after_rank` (None: from the start), each a bounded walk
    of the listing index of `order` (parent_id, kind_rank, sort column, id), selecting `columns`. Bound by name:
    parent_id, after_rank, after_key, after_id, limit (`children_params`). Shared with the listing read model
    (storage_svc/readmodel.py), so both list the same rows in the same order; each caches what it builds.

    Ascending is one statement (a row-value comparison the index answers). Descending cannot be: its order
    (kind_rank up, the rest down) has mixed directions, which no single index walk gives, so one statement sorted
    every remaining entry of the folder per page (SQLite: a temp B-tree; PostgreSQL: a bitmap scan and a sort).
    Instead there is one statement per kind from the cursor's kind on, each walking its part of the index
    backwards; the second runs only when the first does not fill the page."""
    column = _ORDER_COLUMNS[order]
    key, after_id = sa.bindparam("after_key", type_=column.type), sa.bindparam("after_id", type_=nodes.c.id.type)
    limit = sa.bindparam("limit", type_=sa.Integer)
    base = sa.select(*columns).where(nodes.c.parent_id == sa.bindparam("parent_id"), LIVE)
    if not descending:
        q = base
        if after_rank is not None:
            here = sa.tuple_(sa.bindparam("after_rank", type_=nodes.c.kind_rank.type), key, after_id)
            q = q.where(sa.tuple_(nodes.c.kind_rank, column, nodes.c.id) > here)
        return (q.order_by(nodes.c.kind_rank, column, nodes.c.id).limit(limit),)
    parts = []
    for rank in _KIND_RANKS:
        if after_rank is not None and rank < after_rank:
            continue
        q = base.where(nodes.c.kind_rank == rank)
        if rank == after_rank:
            q = q.where(sa.tuple_(column, nodes.c.id) < sa.tuple_(key, after_id))
        parts.append(q.order_by(column.desc(), nodes.c.id.desc()).limit(limit))
    return tuple(parts)


@functools.cache
def _node_children(order: OrderBy, descending: bool, after_rank: int | None) -> tuple[Any, ...]:
    """children_statements of NODE_COLUMNS, built once per shape."""
    return children_statements(NODE_COLUMNS, order, descending, after_rank)


def children_params(parent_id: str, order: OrderBy, after: Cursor | None) -> dict[str, Any]:
    if after is None:
        return {"parent_id": parent_id}
    return {
        "parent_id": parent_id,
        "after_rank": after.kind_rank,
        "after_key": _cursor_value(order, after.key),
        "after_id": after.id,
    }


async def _children_rows(
    s: AsyncConnection, parent_id: str, order: OrderBy, descending: bool, after: Cursor | None, limit: int
) -> list[Any]:
    """Up to `limit` rows of NODE_COLUMNS: the statements of _node_children in turn until the page is full."""
    rows: list[Any] = []
    params = children_params(parent_id, order, after)
    for part in _node_children(order, descending, after.kind_rank if after is not None else None):
        rows += (await s.execute(part, {**params, "limit": limit - len(rows)})).all()
        if len(rows) >= limit:
            break
    return rows


def _subtree_cte(root_id: str, *, live: bool) -> Any:
    """Recursive CTE of a node and its descendants: one query, however deep the tree."""
    base = sa.select(nodes.c.id).where(nodes.c.id == root_id).cte("subtree", recursive=True)
    child = sa.select(nodes.c.id).join(base, nodes.c.parent_id == base.c.id)
    if live:
        child = child.where(LIVE)
    return base.union_all(child)


# Statements every upload or lookup runs, built once with bound parameters: building one per call (coercing each
# value, generating its cache key) cost more CPU than running it on SQLite.
_LIVE_NODE = sa.select(nodes).where(nodes.c.id == sa.bindparam("id"), LIVE)
_ANY_NODE = sa.select(nodes).where(nodes.c.id == sa.bindparam("id"))
_INSERT_NODE = nodes.insert()
_INSERT_VERSION = versions.insert()
_INSERT_UPLOAD = uploads.insert()


class SqlNodes:
    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def get(self, node_id: str) -> Node | None:
        row = (await self.s.execute(_LIVE_NODE, {"id": node_id})).first()
        return _node(row) if row else None

    async def get_any(self, node_id: str) -> Node | None:
        row = (await self.s.execute(_ANY_NODE, {"id": node_id})).first()
        return _node(row) if row else None

    async def root(self, owner_id: str) -> Node | None:
        q = sa.select(nodes).where(nodes.c.owner_id == owner_id, nodes.c.parent_id.is_(None))
        row = (await self.s.execute(q)).first()
        return _node(row) if row else None

    async def folders(self, root_owners: list[str], ids: list[str]) -> list[Node]:
        which = []
        if root_owners:
            which.append(sa.and_(nodes.c.parent_id.is_(None), nodes.c.owner_id.in_(root_owners)))
        if ids:
            which.append(sa.and_(nodes.c.id.in_(ids), LIVE))
        if not which:
            return []
        return [_node(row) for row in await self.s.execute(sa.select(nodes).where(sa.or_(*which)))]

    async def add(self, node: Node) -> None:
        try:
            async with self.s.begin_nested():
                await self.s.execute(_INSERT_NODE, _node_values(node))
        except IntegrityError as exc:
            # A concurrent creator took the name (or the root) first: the same AlreadyExists as a commit clash.
            raise AlreadyExists("an entry with this name already exists") from exc

    async def add_file(self, node: Node, version: Version) -> None:
        try:
            await self.s.execute(_INSERT_NODE, _node_values(node))
        except IntegrityError as exc:
            raise AlreadyExists("an entry with this name already exists") from exc
        await self.s.execute(_INSERT_VERSION, _version_values(version))

    async def add_files(self, files: list[tuple[Node, Version]]) -> None:
        try:
            await self.s.execute(_INSERT_NODE, [_node_values(node) for node, _ in files])
        except IntegrityError as exc:
            raise AlreadyExists("an entry with one of these names already exists") from exc
        await self.s.execute(_INSERT_VERSION, [_version_values(version) for _, version in files])

    async def add_many(self, many: list[Node]) -> None:
        # Parents before children (the list comes in tree order), in batches.
        for i in range(0, len(many), 500):
            await self.s.execute(_INSERT_NODE, [_node_values(n) for n in many[i : i + 500]])

    async def update(self, node: Node) -> None:
        values = _node_values(node)
        del values["id"]
        await self.s.execute(nodes.update().where(nodes.c.id == node.id).values(**values))

    async def child_named(self, parent_id: str, key: str) -> Node | None:
        q = sa.select(nodes).where(nodes.c.parent_id == parent_id, nodes.c.name_key == key, LIVE)
        row = (await self.s.execute(q)).first()
        return _node(row) if row else None

    async def taken_names(self, parent_id: str, prefix_key: str) -> set[str]:
        q = sa.select(nodes.c.name_key).where(
            nodes.c.parent_id == parent_id, LIVE, nodes.c.name_key.startswith(prefix_key, autoescape=True)
        )
        return set((await self.s.execute(q)).scalars())

    async def children(
        self, parent_id: str, order: OrderBy, descending: bool, after: Cursor | None, limit: int
    ) -> list[Node]:
        """Bounded index walks, never a query per entry (one per page; a descending page that spans folders and
        files takes two). Folders come first either way."""
        return _nodes(await _children_rows(self.s, parent_id, order, descending, after, limit))

    async def subtree(self, node_id: str, *, live: bool) -> list[Node]:
        cte = _subtree_cte(node_id, live=live)
        q = sa.select(*NODE_COLUMNS).where(nodes.c.id.in_(sa.select(cte.c.id)))
        found = {n.id: n for n in _nodes((await self.s.execute(q)).all())}
        if not live:
            found = {k: n for k, n in found.items() if n.trash_root_id == node_id}
        # Tree order: parents before children.
        ordered: list[Node] = []
        frontier = [node_id]
        children: dict[str, list[Node]] = {}
        for n in found.values():
            children.setdefault(n.parent_id or "", []).append(n)
        if node_id in found:
            ordered.append(found[node_id])
        while frontier:
            nxt: list[str] = []
            for parent in frontier:
                for child in children.get(parent, []):
                    if child.id != node_id:
                        ordered.append(child)
                        nxt.append(child.id)
            frontier = nxt
        return ordered

    async def trash_tree(self, root_id: str, at: datetime) -> None:
        cte = _subtree_cte(root_id, live=True)
        await self.s.execute(
            nodes.update().where(nodes.c.id.in_(sa.select(cte.c.id))).values(trashed_at=at, trash_root_id=root_id)
        )

    async def restore_tree(self, root_id: str) -> None:
        await self.s.execute(
            nodes.update().where(nodes.c.trash_root_id == root_id).values(trashed_at=None, trash_root_id=None)
        )

    async def trash_roots(self, owner_id: str, after: Cursor | None, limit: int) -> list[TrashEntry]:
        q = sa.select(*NODE_COLUMNS).where(nodes.c.owner_id == owner_id, nodes.c.trash_root_id == nodes.c.id)
        if after is not None:
            at = from_micros(int(after.key))
            q = q.where(sa.tuple_(nodes.c.trashed_at, nodes.c.id) < sa.tuple_(sa.literal(at), sa.literal(after.id)))
        q = q.order_by(nodes.c.trashed_at.desc(), nodes.c.id.desc()).limit(limit)
        roots = _nodes((await self.s.execute(q)).all())
        if not roots:
            return []
        sizes_q = (
            sa.select(nodes.c.trash_root_id, sa.func.coalesce(sa.func.sum(versions.c.size), 0))
            .join(versions, versions.c.node_id == nodes.c.id)
            .where(nodes.c.trash_root_id.in_([r.id for r in roots]))
            .group_by(nodes.c.trash_root_id)
        )
        sizes = {root: int(total) for root, total in (await self.s.execute(sizes_q)).all()}
        return [TrashEntry(r, sizes.get(r.id, 0)) for r in roots]

    async def trash_roots_older_than(self, at: datetime, limit: int) -> list[Node]:
        q = sa.select(nodes).where(nodes.c.trash_root_id == nodes.c.id, nodes.c.trashed_at < at).limit(limit)
        return [_node(r) for r in (await self.s.execute(q)).all()]

    async def rehome_trash_below(self, root_id: str, new_parent_id: str) -> None:
        below = nodes.alias("below")  # an alias: the same table in the subquery must not correlate to the update
        tree = sa.select(below.c.id).where(below.c.trash_root_id == root_id)
        await self.s.execute(
            nodes.update()
            .where(nodes.c.trash_root_id == nodes.c.id, nodes.c.id != root_id, nodes.c.parent_id.in_(tree))
            .values(parent_id=new_parent_id)
        )

    async def delete_tree(self, root_id: str) -> None:
        await self.s.execute(nodes.delete().where(nodes.c.trash_root_id == root_id))

    async def search(
        self,
        owner_id: str,
        query: str,
        kind: Kind | None,
        modified_after: datetime | None,
        modified_before: datetime | None,
        min_size: int,
        max_size: int,
        after: Cursor | None,
        limit: int,
    ) -> list[Node]:
        q = sa.select(*NODE_COLUMNS).where(
            nodes.c.owner_id == owner_id, LIVE, nodes.c.parent_id.is_not(None), _name_contains(self.s, query)
        )
        if kind is not None:
            q = q.where(nodes.c.kind == kind.value)
        if modified_after is not None:
            q = q.where(nodes.c.modified_at >= modified_after)
        if modified_before is not None:
            q = q.where(nodes.c.modified_at < modified_before)
        if min_size:
            q = q.where(nodes.c.size >= min_size)
        if max_size:
            q = q.where(nodes.c.size <= max_size)
        if after is not None:
            q = q.where(
                sa.tuple_(nodes.c.name_key, nodes.c.id) > sa.tuple_(sa.literal(after.key), sa.literal(after.id))
            )
        q = q.order_by(nodes.c.name_key, nodes.c.id).limit(limit)
        return _nodes((await self.s.execute(q)).all())

    async def delete_owner(self, owner_id: str) -> None:
        # One statement: the self-referencing foreign key is checked at its end (SQLite and PostgreSQL), when no
        # row of the owner's tree is left to point at another (trees never cross owners).
        await self.s.execute(nodes.delete().where(nodes.c.owner_id == owner_id))


def _name_contains(s: AsyncConnection, key: str) -> Any:
    """Case-insensitive substring on name_key, answered by an index: PostgreSQL pg_trgm (GIN), SQLite FTS5 trigram.

    Both trigram indexes need 3 characters; shorter queries fall back to a scan of the owner's rows.
    """
    dialect = s.dialect.name
    if dialect == "sqlite" and len(key) >= 3 and not any(c in key for c in "%_\\"):
        # FTS5's trigram index answers LIKE only without an ESCAPE clause.
        fts = sa.table("nodes_fts", sa.column("rowid"), sa.column("name_key"))
        return sa.literal_column("nodes.rowid").in_(sa.select(fts.c.rowid).where(fts.c.name_key.like(f"%{key}%")))
    pattern = "%" + key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return nodes.c.name_key.like(pattern, escape="\\")


class SqlVersions:
    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def add(self, version: Version) -> None:
        await self.s.execute(_INSERT_VERSION, _version_values(version))

    async def get(self, version_id: str) -> Version | None:
        row = (await self.s.execute(sa.select(versions).where(versions.c.id == version_id))).first()
        return _version(row) if row else None

    async def of_node(self, node_id: str) -> list[Version]:
        q = sa.select(versions).where(versions.c.node_id == node_id).order_by(versions.c.number.desc())
        return [_version(r) for r in (await self.s.execute(q)).all()]

    async def of_nodes(self, node_ids: list[str], *, all_versions: bool = False) -> list[Version]:
        out: list[Version] = []
        for i in range(0, len(node_ids), 500):
            batch = node_ids[i : i + 500]
            if all_versions:
                q = sa.select(versions).where(versions.c.node_id.in_(batch))
            else:
                q = sa.select(versions).join(nodes, nodes.c.version_id == versions.c.id).where(nodes.c.id.in_(batch))
            out += [_version(r) for r in (await self.s.execute(q)).all()]
        return out

    async def next_number(self, node_id: str) -> int:
        q = sa.select(sa.func.coalesce(sa.func.max(versions.c.number), 0)).where(versions.c.node_id == node_id)
        return int((await self.s.execute(q)).scalar_one()) + 1

    async def delete(self, version_ids: list[str]) -> None:
        for i in range(0, len(version_ids), 500):
            await self.s.execute(versions.delete().where(versions.c.id.in_(version_ids[i : i + 500])))

    async def of_owner(self, owner_id: str) -> list[Version]:
        q = sa.select(versions).where(versions.c.owner_id == owner_id)
        return [_version(r) for r in (await self.s.execute(q)).all()]

    async def bytes_in_trash(self, owner_id: str) -> int:
        q = (
            sa.select(sa.func.coalesce(sa.func.sum(versions.c.size), 0))
            .join(nodes, nodes.c.id == versions.c.node_id)
            .where(nodes.c.owner_id == owner_id, nodes.c.trashed_at.is_not(None))
        )
        return int((await self.s.execute(q)).scalar_one())

    async def bytes_not_current(self, owner_id: str) -> int:
        q = (
            sa.select(sa.func.coalesce(sa.func.sum(versions.c.size), 0))
            .join(nodes, nodes.c.id == versions.c.node_id)
            .where(nodes.c.owner_id == owner_id, nodes.c.version_id != versions.c.id)
        )
        return int((await self.s.execute(q)).scalar_one())


# Conditional quota updates: the owner's row changes only if used + reserved + n stays within the limit (the row's
# own, else the configured default `lim`). Built once (see _LIVE_NODE).
_FITS = quotas.c.used_bytes + quotas.c.reserved_bytes + sa.bindparam("n") <= sa.func.coalesce(
    quotas.c.limit_bytes, sa.bindparam("lim")
)
_RESERVE = (
    quotas.update()
    .where(quotas.c.owner_id == sa.bindparam("o"), _FITS)
    .values(reserved_bytes=quotas.c.reserved_bytes + sa.bindparam("n"))
)
_CONSUME = (
    quotas.update()
    .where(quotas.c.owner_id == sa.bindparam("o"), _FITS)
    .values(used_bytes=quotas.c.used_bytes + sa.bindparam("n"))
)


_TAKE_DROP = (
    link_drops.update()
    .where(
        link_drops.c.link_id == sa.bindparam("l"),
        link_drops.c.files + 1 <= sa.bindparam("mf"),
        link_drops.c.bytes + sa.bindparam("n") <= sa.bindparam("mb"),
    )
    .values(files=link_drops.c.files + 1, bytes=link_drops.c.bytes + sa.bindparam("n"))
)


class SqlLinkDrops:
    """Per-link counters changed by one conditional UPDATE, so parallel drops cannot pass the limits together."""

    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def take(self, link_id: str, size: int, max_files: int, max_bytes: int) -> tuple[int, int] | None:
        params = {"l": link_id, "n": size, "mf": max_files, "mb": max_bytes}
        if (await self.s.execute(_TAKE_DROP, params)).rowcount:
            return None
        exists = (await self.s.execute(sa.select(link_drops.c.link_id).where(link_drops.c.link_id == link_id))).first()
        if exists is None:
            try:
                async with self.s.begin_nested():
                    await self.s.execute(link_drops.insert().values(link_id=link_id, files=0, bytes=0))
            except IntegrityError:
                pass  # created concurrently
            if (await self.s.execute(_TAKE_DROP, params)).rowcount:
                return None
        row = (await self.s.execute(sa.select(link_drops).where(link_drops.c.link_id == link_id))).one()
        return int(row.files), int(row.bytes)


class SqlQuotas:
    """Usage counters per owner, changed only by conditional UPDATEs so concurrent uploads cannot overspend."""

    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def _ensure(self, owner_id: str) -> None:
        exists = (await self.s.execute(sa.select(quotas.c.owner_id).where(quotas.c.owner_id == owner_id))).first()
        if exists is None:
            try:
                async with self.s.begin_nested():
                    await self.s.execute(quotas.insert().values(owner_id=owner_id, used_bytes=0, reserved_bytes=0))
            except IntegrityError:
                pass  # created concurrently

    async def _update(self, owner_id: str, statement: Any, params: dict[str, Any] | None = None) -> bool:
        """Run a conditional UPDATE of the owner's row; the row is created on first use (one statement when the
        row exists and the condition holds, which is nearly always). Otherwise the UPDATE runs once more after
        making sure the row exists: on PostgreSQL the first one may have missed a row another transaction
        committed meanwhile (read committed: the second statement sees it)."""
        result = await self.s.execute(statement, params)
        if result.rowcount:
            return True
        await self._ensure(owner_id)
        return bool((await self.s.execute(statement, params)).rowcount)

    async def get(self, owner_id: str, default_limit: int) -> Usage:
        row = (await self.s.execute(sa.select(quotas).where(quotas.c.owner_id == owner_id))).first()
        if row is None:
            return Usage(0, 0, default_limit)
        return Usage(
            row.used_bytes, row.reserved_bytes, row.limit_bytes if row.limit_bytes is not None else default_limit
        )

    async def reserve(self, owner_id: str, size: int, default_limit: int) -> bool:
        return await self._update(owner_id, _RESERVE, {"o": owner_id, "n": size, "lim": default_limit})

    async def consume(self, owner_id: str, size: int, default_limit: int) -> bool:
        return await self._update(owner_id, _CONSUME, {"o": owner_id, "n": size, "lim": default_limit})

    async def consume_many(self, charges: dict[str, int], default_limit: int) -> bool:
        params = [{"o": owner, "n": size, "lim": default_limit} for owner, size in charges.items()]
        result = await self.s.execute(_CONSUME, params)
        return bool(result.rowcount == len(params))

    async def settle(self, owner_id: str, reserved: int, used: int) -> None:
        await self._update(
            owner_id,
            quotas.update()
            .where(quotas.c.owner_id == owner_id)
            .values(
                reserved_bytes=sa.case(
                    (quotas.c.reserved_bytes + reserved < 0, 0), else_=quotas.c.reserved_bytes + reserved
                ),
                used_bytes=sa.case((quotas.c.used_bytes + used < 0, 0), else_=quotas.c.used_bytes + used),
            ),
        )

    async def reset(self, owner_id: str) -> None:
        await self.s.execute(quotas.delete().where(quotas.c.owner_id == owner_id))

    async def set_limit(self, owner_id: str, limit: int | None) -> None:
        await self._ensure(owner_id)
        await self.s.execute(quotas.update().where(quotas.c.owner_id == owner_id).values(limit_bytes=limit))


_UPLOAD = sa.select(uploads).where(uploads.c.id == sa.bindparam("id"))
# The hot statements of a chunk write, built once (building an expression costs more CPU than SQLite running it).
_CLAIM = (
    uploads.update()
    .where(
        uploads.c.id == sa.bindparam("p_id"),
        uploads.c.state == UploadState.OPEN.value,
        sa.or_(
            uploads.c.writer.is_(None),
            uploads.c.writer_until < sa.bindparam("p_now"),
            uploads.c.writer == sa.bindparam("p_token"),
        ),
    )
    .values(writer=sa.bindparam("p_token"), writer_until=sa.bindparam("p_until"))
    .returning(*uploads.c)
)
_ADVANCE = (
    uploads.update()
    .where(uploads.c.id == sa.bindparam("p_id"), uploads.c.writer == sa.bindparam("p_token"))
    .values(
        committed_size=sa.bindparam("p_committed"),
        writer_until=sa.bindparam("p_until"),
        expires_at=sa.bindparam("p_expires"),
    )
)
_ADVANCE_RELEASE = (
    uploads.update()
    .where(uploads.c.id == sa.bindparam("p_id"), uploads.c.writer == sa.bindparam("p_token"))
    .values(
        committed_size=sa.bindparam("p_committed"), writer=None, writer_until=None, expires_at=sa.bindparam("p_expires")
    )
)
_RELEASE = (
    uploads.update()
    .where(uploads.c.id == sa.bindparam("p_id"), uploads.c.writer == sa.bindparam("p_token"))
    .values(writer=None, writer_until=None)
)


def _upload_values(upload: Upload) -> dict[str, Any]:
    return dict(
        id=upload.id,
        owner_id=upload.owner_id,
        parent_id=upload.parent_id,
        name=upload.name,
        size=upload.size,
        sha256=upload.sha256,
        content_type=upload.content_type,
        committed_size=upload.committed_size,
        state=upload.state.value,
        node_id=upload.node_id,
        created_at=upload.created_at,
        expires_at=upload.expires_at,
        on_conflict=upload.on_conflict.value,
        target_node_id=upload.target_node_id,
        failure=upload.failure,
        creator_id=upload.creator_id,
    )


class SqlUploads:
    def __init__(self, s: AsyncConnection) -> None:
        self.s = s
        # Outcomes written in this transaction (metrics.UPLOAD_OUTCOMES), counted once it commits.
        self.outcomes: list[str] = []

    async def get(self, upload_id: str) -> Upload | None:
        row = (await self.s.execute(_UPLOAD, {"id": upload_id})).first()
        return _upload(row) if row else None

    async def add(self, upload: Upload) -> None:
        await self.s.execute(_INSERT_UPLOAD, _upload_values(upload))
        if upload.state == UploadState.COMPLETED:
            self.outcomes.append("completed")

    async def add_many(self, many: list[Upload]) -> None:
        await self.s.execute(_INSERT_UPLOAD, [_upload_values(upload) for upload in many])
        self.outcomes.extend("completed" for upload in many if upload.state == UploadState.COMPLETED)

    async def acquire(self, upload_id: str, token: str, until: datetime, now: datetime, state: UploadState) -> bool:
        """Take the writer lease; `state` FINISHING also moves an OPEN upload into FINISHING."""
        free = sa.or_(uploads.c.writer.is_(None), uploads.c.writer_until < now, uploads.c.writer == token)
        allowed = (
            [UploadState.OPEN.value]
            if state == UploadState.OPEN
            else [UploadState.OPEN.value, UploadState.FINISHING.value]
        )
        result = await self.s.execute(
            uploads.update()
            .where(uploads.c.id == upload_id, uploads.c.state.in_(allowed), free)
            .values(writer=token, writer_until=until, state=state.value)
        )
        return bool(result.rowcount)

    async def claim(self, upload_id: str, token: str, until: datetime, now: datetime) -> Upload | None:
        """Take the writer lease of an OPEN upload and read it, in one statement; None if it is not OPEN or another
        writer holds it (or it does not exist)."""
        params = {"p_id": upload_id, "p_token": token, "p_until": until, "p_now": now}
        row = (await self.s.execute(_CLAIM, params)).first()
        return _upload(row) if row else None

    async def advance(
        self,
        upload_id: str,
        token: str,
        committed: int,
        until: datetime,
        expires_at: datetime,
        *,
        release: bool = False,
    ) -> bool:
        """Record the committed size (renewing the lease, or letting it go with `release`) if `token` holds it."""
        params = {"p_id": upload_id, "p_token": token, "p_committed": committed, "p_expires": expires_at}
        if release:
            result = await self.s.execute(_ADVANCE_RELEASE, params)
        else:
            result = await self.s.execute(_ADVANCE, {**params, "p_until": until})
        return bool(result.rowcount)

    async def release(self, upload_id: str, token: str) -> None:
        await self.s.execute(_RELEASE, {"p_id": upload_id, "p_token": token})

    async def take_over(
        self, upload_id: str, old_token: str, token: str, until: datetime, state: UploadState
    ) -> Upload | None:
        allowed = [UploadState.OPEN.value]
        if state == UploadState.FINISHING:
            allowed.append(UploadState.FINISHING.value)
        # Compare and swap on the old token: of two replicas that both found the holder gone, one wins.
        row = (
            await self.s.execute(
                uploads.update()
                .where(uploads.c.id == upload_id, uploads.c.writer == old_token, uploads.c.state.in_(allowed))
                .values(writer=token, writer_until=until, state=state.value)
                .returning(*uploads.c)
            )
        ).first()
        return _upload(row) if row else None

    async def set_state(self, upload_id: str, state: UploadState, *, node_id: str = "", failure: str = "") -> None:
        values: dict[str, Any] = {"state": state.value, "failure": failure[:1024]}
        if node_id:
            values["node_id"] = node_id
        await self.s.execute(uploads.update().where(uploads.c.id == upload_id).values(**values))
        if state == UploadState.COMPLETED:
            self.outcomes.append("completed")
        elif state == UploadState.FAILED:
            self.outcomes.append(metrics.outcome_of_failure(failure))

    async def delete(self, upload_id: str) -> None:
        await self.s.execute(uploads.delete().where(uploads.c.id == upload_id))

    async def expire(self, upload_id: str) -> None:
        await self.delete(upload_id)
        self.outcomes.append("expired")

    async def expired(self, now: datetime, limit: int) -> list[Upload]:
        q = sa.select(uploads).where(
            uploads.c.expires_at < now,
            sa.or_(uploads.c.writer.is_(None), uploads.c.writer_until < now),
            uploads.c.state != UploadState.FINISHING.value,
        )
        return [_upload(r) for r in (await self.s.execute(q.limit(limit))).all()]

    async def delete_finished(self, now: datetime) -> int:
        """Expired COMPLETED and FAILED uploads in one statement: they hold no reservation and no staging bytes."""
        finished = [UploadState.COMPLETED.value, UploadState.FAILED.value]
        q = uploads.delete().where(uploads.c.expires_at < now, uploads.c.state.in_(finished))
        return int((await self.s.execute(q)).rowcount or 0)

    async def stalled_finishing(self, now: datetime, limit: int) -> list[Upload]:
        q = sa.select(uploads).where(
            uploads.c.state == UploadState.FINISHING.value,
            sa.or_(uploads.c.writer.is_(None), uploads.c.writer_until < now),
        )
        return [_upload(r) for r in (await self.s.execute(q.limit(limit))).all()]

    async def held_finishing(self, now: datetime, limit: int) -> list[Upload]:
        q = sa.select(uploads).where(
            uploads.c.state == UploadState.FINISHING.value,
            uploads.c.writer.is_not(None),
            uploads.c.writer_until >= now,
        )
        return [_upload(r) for r in (await self.s.execute(q.limit(limit))).all()]

    async def of_owner(self, owner_id: str) -> list[Upload]:
        q = sa.select(uploads).where(uploads.c.owner_id == owner_id)
        return [_upload(r) for r in (await self.s.execute(q)).all()]

    async def delete_owner(self, owner_id: str) -> None:
        await self.s.execute(uploads.delete().where(uploads.c.owner_id == owner_id))


def _scrub_state(row: Any) -> ScrubState:
    return ScrubState(
        position=row.position,
        pass_started_at=_aware(row.pass_started_at) if row.pass_started_at else None,
        last_pass_at=_aware(row.last_pass_at) if row.last_pass_at else None,
        credit=float(row.credit),
        ticked_at=_aware(row.ticked_at) if row.ticked_at else None,
        holder=row.holder,
        holder_until=_aware(row.holder_until) if row.holder_until else None,
    )


_STORED_BLOB = (
    sa.select(
        versions.c.blob_id,
        versions.c.id.label("version_id"),
        versions.c.node_id,
        versions.c.owner_id,
        sa.func.coalesce(nodes.c.name, "").label("name"),
        versions.c.size,
    )
    .select_from(versions.outerjoin(nodes, nodes.c.id == versions.c.node_id))
    .order_by(versions.c.blob_id)
)


class SqlScrubs:
    """The scrub's row (position, pass times, credit, lease) and the version rows it walks by blob id."""

    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def state(self) -> ScrubState:
        row = (await self.s.execute(sa.select(scrub_state).where(scrub_state.c.id == SCRUB_ROW))).first()
        return _scrub_state(row) if row else ScrubState()

    async def claim(self, token: str, until: datetime, now: datetime) -> ScrubState | None:
        free = sa.or_(scrub_state.c.holder.is_(None), scrub_state.c.holder_until < now, scrub_state.c.holder == token)
        row = (
            await self.s.execute(
                scrub_state.update()
                .where(scrub_state.c.id == SCRUB_ROW, free)
                .values(holder=token, holder_until=until)
                .returning(*scrub_state.c)
            )
        ).first()
        return _scrub_state(row) if row else None

    async def take_over(self, old_token: str, token: str, until: datetime) -> ScrubState | None:
        # Compare and swap on the old token: of two replicas that both found the holder gone, one wins.
        row = (
            await self.s.execute(
                scrub_state.update()
                .where(scrub_state.c.id == SCRUB_ROW, scrub_state.c.holder == old_token)
                .values(holder=token, holder_until=until)
                .returning(*scrub_state.c)
            )
        ).first()
        return _scrub_state(row) if row else None

    async def save(self, token: str, state: ScrubState, until: datetime) -> bool:
        result = await self.s.execute(
            scrub_state.update()
            .where(scrub_state.c.id == SCRUB_ROW, scrub_state.c.holder == token)
            .values(
                position=state.position,
                pass_started_at=state.pass_started_at,
                last_pass_at=state.last_pass_at,
                credit=state.credit,
                ticked_at=state.ticked_at,
                holder_until=until,
            )
        )
        return bool(result.rowcount)

    async def release(self, token: str) -> None:
        await self.s.execute(
            scrub_state.update()
            .where(scrub_state.c.id == SCRUB_ROW, scrub_state.c.holder == token)
            .values(holder=None, holder_until=None)
        )

    async def blobs_after(self, position: str, limit: int) -> list[StoredBlob]:
        rows = await self.s.execute(_STORED_BLOB.where(versions.c.blob_id > position).limit(limit))
        return [StoredBlob(*row) for row in rows]

    async def blob(self, blob_id: str) -> StoredBlob | None:
        row = (await self.s.execute(_STORED_BLOB.where(versions.c.blob_id == blob_id).limit(1))).first()
        return StoredBlob(*row) if row else None

    async def count(self, after: str = "") -> int:
        q = sa.select(sa.func.count()).select_from(versions).where(versions.c.blob_id > after)
        return int((await self.s.execute(q)).scalar_one())


class ScrubMetrics:
    """ScrubMonitor on the process's Prometheus counters (flowdock_scrub_*)."""

    def __init__(self, service: str = "storage") -> None:
        self._blobs = metrics.SCRUB_BLOBS.labels(service)
        self._bytes = metrics.SCRUB_BYTES.labels(service)
        self._damaged = metrics.SCRUB_DAMAGED.labels(service)
        self._last = metrics.SCRUB_LAST_PASS.labels(service)

    def verified(self, blobs: int, stored_bytes: int) -> None:
        self._blobs.inc(blobs)
        self._bytes.inc(stored_bytes)

    def damaged(self) -> None:
        self._damaged.inc()

    def pass_completed(self, at: datetime) -> None:
        self._last.set(at.timestamp())


class SqlUnitOfWork(db.SqlUnitOfWork):
    def _bind(self, session: AsyncConnection) -> None:
        # The listing read model builds on this module (its tables and keyset statements), so it is imported here,
        # once the module is complete, rather than at the top (where the two would import each other).
        from storage_svc import readmodel

        self.nodes = SqlNodes(session)
        self.listings = readmodel.SqlListings(session)
        self.versions = SqlVersions(session)
        self.quotas = SqlQuotas(session)
        self.link_drops = SqlLinkDrops(session)
        self.uploads = SqlUploads(session)
        self.scrub = SqlScrubs(session)

    async def commit(self) -> None:
        await super().commit()
        for outcome in self.uploads.outcomes:
            metrics.UPLOAD_OUTCOMES.labels(outcome).inc()
        self.uploads.outcomes.clear()


class HmacUrlSigner:
    """HMAC-SHA256 over a compact JSON payload; the key is 256 random bits in a 0600 file shared by replicas."""

    def __init__(self, key_path: Path) -> None:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
        self._key = key_path.read_bytes()
        if len(self._key) != 32:
            raise ValueError(f"{key_path} must hold 32 random bytes")

    def sign(self, claims: dict[str, str | int]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).rstrip(b"=")
        return (body + b"." + mac).decode()

    def verify(self, token: str) -> dict[str, str | int] | None:
        body, _, mac = token.encode(errors="replace").partition(b".")
        expected = base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).rstrip(b"=")
        if not body or not hmac.compare_digest(mac, expected):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None


class ShareAccessPolicy:
    """Asks share_svc (AccessService) on behalf of the caller, whose token the channel forwards; link visitors have
    no token: their link token and link session go in the request and share_svc checks them."""

    _ACTIONS = {
        "list": share_pb2.ACTION_LIST,
        "download": share_pb2.ACTION_DOWNLOAD,
        "write": share_pb2.ACTION_WRITE,
        "upload": share_pb2.ACTION_UPLOAD,
    }

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = share_pb2_grpc.AccessServiceStub(channel)

    async def decide(self, node_path: list[str], owner_id: str, action: str) -> Decision:
        try:
            reply = await self.stub.CheckAccess(
                share_pb2.CheckAccessRequest(node_path=node_path, owner_id=owner_id, action=self._ACTIONS[action]),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            # Fail closed: no decision means no access, and the caller can retry.
            raise Unavailable("access decisions are unavailable (share_svc); retry shortly") from exc
        return Decision(bool(reply.allowed), bool(reply.visible), reply.grant_node_id)

    async def drop_shares(self, owner_id: str, node_path: list[str], node_ids: list[str]) -> None:
        try:
            await self.stub.DropShares(
                share_pb2.DropSharesRequest(owner_id=owner_id, node_path=node_path, node_ids=node_ids), timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable("sharing is unavailable (share_svc), so nothing was deleted; retry shortly") from exc

    async def link(self, token: str, session: str, node_path: list[str], owner_id: str, action: str) -> LinkScope:
        try:
            reply = await self.stub.CheckLinkAccess(
                share_pb2.CheckLinkAccessRequest(
                    token=token,
                    link_session=session,
                    node_path=node_path,
                    owner_id=owner_id,
                    action=self._ACTIONS[action],
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise NotFound("this link does not exist, was revoked or has expired") from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated(exc.details() or "open the link first") from None
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ResourceExhausted(
                    exc.details() or "this link has reached its download limit", limit="link_max_downloads"
                ) from None
            raise Unavailable("link decisions are unavailable (share_svc); retry shortly") from exc
        return LinkScope(
            reply.link_id,
            reply.root_node_id,
            reply.owner_id,
            bool(reply.allowed),
            max_upload_files=reply.max_upload_files,
            max_upload_bytes=reply.max_upload_bytes,
        )


async def sample_gauges(engine: AsyncEngine, default_quota_bytes: int) -> None:
    """Refresh storage's sampled gauges: open and finishing uploads, accounts by quota use (two GROUP BYs), and
    when the scrub last completed a pass."""
    taken = quotas.c.used_bytes + quotas.c.reserved_bytes
    limit = sa.func.coalesce(quotas.c.limit_bytes, default_quota_bytes)
    bucket = sa.case(
        (sa.or_(limit <= 0, taken >= limit), "full"),
        (taken * 100 >= limit * 95, "95to100"),
        (taken * 100 >= limit * 80, "80to95"),
        (taken * 100 >= limit * 50, "50to80"),
        else_="lt50",
    ).label("bucket")
    async with engine.connect() as conn:
        await db.read_only(conn)
        by_state = await conn.execute(sa.select(uploads.c.state, sa.func.count()).group_by(uploads.c.state))
        states = {str(row[0]): int(row[1]) for row in by_state}
        by_bucket = await conn.execute(sa.select(bucket, sa.func.count()).group_by(bucket))
        buckets = {str(row[0]): int(row[1]) for row in by_bucket}
        last_pass = (
            await conn.execute(sa.select(scrub_state.c.last_pass_at).where(scrub_state.c.id == SCRUB_ROW))
        ).scalar()
    if last_pass is not None:  # any replica's pass, or `flowdock scrub`'s: the database knows, not this process
        metrics.SCRUB_LAST_PASS.labels("storage").set(_aware(last_pass).timestamp())
    for state in (UploadState.OPEN, UploadState.FINISHING):
        metrics.UPLOADS_ACTIVE.labels(state.value).set(states.get(state.value, 0))
    for name in metrics.QUOTA_BUCKETS:
        metrics.QUOTA_ACCOUNTS.labels(name).set(buckets.get(name, 0))
