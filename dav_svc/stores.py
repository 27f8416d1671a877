"""Locks and dead properties in the dav service's own database, so every replica sees the same ones.

WsgiDAV's lock storage and property manager keep their state in a mapping (a dict, or a shelve for its
file-backed variants) and write every change back with `mapping[key] = value`. `SqlMapping` is that mapping on
one table (`dav_entries`: namespace, key, JSON value), so WsgiDAV's own, litmus-tested logic runs unchanged on
top of SQLite or PostgreSQL. Values are JSON with bytes tagged (property values are serialised XML bytes).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

import sqlalchemy as sa
from wsgidav.lock_man.lock_storage import LockStorageDict
from wsgidav.prop_man.property_manager import PropertyManager

metadata = sa.MetaData()

entries = sa.Table(
    "dav_entries",
    metadata,
    sa.Column("namespace", sa.String(16), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b"}:
            return base64.b64decode(value["$b"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class SqlMapping(MutableMapping[str, Any]):
    """One namespace of `dav_entries` as a mapping; every operation is its own short transaction.

    A request that reads many entries (PROPFIND depth 1 asks for each member's locks and dead properties: three
    lookups per member) first loads every entry under the user's prefix once (`snapshot`): lookups under that
    prefix are then answered from it for the rest of the request (the thread's), writes go to the database and to
    the snapshot alike.
    """

    def __init__(self, engine: sa.Engine, namespace: str, scope: threading.local | None = None) -> None:
        self.engine = engine
        self.namespace = namespace
        self._scope = scope if scope is not None else threading.local()

    def _snap(self) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        snaps: dict[str, tuple[dict[str, Any], tuple[str, ...]]] | None = getattr(self._scope, "snaps", None)
        return None if snaps is None else snaps.get(self.namespace)

    def snapshot(self, prefixes: tuple[str, ...]) -> None:
        """Load the entries whose keys start with one of `prefixes` for this thread's request."""
        cond = sa.or_(*(entries.c.key.startswith(p, autoescape=True) for p in prefixes))
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(entries.c.key, entries.c.value).where(entries.c.namespace == self.namespace, cond)
            ).all()
        if getattr(self._scope, "snaps", None) is None:
            self._scope.snaps = {}
        self._scope.snaps[self.namespace] = ({k: json.loads(v) for k, v in rows}, prefixes)

    def __getitem__(self, key: str) -> Any:
        snap = self._snap()
        if snap is not None and key.startswith(snap[1]):
            if key not in snap[0]:
                raise KeyError(key)
            return _decode(snap[0][key])
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(entries.c.value).where(entries.c.namespace == self.namespace, entries.c.key == key)
            ).first()
        if row is None:
            raise KeyError(key)
        return _decode(json.loads(row[0]))

    def __setitem__(self, key: str, value: Any) -> None:
        encoded = _encode(value)
        text = json.dumps(encoded)
        snap = self._snap()
        if snap is not None and key.startswith(snap[1]):
            snap[0][key] = json.loads(text)
        with self.engine.begin() as conn:
            where = (entries.c.namespace == self.namespace) & (entries.c.key == key)
            if conn.execute(sa.update(entries).where(where).values(value=text)).rowcount == 0:
                conn.execute(sa.insert(entries).values(namespace=self.namespace, key=key, value=text))

    def __delitem__(self, key: str) -> None:
        snap = self._snap()
        if snap is not None:
            snap[0].pop(key, None)
        with self.engine.begin() as conn:
            gone = conn.execute(
                sa.delete(entries).where(entries.c.namespace == self.namespace, entries.c.key == key)
            ).rowcount
        if not gone:
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            keys = conn.execute(sa.select(entries.c.key).where(entries.c.namespace == self.namespace)).scalars().all()
        return iter(list(keys))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        """Every entry in one query (WsgiDAV scans the mapping for locks below a path)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(entries.c.key, entries.c.value).where(entries.c.namespace == self.namespace)
            ).all()
        return [(key, _decode(json.loads(value))) for key, value in rows]

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(entries).where(entries.c.namespace == self.namespace)
            ).scalar_one()
        return int(count)

    def __contains__(self, key: object) -> bool:
        snap = self._snap()
        if snap is not None and isinstance(key, str) and key.startswith(snap[1]):
            return key in snap[0]  # (a KeyError raised and caught per member cost PROPFIND more than the lookup)
        try:
            self[str(key)]
        except KeyError:
            return False
        return True

    def sync(self) -> None:
        """shelve's flush, which WsgiDAV's shelve-backed stores call: every write here is committed already."""

    def close(self) -> None:
        """shelve's close: nothing is held open between operations."""

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(entries).where(entries.c.namespace == self.namespace))


class RequestSnapshot:
    """Per request (thread): `begin(user)` loads the user's locks and dead properties once; `end()` forgets them.

    Only for reading requests (PROPFIND): a write of another replica in between is not seen by this request."""

    def __init__(self) -> None:
        self.scope = threading.local()
        self.mappings: list[SqlMapping] = []

    def begin(self, user: str) -> None:
        for mapping in self.mappings:
            prefix = f"/{user}/"
            mapping.snapshot((prefix, f"URL2TOKEN:{prefix}") if mapping.namespace == "lock" else (prefix,))

    def holds(self, namespace: str) -> bool:
        """Whether this request's snapshot has any entry in `namespace` ("lock", "prop"); True when none is loaded."""
        snaps = getattr(self.scope, "snaps", None)
        if snaps is None or namespace not in snaps:
            return True
        return bool(snaps[namespace][0])

    def end(self) -> None:
        self.scope.snaps = None


class SqlLockStorage(LockStorageDict):  # type: ignore[misc]
    """WsgiDAV's lock storage with its mapping in the database (locks survive restarts, replicas share them)."""

    _dict: Any

    def __init__(self, engine: sa.Engine, snapshot: RequestSnapshot | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._snapshot = snapshot

    def open(self) -> None:
        self._dict = SqlMapping(self._engine, "lock", self._snapshot.scope if self._snapshot else None)
        if self._snapshot is not None:
            self._snapshot.mappings.append(self._dict)

    def close(self) -> None:
        self._dict = None

    def _flush(self) -> None:
        """Nothing to flush: every write is committed as it is made."""


class SqlPropertyManager(PropertyManager):  # type: ignore[misc]
    """WsgiDAV's dead-property manager with its mapping in the database."""

    _dict: Any

    def __init__(self, engine: sa.Engine, snapshot: RequestSnapshot | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._snapshot = snapshot
        self._lazy_open()

    def _lazy_open(self) -> None:
        self._dict = SqlMapping(self._engine, "prop", self._snapshot.scope if self._snapshot else None)
        if self._snapshot is not None:
            self._snapshot.mappings.append(self._dict)
        self._loaded = True

    def _sync(self) -> None:
        """Nothing to sync: every write is committed as it is made."""

    def _below(self, base: str) -> list[tuple[str, Any]]:
        if not self._loaded:
            self._lazy_open()
        root = base.rstrip("/")
        return [
            (url, props) for url, props in self._dict.items() if url.rstrip("/") == root or url.startswith(root + "/")
        ]

    def remove_tree(self, base: str) -> None:
        """Drop the properties of `base` and of everything below it (a deleted folder's)."""
        for url, _ in self._below(base):
            del self._dict[url]

    def copy_tree(self, src: str, dest: str, *, with_children: bool) -> None:
        """Copy the properties of `src` (and, with_children, of everything below it) to the same places under `dest`."""
        root = src.rstrip("/")
        for url, props in self._below(src):
            if with_children or url.rstrip("/") == root:
                self._dict[dest.rstrip("/") + url[len(root) :]] = props

    def _close(self) -> None:
        self._dict = None
        self._loaded = False
