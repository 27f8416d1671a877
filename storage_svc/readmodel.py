"""The listing read model (a view, in cosmicpython's terms): a page of a folder's children goes from database rows
straight to its wire form, by its own query on the driver's connection.

An adapter, not domain code: it knows the tables (storage_svc.adapters, the write side, whose keyset statements it
shares so both list the same rows in the same order) and the generated protobuf messages. A listing page is the
one place where up to 1,000 entries cross the service per request; building a domain Node per entry and then a
protobuf message from each Node did the per-entry work twice. Here each row becomes its protobuf `Node` in place
(`nodes.add`, the cheapest way found to build one from Python, see bench/README.md) and the page is serialised
once, as the repeated `nodes` field that ListChildrenResponse and ListLinkChildrenResponse share. Each entry's
bytes are memoised by its row, so a folder listed again is mostly dict lookups (`encode`).

Field numbers relied on (the proto says so at each): the page's bytes are field 1 (`nodes`) of a serialised
ListChildrenResponse, and the servicer sends them as field 1 of ListLinkChildrenResponse too, with the other fields
serialised after them (a message's serialisation is the concatenation of its fields').

The use case still decides access, page size and the next page's cursor (from `WirePage.last`, a domain Node).

Whole pages are cached too (`PageCache`), keyed by the folder's children revision: a number the database bumps
itself (triggers on `nodes`, migration 0007) whenever any process or replica changes one of the folder's children.
A listing reads that number first (one primary-key lookup) and serves the page built for it, if any: a change
committed anywhere is a new number, so no stale page is ever served; the page's rows are read after the number, so
a page stored under a number is never older than that number's state."""

from __future__ import annotations

import collections
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdock.storage.v1 import storage_pb2
from flowdock_kernel.wire import set_timestamp
from storage_svc.adapters import children_params, children_statements, folder_revs, node_columns, stored_time
from storage_svc.domain import Cursor, Kind, Node, OrderBy

#: The columns a listing row holds, in this order (the query selects exactly these; `encode` unpacks them).
ROW_FIELDS = (
    "id", "parent_id", "name", "kind", "size", "created_at", "modified_at", "content_type", "sha256", "owner_id",
)  # fmt: skip
LISTING_COLUMNS = node_columns(ROW_FIELDS)
_LISTED = {name: i for i, name in enumerate(ROW_FIELDS)}

_KINDS = {"folder": storage_pb2.NODE_KIND_FOLDER, "file": storage_pb2.NODE_KIND_FILE}
_from_iso = datetime.fromisoformat


@dataclass(frozen=True)
class WirePage:
    """A page of children already serialised as the `nodes` field (1) of a listing response; `last` is the page's
    last entry as a domain Node (None for an empty page) and `more` says whether entries follow it."""

    wire: bytes
    count: int
    more: bool
    last: Node | None


#: Entries whose serialised form `encode` keeps, keyed by their row (every column the bytes are made of, so a changed
#: row is a new key and nothing needs invalidating). Listing the same folder again (the web app reopening it, a sync
#: client polling) then costs a dict lookup per entry instead of building its message (~3 µs, two thirds of it the
#: two Timestamps). ~1 KB per entry with its key: 20,000 entries bound it to ~20 MB; full, it starts over.
MEMO_ENTRIES = 20_000
_memo: dict[tuple[Any, ...], bytes] = {}


def encode(rows: Sequence[Sequence[Any]], shared_owner: str | None = None) -> bytes:
    """Rows in ROW_FIELDS order → the serialised `repeated Node nodes = 1` of a listing response.

    `shared_owner` set: the compact form (ListChildrenRequest.compact), whose entries leave out what the response
    states once: their parent_id (every row's is the folder's) and an owner_id equal to `shared_owner`.
    Entries seen before come from the memo; the others are built together (`_build`), and their bytes split per
    entry into the memo."""
    memo = _memo
    rows = [row if type(row) is tuple else tuple(row) for row in rows]
    keys: list[Any] = rows if shared_owner is None else [(shared_owner, row) for row in rows]
    parts = [memo.get(key) for key in keys]
    missing = [row for row, part in zip(rows, parts, strict=True) if part is None]
    if not missing:
        return b"".join(parts)  # type: ignore[arg-type]  # no None left
    built = iter(_entries(_build(missing, shared_owner)))
    if len(memo) + len(missing) > MEMO_ENTRIES:
        memo.clear()
    for i, part in enumerate(parts):
        if part is None:
            parts[i] = memo[keys[i]] = next(built)
    return b"".join(parts)  # type: ignore[arg-type]


def _build(rows: Sequence[Sequence[Any]], shared_owner: str | None = None) -> bytes:
    """Rows → the serialised `nodes` field, one message per row built in place (`encode` says what `shared_owner`
    leaves out).

    Timestamps come as SQLite stores them (text, UTC, no offset: parsed to a naive datetime, which the kernel's
    `set_timestamp` reads as UTC) or as a driver's datetime (naive means UTC); both give exactly what
    `Timestamp.FromDatetime` gives (tested against the general conversion)."""
    response = storage_pb2.ListChildrenResponse()
    add = response.nodes.add
    kinds = _KINDS
    set_ts = set_timestamp
    from_iso = _from_iso if rows and isinstance(rows[0][5], str) else None
    compact = shared_owner is not None
    for i, p, n, k, s, c, m, ct, sha, o in rows:
        if compact:
            msg = add(id=i, name=n, kind=kinds[k], size=s, content_type=ct, sha256=sha)
            if o != shared_owner:
                msg.owner_id = o
        else:
            msg = add(id=i, parent_id=p or "", name=n, kind=kinds[k], size=s, content_type=ct, sha256=sha, owner_id=o)
        if from_iso is not None:
            set_ts(msg.create_time, from_iso(c))
            set_ts(msg.modify_time, from_iso(m))
        else:
            set_ts(msg.create_time, c)
            set_ts(msg.modify_time, m)
    # Field 1 of ListChildrenResponse (and of ListLinkChildrenResponse, which the servicer also builds from it).
    return response.SerializeToString()


def _entries(wire: bytes) -> list[bytes]:
    """A serialised run of field 1 (tag byte 0x0A, varint length, the Node) cut into its entries, tags included."""
    out = []
    pos, end = 0, len(wire)
    while pos < end:
        start = pos
        pos += 1  # the tag: field 1, length-delimited
        length = shift = 0
        while True:
            byte = wire[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        pos += length
        out.append(wire[start:pos])
    return out


class PageCache:
    """Listing pages by (folder, its children revision, the page's parameters), least recently used first out,
    bounded by their bytes. One per process (replicas each have their own: the revision keeps them all right)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._pages: collections.OrderedDict[tuple[Any, ...], WirePage] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: tuple[Any, ...]) -> WirePage | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: tuple[Any, ...], page: WirePage) -> None:
        if len(page.wire) > self.max_bytes // 4 or key in self._pages:
            return
        self._pages[key] = page
        self.bytes += len(page.wire)
        while self.bytes > self.max_bytes:
            _, old = self._pages.popitem(last=False)
            self.bytes -= len(old.wire)

    def clear(self) -> None:
        self._pages.clear()
        self.bytes = 0


#: ~160 B per entry on the wire: 32 MiB hold ~200 pages of 1,000 entries.
PAGES = PageCache(32 * 1024 * 1024)

_REV = sa.select(folder_revs.c.rev).where(folder_revs.c.folder_id == sa.bindparam("folder_id"))


@functools.cache
def _rev_parts(dialect: Any) -> tuple[Any, dict[str, Any]]:
    compiled = _REV.compile(dialect=dialect)
    return compiled, {}


@functools.cache
def _driver_parts(dialect: Any, order: OrderBy, descending: bool, after_rank: int | None) -> tuple[Any, ...]:
    """The listing's statements (adapters.children_statements of LISTING_COLUMNS) compiled once for `dialect`, as
    (compiled, bind processors)."""
    parts = []
    for part in children_statements(LISTING_COLUMNS, order, descending, after_rank):
        compiled = part.compile(dialect=dialect)
        processors = {
            name: proc
            for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        parts.append((compiled, processors))
    return tuple(parts)


class SqlListings:
    """The `Listings` port: the statements of SqlNodes.children (same order, same cursors) with the listing's
    columns, run on the driver's own connection (inside the unit of work's transaction) so rows come back as the
    driver's tuples; `encode` turns them into the wire form. SQLAlchemy's execution path (its statement cache
    lookup, result and Row objects) cost ~0.9 ms of the ~2.4 ms a 1,000-row page took on SQLite."""

    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def children(
        self,
        parent_id: str,
        order: OrderBy,
        descending: bool,
        after: Cursor | None,
        limit: int,
        *,
        shared_owner: str | None = None,
    ) -> WirePage:
        # The revision first, then the rows (see the module docstring): one primary-key lookup.
        found = await self._run(*_rev_parts(self.s.dialect), {"folder_id": parent_id})
        key = (parent_id, found[0][0] if found else 0, order, descending, after, limit, shared_owner)
        cached = PAGES.get(key)
        if cached is not None:
            return cached
        page = await self._children(parent_id, order, descending, after, limit, shared_owner)
        PAGES.put(key, page)
        return page

    async def _children(
        self,
        parent_id: str,
        order: OrderBy,
        descending: bool,
        after: Cursor | None,
        limit: int,
        shared_owner: str | None,
    ) -> WirePage:
        rows: list[Any] = []
        params = children_params(parent_id, order, after)
        parts = _driver_parts(self.s.dialect, order, descending, after.kind_rank if after is not None else None)
        for compiled, processors in parts:
            rows += await self._run(compiled, processors, {**params, "limit": limit + 1 - len(rows)})
            if len(rows) > limit:
                break
        more = len(rows) > limit
        if more:
            rows = rows[:limit]
        return WirePage(encode(rows, shared_owner), len(rows), more, _listed_node(rows[-1]) if rows else None)

    async def _run(self, compiled: Any, processors: dict[str, Any], params: dict[str, Any]) -> list[Any]:
        values = compiled.construct_params(params)
        for name, process in processors.items():
            values[name] = process(values[name])
        driver: Any = (await self.s.get_raw_connection()).driver_connection
        if compiled.positional:  # SQLite (aiosqlite): one trip to its thread
            return list(await driver.execute_fetchall(compiled.string, [values[n] for n in compiled.positiontup]))
        cursor = await driver.execute(compiled.string, values)  # PostgreSQL (psycopg)
        return list(await cursor.fetchall())


def _listed_node(row: Any) -> Node:
    """A listing row as a Node (the fields a listing shows; no blob or version id), for the next page's cursor."""
    f = _LISTED
    return Node(
        row[f["id"]],
        row[f["owner_id"]],
        row[f["parent_id"]],
        row[f["name"]],
        Kind(row[f["kind"]]),
        row[f["size"]],
        stored_time(row[f["created_at"]]),
        stored_time(row[f["modified_at"]]),
        content_type=row[f["content_type"]],
        sha256=row[f["sha256"]],
    )
