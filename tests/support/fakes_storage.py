"""In-memory fakes of storage_svc's ports (storage_svc/ports.py), for use-case tests that run in milliseconds.

They keep the contracts the SQL adapters, the blob store, share_svc's client and clamd keep, where a use case
relies on them: a unit of work is a transaction (its writes and audit events are kept only if committed; a
read-only one cannot commit); live siblings have unique case-insensitive names and each owner one root
(AlreadyExists); quota and file-drop counters change only when the change fits; an upload's lease is taken only
when free (or expired, or already this writer's); repositories hand out copies. One transaction at a time: a
commit replaces the whole state with the transaction's copy (concurrency is tested against the real databases in
tests/storage/).

The blob store keeps bytes in dicts: staged bytes become durable at `sync_staging` (`crash()` drops what was not),
`commit_staging` turns the staged bytes into an immutable blob. The scanner finds `INFECTED` in content.

    fakes = StorageFakes()
    tree, uploads = fakes.tree(), fakes.uploads()
    folder = await tree.create_folder("alice", "root", "Docs")
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from flowdock_kernel.errors import AlreadyExists, DataLoss, NotFound, ResourceExhausted, Unavailable
from storage_svc import domain
from storage_svc.domain import (
    Cursor,
    Decision,
    Kind,
    LinkScope,
    Node,
    OrderBy,
    ScanLimitExceeded,
    ScrubState,
    StoredBlob,
    TrashEntry,
    Upload,
    UploadState,
    Usage,
    Version,
)
from storage_svc.ports import ScanVerdict
from storage_svc.usecases import Access, Downloads, Housekeeping, Limits, PublicLinks, Scrubber, Tree, Uploads
from tests.support.clock import FakeClock

#: What the fake scanner calls a virus: content containing these bytes is infected.
INFECTED = b"X5O!P%@AP-FAKE-VIRUS"
SIGNATURE = "Fake.Test.Signature"

# -- the database --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedEvent:
    kind: str
    actor: str
    subject: str
    details: dict[str, str]


@dataclass
class Quota:
    used: int = 0
    reserved: int = 0
    limit: int | None = None


@dataclass
class StorageState:
    """What storage_svc's database holds."""

    nodes: dict[str, Node] = field(default_factory=dict)
    versions: dict[str, Version] = field(default_factory=dict)
    quotas: dict[str, Quota] = field(default_factory=dict)
    # link id -> (files, bytes)
    link_drops: dict[str, tuple[int, int]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    # upload id -> the writer's lease token (the `writer` column)
    writers: dict[str, str] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    scrub: ScrubState = field(default_factory=ScrubState)


class IntegrityError(Exception):
    """A constraint the database would enforce (a bug in the use case, never an answer to a client)."""


def _rank_key(node: Node, order: OrderBy) -> tuple[int, str | int, str]:
    return domain.kind_rank(node.kind), domain.sort_key(node, order), node.id


class FakeNodes:
    def __init__(self, state: StorageState) -> None:
        self._s = state

    def _live(self) -> Iterator[Node]:
        return (n for n in self._s.nodes.values() if n.trashed_at is None)

    def _check_unique(self, node: Node) -> None:
        """The database's unique indexes: one root per owner, one live name per folder (case-insensitively)."""
        if node.trashed_at is not None:
            return
        for other in self._live():
            if other.id == node.id:
                continue
            if node.parent_id is None and other.parent_id is None and other.owner_id == node.owner_id:
                raise AlreadyExists("the owner already has a root folder")
            if (
                node.parent_id is not None
                and other.parent_id == node.parent_id
                and domain.name_key(other.name) == domain.name_key(node.name)
            ):
                raise AlreadyExists("an entry with this name already exists")

    async def get(self, node_id: str) -> Node | None:
        found = self._s.nodes.get(node_id)
        return replace(found) if found is not None and found.trashed_at is None else None

    async def get_any(self, node_id: str) -> Node | None:
        found = self._s.nodes.get(node_id)
        return replace(found) if found is not None else None

    async def root(self, owner_id: str) -> Node | None:
        found = next((n for n in self._s.nodes.values() if n.owner_id == owner_id and n.parent_id is None), None)
        return replace(found) if found is not None else None

    async def folders(self, root_owners: list[str], ids: list[str]) -> list[Node]:
        found = [n for n in self._s.nodes.values() if n.parent_id is None and n.owner_id in root_owners]
        found += [n for n in self._live() if n.id in ids]
        return [replace(n) for n in found]

    async def add(self, node: Node) -> None:
        if node.id in self._s.nodes:
            raise AlreadyExists("already exists")
        self._check_unique(node)
        self._s.nodes[node.id] = replace(node)

    async def add_many(self, nodes: list[Node]) -> None:
        for node in nodes:
            await self.add(node)

    async def add_file(self, node: Node, version: Version) -> None:
        await self.add(node)
        self._s.versions[version.id] = version

    async def add_files(self, files: list[tuple[Node, Version]]) -> None:
        for node, version in files:
            await self.add_file(node, version)

    async def child_named(self, parent_id: str, key: str) -> Node | None:
        found = next(
            (n for n in self._live() if n.parent_id == parent_id and domain.name_key(n.name) == key),
            None,
        )
        return replace(found) if found is not None else None

    async def taken_names(self, parent_id: str, prefix_key: str) -> set[str]:
        return {
            domain.name_key(n.name)
            for n in self._live()
            if n.parent_id == parent_id and domain.name_key(n.name).startswith(prefix_key)
        }

    async def children(
        self, parent_id: str, order: OrderBy, descending: bool, after: Cursor | None, limit: int
    ) -> list[Node]:
        """As SqlNodes.children: folders first, `descending` reverses the order within each kind."""
        rows = sorted((replace(n) for n in self._live() if n.parent_id == parent_id), key=lambda n: _rank_key(n, order))
        if descending:
            rows = [n for n in rows if n.kind == Kind.FOLDER][::-1] + [n for n in rows if n.kind == Kind.FILE][::-1]
        if after is not None:
            here = (after.kind_rank, after.key, after.id)
            if descending:
                rows = [n for n in rows if (k := _rank_key(n, order))[0] > here[0] or (k[0] == here[0] and k < here)]
            else:
                rows = [n for n in rows if _rank_key(n, order) > here]
        return rows[:limit]

    async def update(self, node: Node) -> None:
        if node.id not in self._s.nodes:
            return
        self._check_unique(node)
        self._s.nodes[node.id] = replace(node)

    def _tree_order(self, root_id: str, members: dict[str, Node]) -> list[Node]:
        ordered = [members[root_id]] if root_id in members else []
        frontier = [root_id]
        while frontier:
            below = [n for n in members.values() if n.parent_id in frontier and n.id != root_id]
            ordered += below
            frontier = [n.id for n in below]
        return [replace(n) for n in ordered]

    async def subtree(self, node_id: str, *, live: bool) -> list[Node]:
        if not live:
            trashed = {i: n for i, n in self._s.nodes.items() if n.trash_root_id == node_id}
            return self._tree_order(node_id, trashed)
        members = {node_id: self._s.nodes[node_id]} if node_id in self._s.nodes else {}
        frontier = [node_id]
        while frontier:
            below = [n for n in self._live() if n.parent_id in frontier]
            members.update((n.id, n) for n in below)
            frontier = [n.id for n in below]
        return self._tree_order(node_id, members)

    async def trash_tree(self, root_id: str, at: datetime) -> None:
        for node in await self.subtree(root_id, live=True):
            self._s.nodes[node.id] = replace(node, trashed_at=at, trash_root_id=root_id)

    async def restore_tree(self, root_id: str) -> None:
        for node_id, node in list(self._s.nodes.items()):
            if node.trash_root_id == root_id:
                self._s.nodes[node_id] = replace(node, trashed_at=None, trash_root_id="")

    async def trash_roots(self, owner_id: str, after: Cursor | None, limit: int) -> list[TrashEntry]:
        roots = [n for n in self._s.nodes.values() if n.owner_id == owner_id and n.trash_root_id == n.id]
        roots.sort(key=lambda n: (domain.micros(n.trashed_at or n.created_at), n.id), reverse=True)
        if after is not None:
            roots = [n for n in roots if (domain.micros(n.trashed_at or n.created_at), n.id) < (after.key, after.id)]
        return [TrashEntry(replace(r), self._trash_size(r.id)) for r in roots[:limit]]

    def _trash_size(self, root_id: str) -> int:
        members = {i for i, n in self._s.nodes.items() if n.trash_root_id == root_id}
        return sum(v.size for v in self._s.versions.values() if v.node_id in members)

    async def trash_roots_older_than(self, at: datetime, limit: int) -> list[Node]:
        roots = [
            replace(n)
            for n in self._s.nodes.values()
            if n.trash_root_id == n.id and n.trashed_at is not None and n.trashed_at < at
        ]
        return roots[:limit]

    async def rehome_trash_below(self, root_id: str, new_parent_id: str) -> None:
        tree = {i for i, n in self._s.nodes.items() if n.trash_root_id == root_id}
        for node_id, node in list(self._s.nodes.items()):
            if node.trash_root_id == node.id and node.id != root_id and node.parent_id in tree:
                self._s.nodes[node_id] = replace(node, parent_id=new_parent_id)

    async def delete_tree(self, root_id: str) -> None:
        gone = {i for i, n in self._s.nodes.items() if n.trash_root_id == root_id}
        for node_id in gone:
            del self._s.nodes[node_id]
        self._check_parents(gone)

    def _check_parents(self, gone: set[str]) -> None:
        """The foreign key nodes.parent_id → nodes.id, checked at the end of a statement as the databases do."""
        orphans = [n.id for n in self._s.nodes.values() if n.parent_id in gone]
        if orphans:
            raise IntegrityError(f"foreign key: nodes {orphans} point at deleted parents")

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
        found = [
            replace(n)
            for n in self._live()
            if n.owner_id == owner_id
            and n.parent_id is not None
            and query in domain.name_key(n.name)
            and (kind is None or n.kind == kind)
            and (modified_after is None or n.modified_at >= modified_after)
            and (modified_before is None or n.modified_at < modified_before)
            and (not min_size or n.size >= min_size)
            and (not max_size or n.size <= max_size)
        ]
        found.sort(key=lambda n: (domain.name_key(n.name), n.id))
        if after is not None:
            found = [n for n in found if (domain.name_key(n.name), n.id) > (after.key, after.id)]
        return found[:limit]

    async def delete_owner(self, owner_id: str) -> None:
        gone = {i for i, n in self._s.nodes.items() if n.owner_id == owner_id}
        for node_id in gone:
            del self._s.nodes[node_id]
        self._check_parents(gone)


@dataclass(frozen=True)
class FakePage:
    """A listing page as the `Listings` port hands it out (`ChildPage`). `wire` is not protobuf here (the read
    model's encoding is tested in tests/storage/); `nodes` lets a test see the entries."""

    nodes: list[Node]
    more: bool

    @property
    def wire(self) -> bytes:
        return json.dumps([n.id for n in self.nodes]).encode()

    @property
    def count(self) -> int:
        return len(self.nodes)

    @property
    def last(self) -> Node | None:
        return self.nodes[-1] if self.nodes else None

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]


class FakeListings:
    """The listing read model: the same rows in the same order as Nodes.children (it shares its query there)."""

    def __init__(self, nodes: FakeNodes) -> None:
        self._nodes = nodes

    async def children(
        self,
        parent_id: str,
        order: OrderBy,
        descending: bool,
        after: Cursor | None,
        limit: int,
        *,
        shared_owner: str | None = None,
    ) -> FakePage:
        """`shared_owner` (the compact form) changes only the bytes the real read model writes, not which rows."""
        rows = await self._nodes.children(parent_id, order, descending, after, limit + 1)
        return FakePage(rows[:limit], len(rows) > limit)


class FakeVersions:
    def __init__(self, state: StorageState) -> None:
        self._s = state

    async def add(self, version: Version) -> None:
        if any(v.node_id == version.node_id and v.number == version.number for v in self._s.versions.values()):
            raise AlreadyExists("version number taken")  # ix_versions_node
        self._s.versions[version.id] = version

    async def get(self, version_id: str) -> Version | None:
        return self._s.versions.get(version_id)

    async def of_node(self, node_id: str) -> list[Version]:
        return sorted((v for v in self._s.versions.values() if v.node_id == node_id), key=lambda v: -v.number)

    async def of_nodes(self, node_ids: list[str], *, all_versions: bool = False) -> list[Version]:
        if all_versions:
            return [v for v in self._s.versions.values() if v.node_id in node_ids]
        current = {self._s.nodes[i].version_id for i in node_ids if i in self._s.nodes}
        return [v for v in self._s.versions.values() if v.id in current]

    async def next_number(self, node_id: str) -> int:
        return max((v.number for v in self._s.versions.values() if v.node_id == node_id), default=0) + 1

    async def delete(self, version_ids: list[str]) -> None:
        for version_id in version_ids:
            self._s.versions.pop(version_id, None)

    async def of_owner(self, owner_id: str) -> list[Version]:
        return [v for v in self._s.versions.values() if v.owner_id == owner_id]

    async def bytes_in_trash(self, owner_id: str) -> int:
        nodes = self._s.nodes
        return sum(
            v.size
            for v in self._s.versions.values()
            if v.node_id in nodes and nodes[v.node_id].owner_id == owner_id and nodes[v.node_id].trashed_at
        )

    async def bytes_not_current(self, owner_id: str) -> int:
        nodes = self._s.nodes
        return sum(
            v.size
            for v in self._s.versions.values()
            if v.node_id in nodes and nodes[v.node_id].owner_id == owner_id and nodes[v.node_id].version_id != v.id
        )


class FakeQuotas:
    def __init__(self, state: StorageState) -> None:
        self._s = state

    def _row(self, owner_id: str) -> Quota:
        return self._s.quotas.setdefault(owner_id, Quota())

    def _fits(self, row: Quota, n: int, default_limit: int) -> bool:
        return row.used + row.reserved + n <= (row.limit if row.limit is not None else default_limit)

    async def get(self, owner_id: str, default_limit: int) -> Usage:
        row = self._s.quotas.get(owner_id)
        if row is None:
            return Usage(0, 0, default_limit)
        return Usage(row.used, row.reserved, row.limit if row.limit is not None else default_limit)

    async def reserve(self, owner_id: str, size: int, default_limit: int) -> bool:
        row = self._row(owner_id)
        if not self._fits(row, size, default_limit):
            return False
        row.reserved += size
        return True

    async def consume(self, owner_id: str, size: int, default_limit: int) -> bool:
        row = self._row(owner_id)
        if not self._fits(row, size, default_limit):
            return False
        row.used += size
        return True

    async def consume_many(self, charges: dict[str, int], default_limit: int) -> bool:
        done = [await self.consume(owner, size, default_limit) for owner, size in charges.items()]
        return all(done)

    async def settle(self, owner_id: str, reserved: int, used: int) -> None:
        row = self._row(owner_id)
        row.reserved = max(row.reserved + reserved, 0)
        row.used = max(row.used + used, 0)

    async def set_limit(self, owner_id: str, limit: int | None) -> None:
        self._row(owner_id).limit = limit

    async def reset(self, owner_id: str) -> None:
        self._s.quotas.pop(owner_id, None)


class FakeLinkDrops:
    def __init__(self, state: StorageState) -> None:
        self._s = state

    async def take(self, link_id: str, size: int, max_files: int, max_bytes: int) -> tuple[int, int] | None:
        files, taken = self._s.link_drops.get(link_id, (0, 0))
        if files + 1 <= max_files and taken + size <= max_bytes:
            self._s.link_drops[link_id] = (files + 1, taken + size)
            return None
        self._s.link_drops.setdefault(link_id, (0, 0))
        return files, taken


class FakeHolders:
    """Lease tokens "holder-1", "holder-2", ...; `kill(token)` makes its holder's process gone (as
    flowdock_kernel.incarnation proves for a dead pid)."""

    def __init__(self) -> None:
        self.issued = 0
        self.dead: set[str] = set()

    def token(self) -> str:
        self.issued += 1
        return f"holder-{self.issued}"

    def gone(self, token: str) -> bool:
        return token in self.dead

    def kill(self, token: str) -> None:
        self.dead.add(token)

    def abandon(self, token: str) -> None:
        self.dead.add(token)


class FakeScrubs:
    """The scrub's row and the version rows by blob id; the lease as the SQL adapter's compare-and-swap."""

    def __init__(self, state: StorageState) -> None:
        self._s = state

    async def state(self) -> ScrubState:
        return self._s.scrub

    async def claim(self, token: str, until: datetime, now: datetime) -> ScrubState | None:
        st = self._s.scrub
        if st.holder is None or (st.holder_until is not None and st.holder_until < now) or st.holder == token:
            self._s.scrub = replace(st, holder=token, holder_until=until)
            return self._s.scrub
        return None

    async def take_over(self, old_token: str, token: str, until: datetime) -> ScrubState | None:
        if self._s.scrub.holder != old_token:
            return None
        self._s.scrub = replace(self._s.scrub, holder=token, holder_until=until)
        return self._s.scrub

    async def save(self, token: str, state: ScrubState, until: datetime) -> bool:
        if self._s.scrub.holder != token:
            return False
        self._s.scrub = replace(state, holder=token, holder_until=until)
        return True

    async def release(self, token: str) -> None:
        if self._s.scrub.holder == token:
            self._s.scrub = replace(self._s.scrub, holder=None, holder_until=None)

    def _stored(self, v: Version) -> StoredBlob:
        node = self._s.nodes.get(v.node_id)
        return StoredBlob(v.blob_id, v.id, v.node_id, v.owner_id, node.name if node else "", v.size)

    async def blobs_after(self, position: str, limit: int) -> list[StoredBlob]:
        found = sorted((v for v in self._s.versions.values() if v.blob_id > position), key=lambda v: v.blob_id)
        return [self._stored(v) for v in found[:limit]]

    async def blob(self, blob_id: str) -> StoredBlob | None:
        return next((self._stored(v) for v in self._s.versions.values() if v.blob_id == blob_id), None)

    async def count(self, after: str = "") -> int:
        return sum(1 for v in self._s.versions.values() if v.blob_id > after)


class FakeUploads:
    def __init__(self, state: StorageState) -> None:
        self._s = state

    def _held(self, upload_id: str, now: datetime) -> bool:
        upload = self._s.uploads[upload_id]
        return upload_id in self._s.writers and upload.writer_until is not None and upload.writer_until >= now

    async def get(self, upload_id: str) -> Upload | None:
        found = self._s.uploads.get(upload_id)
        return replace(found, writer=self._s.writers.get(upload_id, "")) if found is not None else None

    async def add(self, upload: Upload) -> None:
        if upload.id in self._s.uploads:
            raise AlreadyExists("already exists")
        self._s.uploads[upload.id] = replace(upload, writer_until=None)

    async def add_many(self, uploads: list[Upload]) -> None:
        for upload in uploads:
            await self.add(upload)

    async def acquire(self, upload_id: str, token: str, until: datetime, now: datetime, state: UploadState) -> bool:
        upload = self._s.uploads.get(upload_id)
        allowed = {UploadState.OPEN} if state == UploadState.OPEN else {UploadState.OPEN, UploadState.FINISHING}
        if upload is None or upload.state not in allowed:
            return False
        if self._held(upload_id, now) and self._s.writers[upload_id] != token:
            return False
        self._s.writers[upload_id] = token
        self._s.uploads[upload_id] = replace(upload, writer_until=until, state=state)
        return True

    async def claim(self, upload_id: str, token: str, until: datetime, now: datetime) -> Upload | None:
        """As SqlUploads.claim: the lease of an OPEN upload and the upload, at once; None if not OPEN or held."""
        if not await self.acquire(upload_id, token, until, now, UploadState.OPEN):
            return None
        return replace(self._s.uploads[upload_id], writer=token)

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
        upload = self._s.uploads.get(upload_id)
        if upload is None or self._s.writers.get(upload_id) != token:
            return False
        self._s.uploads[upload_id] = replace(
            upload, committed_size=committed, writer_until=None if release else until, expires_at=expires_at
        )
        if release:
            del self._s.writers[upload_id]
        return True

    async def release(self, upload_id: str, token: str) -> None:
        upload = self._s.uploads.get(upload_id)
        if upload is not None and self._s.writers.get(upload_id) == token:
            del self._s.writers[upload_id]
            self._s.uploads[upload_id] = replace(upload, writer_until=None)

    async def take_over(
        self, upload_id: str, old_token: str, token: str, until: datetime, state: UploadState
    ) -> Upload | None:
        """As SqlUploads.take_over: compare and swap on the old token."""
        upload = self._s.uploads.get(upload_id)
        allowed = {UploadState.OPEN} if state == UploadState.OPEN else {UploadState.OPEN, UploadState.FINISHING}
        if upload is None or upload.state not in allowed or self._s.writers.get(upload_id) != old_token:
            return None
        self._s.writers[upload_id] = token
        self._s.uploads[upload_id] = replace(upload, writer_until=until, state=state)
        return replace(self._s.uploads[upload_id], writer=token)

    async def held_finishing(self, now: datetime, limit: int) -> list[Upload]:
        found = [
            replace(u, writer=self._s.writers[u.id])
            for u in self._s.uploads.values()
            if u.state == UploadState.FINISHING and not self._free(u, now)
        ]
        return found[:limit]

    async def set_state(self, upload_id: str, state: UploadState, *, node_id: str = "", failure: str = "") -> None:
        upload = self._s.uploads.get(upload_id)
        if upload is not None:
            self._s.uploads[upload_id] = replace(
                upload, state=state, failure=failure[:1024], node_id=node_id or upload.node_id
            )

    async def delete(self, upload_id: str) -> None:
        self._s.uploads.pop(upload_id, None)
        self._s.writers.pop(upload_id, None)

    async def expire(self, upload_id: str) -> None:
        await self.delete(upload_id)

    def _free(self, upload: Upload, now: datetime) -> bool:
        return upload.id not in self._s.writers or (upload.writer_until is not None and upload.writer_until < now)

    async def expired(self, now: datetime, limit: int) -> list[Upload]:
        found = [
            replace(u)
            for u in self._s.uploads.values()
            if u.expires_at < now and self._free(u, now) and u.state != UploadState.FINISHING
        ]
        return found[:limit]

    async def delete_finished(self, now: datetime) -> int:
        gone = [i for i, u in self._s.uploads.items() if u.expires_at < now and u.finished]
        for upload_id in gone:
            await self.delete(upload_id)
        return len(gone)

    async def stalled_finishing(self, now: datetime, limit: int) -> list[Upload]:
        found = [
            replace(u) for u in self._s.uploads.values() if u.state == UploadState.FINISHING and self._free(u, now)
        ]
        return found[:limit]

    async def of_owner(self, owner_id: str) -> list[Upload]:
        return [replace(u) for u in self._s.uploads.values() if u.owner_id == owner_id]

    async def delete_owner(self, owner_id: str) -> None:
        for upload_id in [i for i, u in self._s.uploads.items() if u.owner_id == owner_id]:
            await self.delete(upload_id)


class FakeEventLog:
    """`uow.events`: kept with the transaction's state, so a rollback drops them."""

    def __init__(self, state: StorageState) -> None:
        self._s = state

    def record(self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None) -> str:
        self._s.events.append(RecordedEvent(kind, actor, subject, dict(details or {})))
        return str(len(self._s.events))


class StorageStore:
    def __init__(self) -> None:
        self.state = StorageState()
        self.commits = 0

    def uow(self, *, read_only: bool = False) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, read_only=read_only)


class FakeUnitOfWork:
    """A transaction on a copy of the state; `commit` publishes the copy (and the transaction goes on, as a
    connection's next statement begins a new one)."""

    def __init__(self, store: StorageStore, *, read_only: bool = False) -> None:
        self._store = store
        self.read_only = read_only

    async def __aenter__(self) -> Self:
        self._work = copy.deepcopy(self._store.state)
        self.nodes = FakeNodes(self._work)
        self.listings = FakeListings(self.nodes)
        self.versions = FakeVersions(self._work)
        self.quotas = FakeQuotas(self._work)
        self.link_drops = FakeLinkDrops(self._work)
        self.uploads = FakeUploads(self._work)
        self.events = FakeEventLog(self._work)
        self.scrub = FakeScrubs(self._work)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        del self._work

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit")
        self._store.state = copy.deepcopy(self._work)
        self._store.commits += 1


# -- the blob store ------------------------------------------------------------------------------------------


class FakeBlobStore:
    """Bytes in dicts. Staging: `write_staging` goes on at `offset` (at most the bytes held: a writer resuming at
    the committed size rewrites anything after it); `sync_staging` makes what was written durable, and `crash()`
    drops every staged byte that was not. Blobs are immutable once committed or put."""

    def __init__(self) -> None:
        self.staging: dict[str, bytearray] = {}
        self.durable: dict[str, int] = {}
        self.blobs: dict[str, bytes] = {}
        self.syncs = 0
        self.damaged: set[str] = set()  # blobs whose bytes no longer authenticate (`verify` and `read` say DataLoss)
        self.unit = 1024  # bytes `verify` reads per step when paced
        self.on_verify: Callable[[str], None] | None = None  # called as a blob's verification begins (tests)

    def _staged(self, upload_id: str) -> bytearray:
        found = self.staging.get(upload_id)
        if found is None:
            raise Unavailable("upload staging file is missing; abort and start the upload again")
        return found

    async def create_staging(self, upload_id: str) -> None:
        self.staging[upload_id] = bytearray()
        self.durable[upload_id] = 0

    async def write_staging(self, upload_id: str, offset: int, data: bytes | bytearray) -> None:
        staged = self._staged(upload_id)
        if offset > len(staged):
            raise DataLoss("the upload's staging data is shorter than the offset written at")
        del staged[offset:]
        staged += data
        self.durable[upload_id] = min(self.durable[upload_id], offset)

    async def sync_staging(self, upload_id: str) -> None:
        self.durable[upload_id] = len(self._staged(upload_id))
        self.syncs += 1

    def crash(self) -> None:
        """The machine went down: staged bytes never synced are gone."""
        for upload_id, staged in self.staging.items():
            del staged[self.durable[upload_id] :]

    async def read_staging(self, upload_id: str, size: int, chunk: int, *, start: int = 0) -> AsyncIterator[bytes]:
        await self.sync_staging(upload_id)
        staged = bytes(self._staged(upload_id))
        if len(staged) < size:
            raise DataLoss("the upload's staging file is shorter than its committed size; abort and upload again")
        for i in range(start, size, chunk):
            yield staged[i : min(i + chunk, size)]

    async def commit_staging(self, upload_id: str, blob_id: str, size: int) -> None:
        if upload_id not in self.staging and blob_id in self.blobs:
            return  # a repeated commit
        staged = self._staged(upload_id)
        if len(staged) < size:
            raise DataLoss("the upload's staging file is shorter than its committed size; abort and upload again")
        self.blobs[blob_id] = bytes(staged[:size])
        del self.staging[upload_id], self.durable[upload_id]

    async def put(self, upload_id: str, blob_id: str, data: bytes) -> None:
        self.blobs[blob_id] = bytes(data)

    async def delete_staging(self, upload_id: str) -> None:
        self.staging.pop(upload_id, None)
        self.durable.pop(upload_id, None)

    async def read(
        self, blob_id: str, offset: int, length: int, chunk: int, frame: Callable[[int], bytes] | None = None
    ) -> AsyncIterator[bytes]:
        data = self.blobs.get(blob_id)
        if data is None:
            raise DataLoss("the file's stored content is missing")
        if offset < 0 or length < 0 or offset + length > len(data):
            raise DataLoss("the file's stored content is shorter than recorded")
        for i in range(offset, offset + length, chunk):
            part = data[i : min(i + chunk, offset + length)]
            yield frame(len(part)) + part if frame is not None else part

    async def link(self, src_blob_id: str, dst_blob_id: str) -> None:
        if src_blob_id not in self.blobs:
            raise DataLoss("the file's stored content is missing")
        self.blobs[dst_blob_id] = self.blobs[src_blob_id]

    async def delete(self, blob_id: str) -> None:
        self.blobs.pop(blob_id, None)

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        return iter(sorted((i, len(b)) for i, b in self.blobs.items()))

    async def verify(self, blob_id: str, pace: Callable[[int], Awaitable[None]] | None = None) -> int:
        if self.on_verify is not None:
            self.on_verify(blob_id)
        data = self.blobs.get(blob_id)
        if data is None:
            raise DataLoss("the file's stored content is missing")
        for i in range(0, len(data), self.unit):
            if pace is not None:
                await pace(min(self.unit, len(data) - i))
            if blob_id in self.damaged and i + self.unit >= len(data) // 2:
                raise DataLoss("the file's stored content is damaged (segment does not authenticate)")
        return len(data)


# -- other services and helpers ------------------------------------------------------------------------------


@dataclass
class FakeLink:
    """A public link as share_svc holds it."""

    link_id: str
    root_node_id: str
    owner_id: str
    actions: frozenset[str]
    max_upload_files: int = 0
    max_upload_bytes: int = 0
    max_downloads: int = 0
    downloads: int = 0
    revoked: bool = False


class FakeAccessPolicy:
    """share_svc's decisions from a table. The port names no caller (share_svc reads it from the forwarded token),
    so `grants` (node id → the actions a share on it allows) is what the non-owner of the test may do; a grant
    covers the subtree below its node and the one highest up that allows the action is reported (as share_svc's
    `decide`)."""

    def __init__(self) -> None:
        self.grants: dict[str, frozenset[str]] = {}
        self.links: dict[str, FakeLink] = {}
        self.dropped: list[list[str]] = []
        self.down = False

    def share(self, node_id: str, *actions: str) -> None:
        self.grants[node_id] = frozenset(actions)

    async def decide(self, node_path: list[str], owner_id: str, action: str) -> Decision:
        if self.down:
            raise Unavailable("access decisions are unavailable (share_svc); retry shortly")
        on_path = [n for n in node_path if n in self.grants]
        if not on_path:
            return Decision(False, False)
        for node_id in reversed(node_path):
            if node_id in self.grants and action in self.grants[node_id]:
                return Decision(True, True, node_id)
        return Decision(False, True)

    async def drop_shares(self, owner_id: str, node_path: list[str], node_ids: list[str]) -> None:
        if self.down:
            raise Unavailable("sharing is unavailable (share_svc), so nothing was deleted; retry shortly")
        self.dropped.append(list(node_ids))
        for node_id in node_ids:
            self.grants.pop(node_id, None)

    async def link(self, token: str, session: str, node_path: list[str], owner_id: str, action: str) -> LinkScope:
        link = self.links.get(token)
        if link is None or link.revoked:
            raise NotFound("this link does not exist, was revoked or has expired")
        allowed = bool(node_path) and (
            owner_id == link.owner_id and link.root_node_id in node_path and action in link.actions
        )
        if allowed and action == "download":
            if link.max_downloads and link.downloads >= link.max_downloads:
                raise ResourceExhausted(
                    f"this link has reached its limit of {link.max_downloads} downloads", limit="link_max_downloads"
                )
            link.downloads += 1
        return LinkScope(
            link.link_id,
            link.root_node_id,
            link.owner_id,
            allowed,
            max_upload_files=link.max_upload_files,
            max_upload_bytes=link.max_upload_bytes,
        )


class FakeScanSession:
    def __init__(self, scanner: FakeScanner) -> None:
        self._scanner = scanner
        self._data = bytearray()
        self.closed = False

    @property
    def sent(self) -> int:
        return len(self._data)

    async def feed(self, data: bytes) -> None:
        self._data += data
        limit = self._scanner.limit
        if limit is not None and len(self._data) > limit:
            raise ScanLimitExceeded(limit, detail="stream")

    async def finish(self) -> ScanVerdict:
        return self._scanner.verdict(bytes(self._data))

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


class FakeScanner:
    """Clean unless the content holds `INFECTED`; `down` makes it unreachable; `limit` is its stream limit."""

    def __init__(self) -> None:
        self.down = False
        self.limit: int | None = None
        self.scanned: list[bytes] = []

    @property
    def enabled(self) -> bool:
        return True

    @property
    def description(self) -> str:
        return "fake scanner"

    def verdict(self, content: bytes) -> ScanVerdict:
        self.scanned.append(content)
        if INFECTED in content:
            return ScanVerdict(False, SIGNATURE)
        return ScanVerdict(True)

    async def open(self, size: int | None = None) -> FakeScanSession:
        if self.down:
            raise Unavailable("the virus scanner (clamd) is not reachable; retry shortly")
        if self.limit is not None and size is not None and size > self.limit:
            raise ScanLimitExceeded(self.limit, size=size, detail="declared size")
        return FakeScanSession(self)

    async def scan(self, chunks: AsyncIterator[bytes], size: int | None = None) -> ScanVerdict:
        session = await self.open(size)
        async with session:
            async for chunk in chunks:
                await session.feed(chunk)
            return await session.finish()

    async def ping(self) -> bool:
        return not self.down


class FakeEvents:
    """The audit trail for what changes nothing (a download, a refused upload): durable on `record`."""

    def __init__(self) -> None:
        self.recorded: list[RecordedEvent] = []

    async def record(
        self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None
    ) -> str:
        self.recorded.append(RecordedEvent(kind, actor, subject, dict(details or {})))
        return str(len(self.recorded))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.recorded]


class FakeUrlSigner:
    """Claims as JSON with a marker instead of an HMAC: any other token is refused, as a forged one would be."""

    def sign(self, claims: dict[str, str | int]) -> str:
        return "signed:" + json.dumps(claims, sort_keys=True, separators=(",", ":"))

    def verify(self, token: str) -> dict[str, str | int] | None:
        if not token.startswith("signed:"):
            return None
        try:
            claims = json.loads(token.removeprefix("signed:"))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def small_limits(**overrides: Any) -> Limits:
    """Small limits so a test reaches them with a few bytes (override any field)."""
    values: dict[str, Any] = dict(
        chunk_bytes=4,
        max_chunk_bytes=64,
        max_file_bytes=1024,
        upload_expiry=timedelta(hours=24),
        sync_bytes=64,
        list_page_size=3,
        list_max_page_size=10,
        default_quota_bytes=1000,
        inline_finish_bytes=512,
        trash_retention=timedelta(days=30),
        versions_kept=3,
        inline_upload_bytes=32,
        download_url_lifetime=timedelta(seconds=60),
        link_drop_max_files=3,
        link_drop_max_bytes=100,
    )
    values.update(overrides)
    return Limits(**values)


@dataclass
class FakeScrubMonitor:
    """What the scrub reported (the metrics' stand-in)."""

    blobs: int = 0
    bytes: int = 0
    damaged_blobs: int = 0
    passes: list[datetime] = field(default_factory=list)

    def verified(self, blobs: int, stored_bytes: int) -> None:
        self.blobs += blobs
        self.bytes += stored_bytes

    def damaged(self) -> None:
        self.damaged_blobs += 1

    def pass_completed(self, at: datetime) -> None:
        self.passes.append(at)


@dataclass
class StorageFakes:
    """Every port of storage_svc's use cases, faked, on one clock; the use cases composed as bootstrap.py does."""

    clock: FakeClock = field(default_factory=FakeClock)
    store: StorageStore = field(default_factory=StorageStore)
    blobs: FakeBlobStore = field(default_factory=FakeBlobStore)
    policy: FakeAccessPolicy = field(default_factory=FakeAccessPolicy)
    scanner: FakeScanner = field(default_factory=FakeScanner)
    events: FakeEvents = field(default_factory=FakeEvents)
    urls: FakeUrlSigner = field(default_factory=FakeUrlSigner)
    limits: Limits = field(default_factory=small_limits)
    holders: FakeHolders = field(default_factory=lambda: FakeHolders())

    def access(self) -> Access:
        return Access(uow=self.store.uow, policy=self.policy, clock=self.clock)

    def tree(self) -> Tree:
        return Tree(uow=self.store.uow, blobs=self.blobs, access=self.access(), limits=self.limits, clock=self.clock)

    def uploads(self) -> Uploads:
        return Uploads(
            uow=self.store.uow,
            blobs=self.blobs,
            access=self.access(),
            tree=self.tree(),
            limits=self.limits,
            scanner=self.scanner,
            events=self.events,
            clock=self.clock,
            holders=self.holders,
        )

    def downloads(self) -> Downloads:
        return Downloads(
            uow=self.store.uow,
            blobs=self.blobs,
            access=self.access(),
            events=self.events,
            urls=self.urls,
            limits=self.limits,
            clock=self.clock,
        )

    def links(self) -> PublicLinks:
        return PublicLinks(uow=self.store.uow, access=self.access(), events=self.events, limits=self.limits)

    def housekeeping(self, uploads: Uploads | None = None) -> Housekeeping:
        return Housekeeping(
            uow=self.store.uow,
            blobs=self.blobs,
            tree=self.tree(),
            uploads=uploads or self.uploads(),
            limits=self.limits,
            clock=self.clock,
        )

    def scrubber(
        self,
        monitor: FakeScrubMonitor | None = None,
        *,
        fraction_per_day: float = 1.0,
        bytes_per_second: float = 1024.0,
        holders: FakeHolders | None = None,
    ) -> Scrubber:
        """A scrubber whose pacing sleeps move the fake clock (so its accounting is checked, never real time)."""

        async def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        return Scrubber(
            uow=self.store.uow,
            blobs=self.blobs,
            clock=self.clock,
            holders=holders or self.holders,
            monitor=monitor or FakeScrubMonitor(),
            fraction_per_day=fraction_per_day,
            bytes_per_second=bytes_per_second,
            sleep=sleep,
        )

    # -- reading the committed state --

    @property
    def state(self) -> StorageState:
        return self.store.state

    def node(self, node_id: str) -> Node:
        return self.state.nodes[node_id]

    def root(self, owner_id: str) -> Node:
        return next(n for n in self.state.nodes.values() if n.owner_id == owner_id and n.parent_id is None)

    def live_names(self, parent_id: str) -> list[str]:
        return sorted(n.name for n in self.state.nodes.values() if n.parent_id == parent_id and n.trashed_at is None)

    def usage(self, owner_id: str) -> tuple[int, int]:
        """(used, reserved) bytes."""
        row = self.state.quotas.get(owner_id, Quota())
        return row.used, row.reserved

    def content(self, node_id: str) -> bytes:
        return self.blobs.blobs[self.node(node_id).blob_id]

    def event_kinds(self) -> list[str]:
        return [e.kind for e in self.state.events]

    def add_link(self, token: str, root: Node, *actions: str, **options: Any) -> FakeLink:
        link = FakeLink(f"link-{token}", root.id, root.owner_id, frozenset(actions), **options)
        self.policy.links[token] = link
        return link
