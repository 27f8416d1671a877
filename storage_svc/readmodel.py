"""The listing read model: a page of a folder's children goes from database rows straight to its wire form.

An adapter, not domain code: it knows the generated protobuf messages. A listing page is the one place where up to
1,000 entries cross the service per request; building a domain Node per entry and then a protobuf message from
each Node did the per-entry work twice. Here each row becomes its protobuf `Node` in place (`nodes.add`, the
cheapest way found to build one from Python, see bench/README.md) and the page is serialised once, as the repeated
`nodes` field (1) that ListChildrenResponse and ListLinkChildrenResponse share. The use case still decides access,
page size and the next page's cursor (from `WirePage.last`, a domain Node); `storage_svc.adapters.SqlListings`
runs the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowdock.storage.v1 import storage_pb2
from storage_svc.domain import Node

#: The columns a listing row holds, in this order (SqlListings selects exactly these).
ROW_FIELDS = (
    "id", "parent_id", "name", "kind", "size", "created_at", "modified_at", "content_type", "sha256", "owner_id",
)  # fmt: skip

_KINDS = {"folder": storage_pb2.NODE_KIND_FOLDER, "file": storage_pb2.NODE_KIND_FILE}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_from_iso = datetime.fromisoformat


@dataclass(frozen=True)
class WirePage:
    """A page of children already serialised as the `nodes` field (1) of a listing response; `last` is the page's
    last entry as a domain Node (None for an empty page) and `more` says whether entries follow it."""

    wire: bytes
    count: int
    more: bool
    last: Node | None


def encode(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows in ROW_FIELDS order → the serialised `repeated Node nodes = 1` of a listing response.

    Timestamps come as SQLite stores them (text, UTC, no offset) or as a driver's datetime (naive means UTC); both
    give exactly what `Timestamp.FromDatetime` gives (tested against the general conversion)."""
    response = storage_pb2.ListChildrenResponse()
    add = response.nodes.add
    kinds = _KINDS
    if rows and isinstance(rows[0][5], str):
        from_iso = _from_iso
        epoch = _NAIVE_EPOCH
        for i, p, n, k, s, c, m, ct, sha, o in rows:
            msg = add(id=i, parent_id=p or "", name=n, kind=kinds[k], size=s, content_type=ct, sha256=sha, owner_id=o)
            d = from_iso(c) - epoch
            ts = msg.create_time
            ts.seconds = d.days * 86_400 + d.seconds
            ts.nanos = d.microseconds * 1_000
            d = from_iso(m) - epoch
            ts = msg.modify_time
            ts.seconds = d.days * 86_400 + d.seconds
            ts.nanos = d.microseconds * 1_000
    else:
        for i, p, n, k, s, c, m, ct, sha, o in rows:
            msg = add(id=i, parent_id=p or "", name=n, kind=kinds[k], size=s, content_type=ct, sha256=sha, owner_id=o)
            _set(msg.create_time, c)
            _set(msg.modify_time, m)
    return response.SerializeToString()


def _set(ts: Any, value: datetime | str) -> None:
    if isinstance(value, str):
        d = _from_iso(value) - _NAIVE_EPOCH
    else:
        d = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    ts.seconds = d.days * 86_400 + d.seconds
    ts.nanos = d.microseconds * 1_000
