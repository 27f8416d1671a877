"""What storage use cases need from the outside: repositories, the blob store, the scanner, access decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from storage_svc.domain import (
    Cursor,
    Decision,
    Kind,
    LinkScope,
    Node,
    OrderBy,
    ScrubState,
    StoredBlob,
    TrashEntry,
    Upload,
    UploadState,
    Usage,
    Version,
)


class Nodes(Protocol):
    async def get(self, node_id: str) -> Node | None: ...
    async def get_any(self, node_id: str) -> Node | None:
        """Also trashed nodes."""
        ...

    async def root(self, owner_id: str) -> Node | None: ...
    async def folders(self, root_owners: list[str], ids: list[str]) -> list[Node]:
        """In one statement: the roots of `root_owners` and the live nodes of `ids` (those that exist)."""
        ...

    async def add(self, node: Node) -> None: ...
    async def add_many(self, nodes: list[Node]) -> None: ...
    async def add_file(self, node: Node, version: Version) -> None:
        """A new file and its first version; AlreadyExists if a live sibling has the name (the transaction is then
        spoilt: roll it back). No savepoint, unlike `add`: the small-file path has nothing to continue with."""
        ...

    async def add_files(self, files: list[tuple[Node, Version]]) -> None:
        """Several new files and their first versions in two statements (a group commit of small files);
        AlreadyExists as for `add_file`, for any of them (roll back and add them one by one to know which)."""
        ...

    async def child_named(self, parent_id: str, key: str) -> Node | None: ...
    async def taken_names(self, parent_id: str, prefix_key: str) -> set[str]:
        """name_keys of live children starting with the stem of a name (for picking a free name)."""
        ...

    async def children(
        self, parent_id: str, order: OrderBy, descending: bool, after: Cursor | None, limit: int
    ) -> list[Node]: ...
    async def update(self, node: Node) -> None: ...
    async def subtree(self, node_id: str, *, live: bool) -> list[Node]:
        """The node and everything below it (live only, or the nodes of one trash tree)."""
        ...

    async def trash_tree(self, root_id: str, at: datetime) -> None: ...
    async def restore_tree(self, root_id: str) -> None: ...
    async def trash_roots(self, owner_id: str, after: Cursor | None, limit: int) -> list[TrashEntry]: ...
    async def trash_roots_older_than(self, at: datetime, limit: int) -> list[Node]: ...
    async def rehome_trash_below(self, root_id: str, new_parent_id: str) -> None:
        """Move the trash entries deleted on their own from inside one trash tree (their parent is one of its
        nodes) under `new_parent_id`, so that tree can go without them."""
        ...

    async def delete_tree(self, root_id: str) -> None:
        """Delete the rows of one trash tree."""
        ...

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
    ) -> list[Node]: ...
    async def delete_owner(self, owner_id: str) -> None: ...


class ChildPage(Protocol):
    """A page of a folder's live children as the listing read model holds it: already in the entrypoint's wire
    form (opaque here; no domain Node per entry). The use case reads whether more entries follow and the last
    one, from which it makes the next page's cursor."""

    @property
    def wire(self) -> bytes: ...
    @property
    def count(self) -> int: ...
    @property
    def more(self) -> bool: ...
    @property
    def last(self) -> Node | None: ...


class Listings(Protocol):
    """The listing read model (a read side next to Nodes: same rows, same order, a form ready to send)."""

    async def children(
        self,
        parent_id: str,
        order: OrderBy,
        descending: bool,
        after: Cursor | None,
        limit: int,
        *,
        shared_owner: str | None = None,
    ) -> ChildPage:
        """Up to `limit` live children after `after`, in the same order and by the same keyset query as
        Nodes.children (folders first; `descending` reverses the rest). `shared_owner` set: the compact form,
        entries without their parent_id and without an owner_id equal to it (the response states both once)."""
        ...


class Versions(Protocol):
    async def add(self, version: Version) -> None: ...
    async def get(self, version_id: str) -> Version | None: ...
    async def of_node(self, node_id: str) -> list[Version]:
        """Newest first."""
        ...

    async def of_nodes(self, node_ids: list[str], *, all_versions: bool = False) -> list[Version]:
        """Current versions of these nodes, or every version."""
        ...

    async def next_number(self, node_id: str) -> int: ...
    async def delete(self, version_ids: list[str]) -> None: ...
    async def of_owner(self, owner_id: str) -> list[Version]: ...
    async def bytes_in_trash(self, owner_id: str) -> int: ...
    async def bytes_not_current(self, owner_id: str) -> int: ...


class LinkDrops(Protocol):
    async def take(self, link_id: str, size: int, max_files: int, max_bytes: int) -> tuple[int, int] | None:
        """Count one more file of `size` bytes dropped through a link if the link stays within `max_files` and
        `max_bytes` (atomically); None when it fits, else the link's (files, bytes) so far."""
        ...


class Quotas(Protocol):
    async def get(self, owner_id: str, default_limit: int) -> Usage: ...
    async def reserve(self, owner_id: str, size: int, default_limit: int) -> bool:
        """Hold `size` bytes if used + reserved + size stays within the limit (atomically)."""
        ...

    async def consume(self, owner_id: str, size: int, default_limit: int) -> bool:
        """Add to used if it fits (a copy)."""
        ...

    async def settle(self, owner_id: str, reserved: int, used: int) -> None:
        """Move bytes between reserved and used, or release them (negative numbers subtract)."""
        ...

    async def set_limit(self, owner_id: str, limit: int | None) -> None: ...
    async def reset(self, owner_id: str) -> None: ...
    async def consume_many(self, charges: dict[str, int], default_limit: int) -> bool:
        """`consume` for several owners in one statement; False (and the transaction must be rolled back) unless
        every one of them had the room."""
        ...


class Uploads(Protocol):
    async def get(self, upload_id: str) -> Upload | None: ...
    async def add(self, upload: Upload) -> None: ...
    async def add_many(self, uploads: list[Upload]) -> None:
        """Several uploads in one statement (a group commit of small files)."""
        ...

    async def acquire(self, upload_id: str, token: str, until: datetime, now: datetime, state: UploadState) -> bool: ...
    async def claim(self, upload_id: str, token: str, until: datetime, now: datetime) -> Upload | None: ...
    async def advance(
        self,
        upload_id: str,
        token: str,
        committed: int,
        until: datetime,
        expires_at: datetime,
        *,
        release: bool = False,
    ) -> bool: ...
    async def release(self, upload_id: str, token: str) -> None: ...
    async def take_over(
        self, upload_id: str, old_token: str, token: str, until: datetime, state: UploadState
    ) -> Upload | None:
        """Move the lease from `old_token` (a holder that is gone) to `token`, if `old_token` still holds it and the
        upload may go to `state` (as `acquire`); the upload, or None."""
        ...

    async def held_finishing(self, now: datetime, limit: int) -> list[Upload]:
        """FINISHING uploads whose finisher's lease has not lapsed (housekeeping checks whether it is gone)."""
        ...

    async def set_state(self, upload_id: str, state: UploadState, *, node_id: str = "", failure: str = "") -> None: ...
    async def delete(self, upload_id: str) -> None: ...
    async def expire(self, upload_id: str) -> None:
        """Delete an upload that ran out of time (counted as the outcome "expired")."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[Upload]: ...
    async def delete_finished(self, now: datetime) -> int: ...
    async def stalled_finishing(self, now: datetime, limit: int) -> list[Upload]: ...
    async def of_owner(self, owner_id: str) -> list[Upload]: ...
    async def delete_owner(self, owner_id: str) -> None: ...


class Scrubs(Protocol):
    """The scrub's position and lease (one row, shared by every replica) and the blobs it walks, by blob id."""

    async def state(self) -> ScrubState: ...
    async def claim(self, token: str, until: datetime, now: datetime) -> ScrubState | None:
        """Take the lease if it is free, lapsed or already `token`'s (atomically); the state, or None."""
        ...

    async def take_over(self, old_token: str, token: str, until: datetime) -> ScrubState | None:
        """Move the lease from `old_token` (a holder that is gone) to `token`, if `old_token` still holds it."""
        ...

    async def save(self, token: str, state: ScrubState, until: datetime) -> bool:
        """Record position, pass times and credit (renewing the lease) if `token` still holds the lease."""
        ...

    async def release(self, token: str) -> None: ...
    async def blobs_after(self, position: str, limit: int) -> list[StoredBlob]:
        """Up to `limit` versions' blobs with a blob id above `position`, in blob id order."""
        ...

    async def blob(self, blob_id: str) -> StoredBlob | None:
        """The version holding `blob_id`, if it still exists."""
        ...

    async def count(self, after: str = "") -> int:
        """Blobs (version rows) with a blob id above `after`."""
        ...


class ScrubMonitor(Protocol):
    """What the scrub reports as it goes (metrics): blobs and bytes verified, damage found, passes completed."""

    def verified(self, blobs: int, stored_bytes: int) -> None: ...
    def damaged(self) -> None: ...
    def pass_completed(self, at: datetime) -> None: ...


class LeaseHolders(Protocol):
    """Tokens for writer leases that name their holder, and whether a holder is provably gone (its process ended),
    so its lease can be taken over at once instead of lapsing (flowdock_kernel.incarnation)."""

    def token(self) -> str: ...
    def gone(self, token: str) -> bool: ...
    def abandon(self, token: str) -> None: ...


class EventLog(Protocol):
    """The audit events of a unit of work: written by its commit, in the same transaction; dropped if it is rolled
    back. So an event exists exactly when the change it describes does."""

    def record(self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None) -> str: ...


class UnitOfWork(Protocol):
    """A transaction: rolled back unless `commit` is called."""

    @property
    def nodes(self) -> Nodes: ...
    @property
    def versions(self) -> Versions: ...
    @property
    def quotas(self) -> Quotas: ...
    @property
    def link_drops(self) -> LinkDrops: ...
    @property
    def uploads(self) -> Uploads: ...
    @property
    def events(self) -> EventLog: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def listings(self) -> Listings: ...
    @property
    def scrub(self) -> Scrubs: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """`read_only`: the use case only reads (it cannot commit), so it never waits for a writer."""
        ...


class BlobStore(Protocol):
    """Bytes by opaque id; paths on disk never derive from user input."""

    async def create_staging(self, upload_id: str) -> None: ...
    async def write_staging(self, upload_id: str, offset: int, data: bytes | bytearray) -> None: ...
    async def sync_staging(self, upload_id: str) -> None: ...
    def read_staging(self, upload_id: str, size: int, chunk: int, *, start: int = 0) -> AsyncIterator[bytes]:
        """Plaintext [start, size) of an upload's staged bytes (after a sync), in chunks."""
        ...

    async def commit_staging(self, upload_id: str, blob_id: str, size: int) -> None: ...
    async def put(self, upload_id: str, blob_id: str, data: bytes) -> None:
        """A whole small blob in one durable step (no staging state left behind)."""
        ...

    async def delete_staging(self, upload_id: str) -> None: ...
    def read(
        self, blob_id: str, offset: int, length: int, chunk: int, frame: Callable[[int], bytes] | None = None
    ) -> AsyncIterator[bytes]:
        """Plaintext in chunks; with `frame`, each chunk comes as frame(len(chunk)) + chunk."""
        ...

    async def link(self, src_blob_id: str, dst_blob_id: str) -> None: ...
    async def delete(self, blob_id: str) -> None: ...
    def list_blobs(self) -> Iterator[tuple[str, int]]: ...
    async def verify(self, blob_id: str, pace: Callable[[int], Awaitable[None]] | None = None) -> int:
        """Authenticate every segment; the plaintext size, DataLoss if anything is damaged or missing. With `pace`,
        the blob is read a unit (~1 MiB) at a time and `await pace(stored bytes read)` runs between units (the
        scrub's budget), so no worker thread is held for a whole large blob."""
        ...


class UrlSigner(Protocol):
    """Makes and checks the tokens inside short-lived download URLs."""

    def sign(self, claims: dict[str, str | int]) -> str: ...
    def verify(self, token: str) -> dict[str, str | int] | None:
        """The claims if the token is authentic, else None (expiry is the caller's check)."""
        ...


class Events(Protocol):
    """The audit trail (auth_svc's activity log) for what changes nothing here (a download, a refused upload):
    durable when `record` returns, in a transaction of its own. Events of a change go on its unit of work
    (`uow.events`). `subject` is the account the event concerns (it shows in that user's activity); node ids go
    in `details`."""

    async def record(
        self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None
    ) -> str: ...


class AccessPolicy(Protocol):
    """Decides for non-owners (share_svc); owners never ask. `node_path` is nearest first."""

    async def decide(self, node_path: list[str], owner_id: str, action: str) -> Decision: ...
    async def drop_shares(self, owner_id: str, node_path: list[str], node_ids: list[str]) -> None:
        """A tree is being deleted: share_svc forgets its shares and links (Unavailable if it cannot)."""
        ...

    async def link(self, token: str, session: str, node_path: list[str], owner_id: str, action: str) -> LinkScope:
        """An anonymous visitor of a public link: NotFound for an unknown, revoked or expired link; with an empty
        path, just the link's scope. An allowed download is counted (ResourceExhausted at the limit)."""
        ...


@dataclass(frozen=True, slots=True)
class ScanVerdict:
    """What the scanner concluded. `scanned` is False only when scanning is switched off (DisabledScanner)."""

    clean: bool
    signature: str | None = None
    scanned: bool = True


class VirusScanSession(Protocol):
    """One file's bytes on their way to the scanner."""

    @property
    def sent(self) -> int: ...
    async def feed(self, data: bytes) -> None: ...
    async def finish(self) -> ScanVerdict: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class VirusScanner(Protocol):
    """What the upload use case needs from a scanner (storage_svc/scanner.py: ClamdScanner, or DisabledScanner
    when switched off). Content over the scanner's limit raises domain.ScanLimitExceeded; a scanner that cannot
    be reached raises Unavailable (never a clean verdict)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def description(self) -> str: ...
    async def open(self, size: int | None = None) -> VirusScanSession: ...
    async def scan(self, chunks: AsyncIterator[bytes], size: int | None = None) -> ScanVerdict: ...
    async def ping(self) -> bool: ...
