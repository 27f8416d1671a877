"""Storage use cases: the tree, resumable uploads, downloads, trash, versions, quota, search.

Every public method takes the verified caller's id. A node the caller may not see answers exactly like a
missing node (NotFound), so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ResourceExhausted,
    TooLarge,
    Unavailable,
)
from storage_svc import domain
from storage_svc.domain import (
    Cursor,
    Decision,
    Kind,
    LinkScope,
    Node,
    OnConflict,
    OrderBy,
    ScanLimitExceeded,
    TrashEntry,
    Upload,
    UploadState,
    Usage,
    Version,
)
from storage_svc.ports import (
    AccessPolicy,
    BlobStore,
    ChildPage,
    Events,
    UnitOfWork,
    UnitOfWorkFactory,
    UrlSigner,
    VirusScanner,
)

log = logging.getLogger("flowdock.storage")

ROOT = "root"
WRITE_UNIT = 1024 * 1024  # bytes handed to the blob store per write (1 MiB measured best)
LEASE = timedelta(seconds=60)
LINK_CREATOR = "link:"
_DOING = {"list": "seeing this", "download": "downloading", "write": "changing this", "upload": "uploading"}


@dataclass(frozen=True)
class DropLimits:
    """What one file-drop link may take; own_*: the limit is the link's own (its owner set it), not the setting."""

    max_files: int
    max_bytes: int
    own_files: bool = False
    own_bytes: bool = False


@dataclass(frozen=True)
class Limits:
    chunk_bytes: int
    max_chunk_bytes: int
    max_file_bytes: int
    upload_expiry: timedelta
    sync_bytes: int
    list_page_size: int
    list_max_page_size: int
    default_quota_bytes: int = 10 * 1024**3
    inline_finish_bytes: int = 64 * 1024 * 1024
    trash_retention: timedelta = timedelta(days=30)
    versions_kept: int = 10
    scan_oversize: str = "refuse"
    inline_upload_bytes: int = 4 * 1024 * 1024
    download_url_lifetime: timedelta = timedelta(seconds=60)
    link_drop_max_files: int = 1000
    link_drop_max_bytes: int = 1024**3


def _page_size(requested: int, limits: Limits) -> int:
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    if requested > limits.list_max_page_size:
        raise InvalidArgument("page_size", f"must be at most {limits.list_max_page_size}")
    return requested or limits.list_page_size


class ScanRefused(Exception):
    """The content was refused at finish; the message is what the client sees."""


@dataclass
class Storage:
    uow: UnitOfWorkFactory
    blobs: BlobStore
    access: AccessPolicy
    limits: Limits
    scanner: VirusScanner
    events: Events
    urls: UrlSigner
    clock: Clock
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- access -------------------------------------------------------------------------------------------------

    async def _access(self, uow: UnitOfWork, caller: str, node_id: str, action: str) -> tuple[Node, Decision]:
        """The live node and share_svc's decision if the caller may act on it. A node the caller cannot see at all
        answers the same NotFound as a missing node; one they see through a share whose role does not allow the
        action answers PermissionDenied."""
        if node_id in (ROOT, ""):
            return await self._root(uow, caller), Decision(True, True)
        node = await uow.nodes.get(node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        if node.owner_id == caller:
            return node, Decision(True, True)
        path = [n.id for n in reversed(await self._ancestors(uow, node))]
        decision = await self.access.decide(path, node.owner_id, action)
        if not decision.allowed:
            if decision.visible:
                raise PermissionDenied(f"your role on this share does not allow {_DOING[action]}")
            raise NotFound(f"node {node_id} not found")
        return node, decision

    async def _resolve(self, uow: UnitOfWork, caller: str, node_id: str, action: str) -> Node:
        return (await self._access(uow, caller, node_id, action))[0]

    async def _ancestors(self, uow: UnitOfWork, node: Node) -> list[Node]:
        """Root first, the node last."""
        chain = [node]
        parent_id = node.parent_id
        while parent_id:
            parent = await uow.nodes.get_any(parent_id)
            if parent is None:
                break
            chain.append(parent)
            parent_id = parent.parent_id
        return list(reversed(chain))

    async def _root(self, uow: UnitOfWork, caller: str) -> Node:
        root = await uow.nodes.root(caller)
        if root is not None:
            return root
        if uow.read_only:  # a user's first call: their root is made once, in a transaction of its own
            async with self.uow() as writer:
                return await self._root(writer, caller)
        now = self.clock.now()
        root = Node(str(uuid.uuid4()), caller, None, "", Kind.FOLDER, 0, now, now)
        try:
            await uow.nodes.add(root)
            await uow.commit()
        except AlreadyExists:
            existing = await uow.nodes.root(caller)  # created concurrently
            if existing is None:
                raise
            return existing
        return root

    async def _folder(self, uow: UnitOfWork, caller: str, folder_id: str, action: str) -> Node:
        folder = await self._resolve(uow, caller, folder_id or ROOT, action)
        if folder.kind != Kind.FOLDER:
            raise FailedPrecondition(f"{folder_id} is a file, not a folder")
        return folder

    async def _writable(self, uow: UnitOfWork, caller: str, node_id: str) -> Node:
        """The owner, or an editor below the top of their share (the shared item itself stays the owner's)."""
        node, decision = await self._access(uow, caller, node_id, "write")
        if node.owner_id != caller and decision.grant_node_id == node.id:
            raise PermissionDenied("the shared item itself can only be renamed, moved or deleted by its owner")
        return node

    async def _place(self, uow: UnitOfWork, parent: Node, name: str, policy: OnConflict, *, own_id: str = "") -> str:
        """The name to use in `parent` under the conflict policy (FAIL → AlreadyExists)."""
        clash = await uow.nodes.child_named(parent.id, domain.name_key(name))
        if clash is None or clash.id == own_id:
            return name
        if policy == OnConflict.RENAME:
            stem = name.rpartition(".")[0] or name
            return domain.free_name(name, await uow.nodes.taken_names(parent.id, domain.name_key(stem)))
        raise AlreadyExists(f"an entry named {name!r} already exists in this folder")

    # -- folders ------------------------------------------------------------------------------------------------

    async def create_folder(self, caller: str, parent_id: str, name: str) -> Node:
        name = domain.validate_name(name)
        async with self.uow() as uow:
            parent = await self._folder(uow, caller, parent_id, "write")
            name = await self._place(uow, parent, name, OnConflict.FAIL)
            now = self.clock.now()
            node = Node(str(uuid.uuid4()), parent.owner_id, parent.id, name, Kind.FOLDER, 0, now, now)
            await uow.nodes.add(node)
            try:
                await uow.commit()
            except AlreadyExists:
                raise AlreadyExists(f"an entry named {name!r} already exists in this folder") from None
        return node

    async def _ensure_folders(self, caller: str, parent_id: str, parts: list[str]) -> str:
        """Create missing folders along `parts` below `parent_id` (concurrent creators are fine)."""
        current = parent_id or ROOT
        for part in parts:
            async with self.uow(read_only=True) as uow:
                parent = await self._folder(uow, caller, current, "write")
                existing = await uow.nodes.child_named(parent.id, domain.name_key(part))
                if existing is not None:
                    if existing.kind != Kind.FOLDER:
                        raise AlreadyExists(f"{part!r} exists and is a file, not a folder")
                    current = existing.id
                    continue
            try:
                current = (await self.create_folder(caller, parent.id, part)).id
            except AlreadyExists:
                async with self.uow(read_only=True) as uow:
                    again = await uow.nodes.child_named(parent.id, domain.name_key(part))
                if again is None or again.kind != Kind.FOLDER:
                    raise
                current = again.id
        return current

    async def list_children(
        self,
        caller: str,
        folder_id: str,
        page_size: int,
        page_token: str,
        order: OrderBy = OrderBy.NAME,
        descending: bool = False,
    ) -> tuple[ChildPage, str]:
        """A page of the folder's children in the listing read model's form, and the next page's token."""
        limit = _page_size(page_size, self.limits)
        after = Cursor.decode(page_token, domain.CURSOR_KEYS[order]) if page_token else None
        async with self.uow(read_only=True) as uow:
            folder = await self._folder(uow, caller, folder_id, "list")
            page = await uow.listings.children(folder.id, order, descending, after, limit)
        return page, _next_token(page, order)

    async def get_node(self, caller: str, node_id: str) -> Node:
        async with self.uow(read_only=True) as uow:
            return await self._resolve(uow, caller, node_id, "list")

    async def node_path(self, caller: str, node_id: str) -> list[Node]:
        async with self.uow(read_only=True) as uow:
            node, decision = await self._access(uow, caller, node_id, "list")
            chain = await self._ancestors(uow, node)
        if node.owner_id != caller:
            # A grantee sees breadcrumbs only from the top of their share down.
            ids = [n.id for n in chain]
            chain = chain[ids.index(decision.grant_node_id) :] if decision.grant_node_id in ids else chain[-1:]
        return chain

    async def update_node(self, caller: str, node_id: str, name: str, parent_id: str, policy: OnConflict) -> Node:
        async with self.uow() as uow:
            node = await self._writable(uow, caller, node_id)
            if node.parent_id is None:
                raise FailedPrecondition("the root folder cannot be renamed or moved")
            new_name = domain.validate_name(name) if name else node.name
            parent = await self._folder(uow, caller, parent_id, "write") if parent_id else None
            if parent is None:
                parent = await uow.nodes.get(node.parent_id)
                if parent is None:
                    raise NotFound(f"node {node_id} not found")
            if parent.owner_id != node.owner_id:
                raise FailedPrecondition("moving between different owners' trees is not supported; copy instead")
            if node.kind == Kind.FOLDER:
                for ancestor in await self._ancestors(uow, parent):
                    if ancestor.id == node.id:
                        raise FailedPrecondition("a folder cannot be moved into itself or one of its subfolders")
            if policy == OnConflict.NEW_VERSION:
                raise InvalidArgument("on_conflict", "NEW_VERSION applies to uploads only")
            new_name = await self._place(uow, parent, new_name, policy, own_id=node.id)
            updated = replace(node, name=new_name, parent_id=parent.id, modified_at=self.clock.now())
            await uow.nodes.update(updated)
            if updated.name != node.name:
                uow.events.record(
                    "storage.rename",
                    actor=caller,
                    subject=node.owner_id,
                    details={"node_id": node.id, "from": node.name, "to": new_name},
                )
            if updated.parent_id != node.parent_id:
                uow.events.record(
                    "storage.move",
                    actor=caller,
                    subject=node.owner_id,
                    details={"node_id": node.id, "from": node.parent_id or "", "to": parent.id},
                )
            try:
                await uow.commit()
            except AlreadyExists:
                raise AlreadyExists(f"an entry named {new_name!r} already exists in the target folder") from None
        return updated

    async def copy_node(self, caller: str, node_id: str, parent_id: str, name: str, policy: OnConflict) -> Node:
        async with self.uow() as uow:
            source = await self._resolve(uow, caller, node_id, "download")
            if source.parent_id is None:
                raise FailedPrecondition("the root folder cannot be copied; copy its entries")
            parent = await self._folder(uow, caller, parent_id or source.parent_id, "write")
            if parent.owner_id != caller:
                raise PermissionDenied("copies go into your own folders")
            if source.kind == Kind.FOLDER:
                for ancestor in await self._ancestors(uow, parent):
                    if ancestor.id == source.id:
                        raise FailedPrecondition("a folder cannot be copied into itself or one of its subfolders")
            new_name = domain.validate_name(name) if name else source.name
            if policy == OnConflict.NEW_VERSION:
                raise InvalidArgument("on_conflict", "NEW_VERSION applies to uploads only")
            if not name and not parent_id:
                policy = OnConflict.RENAME  # a copy beside the original gets "name (1)"
            new_name = await self._place(uow, parent, new_name, policy)
            tree = await uow.nodes.subtree(source.id, live=True)
            currents = {v.id: v for v in await uow.versions.of_nodes([n.id for n in tree if n.kind == Kind.FILE])}
            total = sum(currents[n.version_id].size for n in tree if n.kind == Kind.FILE and n.version_id in currents)
            if not await uow.quotas.consume(caller, total, self.limits.default_quota_bytes):
                raise self._quota_error(await uow.quotas.get(caller, self.limits.default_quota_bytes), total)
            now = self.clock.now()
            new_ids = {n.id: str(uuid.uuid4()) for n in tree}
            copies: list[Node] = []
            versions: list[Version] = []
            for n in tree:
                copy = replace(
                    n,
                    id=new_ids[n.id],
                    owner_id=caller,
                    parent_id=parent.id if n.id == source.id else new_ids[n.parent_id or ""],
                    name=new_name if n.id == source.id else n.name,
                    created_at=now,
                    modified_at=now,
                )
                if n.kind == Kind.FILE and n.version_id in currents:
                    old = currents[n.version_id]
                    blob_id = uuid.uuid4().hex
                    await self.blobs.link(old.blob_id, blob_id)
                    version = replace(
                        old,
                        id=str(uuid.uuid4()),
                        node_id=copy.id,
                        owner_id=caller,
                        number=1,
                        blob_id=blob_id,
                        created_at=now,
                    )
                    versions.append(version)
                    copy = replace(copy, version_id=version.id, blob_id=blob_id)
                copies.append(copy)
            await uow.nodes.add_many(copies)
            for version in versions:
                await uow.versions.add(version)
            uow.events.record(
                "storage.copy",
                actor=caller,
                subject=caller,
                details={"node_id": copies[0].id, "from": source.id, "nodes": str(len(copies))},
            )
            try:
                await uow.commit()
            except Exception:
                for version in versions:
                    await self.blobs.delete(version.blob_id)
                raise
        return copies[0]

    # -- trash --------------------------------------------------------------------------------------------------

    async def delete_node(self, caller: str, node_id: str) -> Node:
        async with self.uow(read_only=True) as uow:
            node = await self._writable(uow, caller, node_id)
            if node.parent_id is None:
                raise FailedPrecondition("the root folder cannot be deleted")
            path = [n.id for n in reversed(await self._ancestors(uow, node))]
            tree = [n.id for n in await uow.nodes.subtree(node.id, live=True)]
        # Shares and links of the tree go first (fail closed: if share_svc cannot, nothing is deleted), so a
        # restore from the trash never brings old grants back.
        await self.access.drop_shares(node.owner_id, path, tree)
        async with self.uow() as uow:
            node = await self._writable(uow, caller, node_id)
            now = self.clock.now()
            await uow.nodes.trash_tree(node.id, now)
            uow.events.record(
                "storage.delete", actor=caller, subject=node.owner_id, details={"node_id": node.id, "name": node.name}
            )
            await uow.commit()
        return replace(node, trashed_at=now, trash_root_id=node.id)

    async def list_trash(self, caller: str, page_size: int, page_token: str) -> tuple[list[TrashEntry], str]:
        limit = _page_size(page_size, self.limits)
        after = Cursor.decode(page_token, "micros") if page_token else None
        async with self.uow(read_only=True) as uow:
            rows = await uow.nodes.trash_roots(caller, after, limit + 1)
        now = self.clock.now()
        return _page(rows, limit, lambda e: Cursor(0, domain.micros(e.node.trashed_at or now), e.node.id))

    async def _trash_root(self, uow: UnitOfWork, caller: str, node_id: str) -> Node:
        node = await uow.nodes.get_any(node_id)
        if node is None or node.owner_id != caller or node.trash_root_id != node.id:
            raise NotFound(f"no trashed entry {node_id}")
        return node

    async def restore_trash(self, caller: str, node_id: str) -> Node:
        async with self.uow() as uow:
            node = await self._trash_root(uow, caller, node_id)
            parent = await uow.nodes.get(node.parent_id or "")
            if parent is None:
                parent = await self._root(uow, caller)  # the original folder is gone or trashed itself
            taken_name = await uow.nodes.child_named(parent.id, domain.name_key(node.name))
            name = node.name
            if taken_name is not None:
                stem = name.rpartition(".")[0] or name
                name = domain.free_name(name, await uow.nodes.taken_names(parent.id, domain.name_key(stem)))
            # Rename and re-parent while still trashed, then bring the tree back: the live-name index never clashes.
            await uow.nodes.update(replace(node, parent_id=parent.id, name=name))
            await uow.nodes.restore_tree(node.id)
            uow.events.record(
                "storage.restore",
                actor=caller,
                subject=node.owner_id,
                details={"node_id": node.id, "name": name, "to": parent.id},
            )
            await uow.commit()
        return replace(node, parent_id=parent.id, name=name, trashed_at=None, trash_root_id="")

    async def _purge(self, uow: UnitOfWork, root: Node, actor: str, **details: str) -> int:
        tree = await uow.nodes.subtree(root.id, live=False)
        versions = await uow.versions.of_nodes([n.id for n in tree if n.kind == Kind.FILE], all_versions=True)
        freed = sum(v.size for v in versions)
        await uow.versions.delete([v.id for v in versions])
        # What was deleted on its own from inside this tree before it (trash C, then its parent P) stays its own
        # trash entry, as in Nextcloud's and oCIS's trash: purging P leaves C, which now belongs under the owner's
        # root (where restoring it puts it, as the original folder is gone for good).
        home = await uow.nodes.root(root.owner_id)
        if home is not None:
            await uow.nodes.rehome_trash_below(root.id, home.id)
        await uow.nodes.delete_tree(root.id)
        await uow.quotas.settle(root.owner_id, reserved=0, used=-freed)
        uow.events.record(
            "storage.purge",
            actor=actor,
            subject=root.owner_id,
            details={"node_id": root.id, "name": root.name, "freed_bytes": str(freed), **details},
        )
        await uow.commit()
        for version in versions:
            await self.blobs.delete(version.blob_id)
        return freed

    async def purge_trash(self, caller: str, node_id: str) -> int:
        async with self.uow() as uow:
            return await self._purge(uow, await self._trash_root(uow, caller, node_id), caller)

    async def empty_trash(self, caller: str) -> int:
        freed = 0
        while True:
            async with self.uow(read_only=True) as uow:
                roots = await uow.nodes.trash_roots(caller, None, 100)
            if not roots:
                return freed
            for entry in roots:
                async with self.uow() as uow:
                    freed += await self._purge(uow, entry.node, caller)

    # -- versions -----------------------------------------------------------------------------------------------

    async def _file(self, uow: UnitOfWork, caller: str, file_id: str, action: str) -> Node:
        node = await self._resolve(uow, caller, file_id, action)
        if node.kind != Kind.FILE:
            raise FailedPrecondition(f"{file_id} is a folder; versions belong to files")
        return node

    async def list_versions(self, caller: str, file_id: str) -> tuple[Node, list[Version]]:
        async with self.uow(read_only=True) as uow:
            node = await self._file(uow, caller, file_id, "list")
            return node, await uow.versions.of_node(node.id)

    async def restore_version(self, caller: str, file_id: str, version_id: str) -> Node:
        async with self.uow() as uow:
            node = await self._writable(uow, caller, file_id)
            old = await uow.versions.get(version_id)
            if old is None or old.node_id != node.id:
                raise NotFound(f"version {version_id} not found")
            if old.id == node.version_id:
                return node
            if not await uow.quotas.consume(node.owner_id, old.size, self.limits.default_quota_bytes):
                raise self._quota_error(await uow.quotas.get(node.owner_id, self.limits.default_quota_bytes), old.size)
            blob_id = uuid.uuid4().hex
            await self.blobs.link(old.blob_id, blob_id)
            updated, pruned = await self._add_version(
                uow, node, blob_id, old.size, old.sha256, old.content_type, self.clock.now()
            )
            uow.events.record(
                "storage.version_restore",
                actor=caller,
                subject=node.owner_id,
                details={"node_id": node.id, "version": str(old.number)},
            )
            await uow.commit()
        await self._delete_blobs(pruned)
        return updated

    async def _add_version(
        self, uow: UnitOfWork, node: Node, blob_id: str, size: int, sha256: str, content_type: str, now: datetime
    ) -> tuple[Node, list[Version]]:
        """Make new content current and prune versions beyond the retention; returns what was pruned."""
        version = Version(
            id=str(uuid.uuid4()),
            node_id=node.id,
            owner_id=node.owner_id,
            number=await uow.versions.next_number(node.id),
            blob_id=blob_id,
            size=size,
            sha256=sha256,
            content_type=content_type,
            created_at=now,
        )
        await uow.versions.add(version)
        updated = replace(
            node,
            size=size,
            sha256=sha256,
            content_type=content_type,
            blob_id=blob_id,
            version_id=version.id,
            modified_at=now,
        )
        await uow.nodes.update(updated)
        existing = await uow.versions.of_node(node.id)
        pruned = [v for v in existing if v.id != version.id][max(self.limits.versions_kept - 1, 0) :]
        if pruned:
            await uow.versions.delete([v.id for v in pruned])
            await uow.quotas.settle(node.owner_id, reserved=0, used=-sum(v.size for v in pruned))
        return updated, pruned

    async def _delete_blobs(self, versions: list[Version]) -> None:
        for version in versions:
            await self.blobs.delete(version.blob_id)

    # -- quota --------------------------------------------------------------------------------------------------

    def _quota_error(self, usage: Usage, needed: int) -> QuotaExceeded:
        return QuotaExceeded(
            f"storage quota of {usage.limit} bytes exceeded: {usage.used} used, {usage.reserved} reserved by open "
            f"uploads, {needed} more needed; free space (empty the trash, delete old versions) or ask an admin "
            "for a larger quota",
            limit="storage_quota_bytes",
        )

    async def quota(self, caller: str) -> tuple[Usage, int, int]:
        async with self.uow(read_only=True) as uow:
            usage = await uow.quotas.get(caller, self.limits.default_quota_bytes)
            return usage, await uow.versions.bytes_in_trash(caller), await uow.versions.bytes_not_current(caller)

    async def set_quota(self, user_id: str, limit: int) -> Usage:
        if limit < 0:
            raise InvalidArgument("limit_bytes", "must not be negative (0 = the default)")
        async with self.uow() as uow:
            await uow.quotas.set_limit(user_id, limit or None)
            await uow.commit()
            return await uow.quotas.get(user_id, self.limits.default_quota_bytes)

    async def user_quota(self, user_id: str) -> Usage:
        async with self.uow(read_only=True) as uow:
            return await uow.quotas.get(user_id, self.limits.default_quota_bytes)

    async def delete_user_data(self, user_id: str) -> int:
        async with self.uow() as uow:
            versions = await uow.versions.of_owner(user_id)
            # A completed upload's staging file became its blob; the others may still have one. Completed ones (one
            # per small file sent in one call, for a day) are rows only, deleted with the rest in one statement.
            staged = [u.id for u in await uow.uploads.of_owner(user_id) if u.state != UploadState.COMPLETED]
            freed = sum(v.size for v in versions)
            await uow.versions.delete([v.id for v in versions])
            await uow.uploads.delete_owner(user_id)
            await uow.nodes.delete_owner(user_id)
            await uow.quotas.reset(user_id)
            await uow.commit()
        await self._delete_blobs(versions)
        for upload_id in staged:
            await self.blobs.delete_staging(upload_id)
        return freed

    # -- search -------------------------------------------------------------------------------------------------

    async def search(
        self,
        caller: str,
        query: str,
        page_size: int,
        page_token: str,
        kind: Kind | None = None,
        modified_after: datetime | None = None,
        modified_before: datetime | None = None,
        min_size: int = 0,
        max_size: int = 0,
    ) -> tuple[list[Node], str]:
        query = query.strip()
        if not query:
            raise InvalidArgument("query", "must not be empty")
        if len(query) > 255:
            raise InvalidArgument("query", "must be at most 255 characters")
        if min_size < 0 or max_size < 0:
            raise InvalidArgument("min_size" if min_size < 0 else "max_size", "must not be negative")
        limit = _page_size(page_size, self.limits)
        after = Cursor.decode(page_token) if page_token else None
        async with self.uow(read_only=True) as uow:
            rows = await uow.nodes.search(
                caller,
                domain.name_key(query),
                kind,
                modified_after,
                modified_before,
                min_size,
                max_size,
                after,
                limit + 1,
            )
        return _page(rows, limit, lambda n: Cursor(0, domain.name_key(n.name), n.id))

    # -- uploads ------------------------------------------------------------------------------------------------

    async def create_upload(
        self,
        caller: str,
        parent_id: str,
        name: str,
        size: int,
        sha256: str,
        content_type: str,
        relative_path: str = "",
        on_conflict: OnConflict = OnConflict.FAIL,
        *,
        link_parent: Node | None = None,
        drop: DropLimits | None = None,
    ) -> Upload:
        """`link_parent`: a file drop into that folder, already authorised by the link (caller "link:<id>")."""
        name, folders = _target(name, relative_path, link_parent)
        sha256 = domain.validate_sha256(sha256)
        content_type = domain.validate_content_type(content_type)
        if size < 0:
            raise InvalidArgument("size", "must not be negative")
        if size > self.limits.max_file_bytes:
            raise TooLarge(
                f"size {size} exceeds the per-file limit of {self.limits.max_file_bytes} bytes "
                "(storage_max_file_bytes)",
                limit="storage_max_file_bytes",
            )
        if folders:
            parent_id = await self._ensure_folders(caller, parent_id, folders)
        async with self.uow() as uow:
            parent = await self._upload_parent(uow, caller, parent_id, link_parent)
            name, clash = await self._upload_name(uow, parent, name, on_conflict)
            target = clash.id if clash is not None else ""
            await self._take_link_drop(uow, caller, size, link_parent, drop)
            if not await uow.quotas.reserve(parent.owner_id, size, self.limits.default_quota_bytes):
                raise self._quota_error(await uow.quotas.get(parent.owner_id, self.limits.default_quota_bytes), size)
            now = self.clock.now()
            upload = Upload(
                id=str(uuid.uuid4()),
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                size=size,
                sha256=sha256,
                content_type=content_type,
                committed_size=0,
                state=UploadState.OPEN,
                created_at=now,
                expires_at=now + self.limits.upload_expiry,
                on_conflict=on_conflict,
                target_node_id=target,
                creator_id=caller,
            )
            await self.blobs.create_staging(upload.id)
            await uow.uploads.add(upload)
            await uow.commit()
        return upload

    async def _take_link_drop(
        self, uow: UnitOfWork, caller: str, size: int, link_parent: Node | None, drop: DropLimits | None
    ) -> None:
        """A file drop counts against its link's limits before the owner's quota: a public link must not be
        able to fill the owner's whole quota or their folder with files."""
        if link_parent is None:
            return
        drop = drop or DropLimits(self.limits.link_drop_max_files, self.limits.link_drop_max_bytes)
        used = await uow.link_drops.take(caller, size, drop.max_files, drop.max_bytes)
        if used is None:
            return
        files, taken = used
        if files + 1 > drop.max_files:
            name = "link max_upload_files" if drop.own_files else "storage_link_drop_max_files"
            raise ResourceExhausted(
                f"this file-drop link has taken its {drop.max_files} files ({name}); ask the owner for a new link",
                limit=name,
            )
        name = "link max_upload_bytes" if drop.own_bytes else "storage_link_drop_max_bytes"
        raise ResourceExhausted(
            f"a file of {size} bytes would take this file-drop link past its {drop.max_bytes} bytes "
            f"({taken} taken; {name})",
            limit=name,
        )

    async def _upload_parent(self, uow: UnitOfWork, caller: str, parent_id: str, link_parent: Node | None) -> Node:
        """The folder an upload goes to: a file drop's (authorised by its link), else one the caller may write."""
        if link_parent is None:
            return await self._folder(uow, caller, parent_id, "write")
        parent = await uow.nodes.get(link_parent.id)
        if parent is None:
            raise NotFound(f"node {link_parent.id} not found")
        return parent

    async def _upload_name(
        self, uow: UnitOfWork, parent: Node, name: str, on_conflict: OnConflict
    ) -> tuple[str, Node | None]:
        """The name to use under the conflict policy, and the file that gets a new version (NEW_VERSION)."""
        clash = await uow.nodes.child_named(parent.id, domain.name_key(name))
        if clash is None:
            return name, None
        if on_conflict == OnConflict.NEW_VERSION:
            if clash.kind != Kind.FILE:
                raise AlreadyExists(f"{name!r} is a folder; a new version needs a file")
            return name, clash
        return await self._place(uow, parent, name, on_conflict), None

    async def upload_inline(
        self,
        caller: str,
        parent_id: str,
        name: str,
        content: bytes,
        size: int,
        sha256: str,
        content_type: str,
        relative_path: str = "",
        on_conflict: OnConflict = OnConflict.FAIL,
        *,
        link_parent: Node | None = None,
        drop: DropLimits | None = None,
    ) -> tuple[Upload, Node | None]:
        """A small file in one call: checked, scanned, written as a whole blob and committed in one transaction
        (quota, node, version, and the upload's row, already COMPLETED, so GetUpload answers for it like for any
        upload until it expires) — no lease, nothing resumable, since nothing is left to resume.
        Content that is refused (checksum, virus) or cannot be scanned here takes the resumable path, so refusals
        look the same whichever way a file came (a FAILED upload with its reason, the event recorded)."""
        if len(content) > self.limits.inline_upload_bytes:
            raise TooLarge(
                f"inline content of {len(content)} bytes exceeds storage_inline_upload_bytes "
                f"({self.limits.inline_upload_bytes}); upload it in chunks instead",
                limit="storage_inline_upload_bytes",
            )
        if size != len(content):
            raise InvalidArgument("size", f"must equal the inline content's length ({len(content)})")
        args = (
            caller,
            parent_id,
            name,
            content,
            size,
            sha256,
            content_type,
            relative_path,
            on_conflict,
            link_parent,
            drop,
        )
        name, folders = _target(name, relative_path, link_parent)
        declared = domain.validate_sha256(sha256)
        content_type = domain.validate_content_type(content_type)
        digest = await _sha256(content)
        if (declared and digest != declared) or not await self._clean(content):
            return await self._upload_resumably(*args)
        if folders:
            parent_id = await self._ensure_folders(caller, parent_id, folders)
        upload_id = str(uuid.uuid4())
        blob_id = domain.upload_blob_id(upload_id)
        # The blob is written (and fsynced) while the transaction does its reads and writes; the commit waits for
        # it, so no row ever names a blob that is not durable.
        written = asyncio.ensure_future(self.blobs.put(upload_id, blob_id, content))
        try:
            for attempt in range(3):
                try:
                    upload, node, pruned = await self._commit_inline(
                        caller,
                        parent_id,
                        name,
                        size,
                        digest,
                        content_type,
                        on_conflict,
                        upload_id,
                        link_parent,
                        written,
                        drop,
                    )
                    break
                except AlreadyExists:
                    # FAIL: the answer. RENAME / NEW_VERSION: someone took the name meanwhile; look again.
                    if on_conflict == OnConflict.FAIL or attempt == 2:
                        raise
        except BaseException:
            with contextlib.suppress(BaseException):
                await written  # let the write finish before its file goes (a half-written one is no one's)
            await self.blobs.delete(blob_id)
            raise
        await self._delete_blobs(pruned)
        return upload, node

    async def _clean(self, content: bytes) -> bool:
        """Scanned in memory before anything is written; False: take the resumable path, which records the
        refusal (infected, or over the scanner's limit under the configured policy). Scanner down → Unavailable."""

        async def whole() -> AsyncIterator[bytes]:
            yield content

        try:
            return (await self.scanner.scan(whole(), len(content))).clean
        except ScanLimitExceeded:
            return False

    async def _commit_inline(
        self,
        caller: str,
        parent_id: str,
        name: str,
        size: int,
        digest: str,
        content_type: str,
        on_conflict: OnConflict,
        upload_id: str,
        link_parent: Node | None,
        written: Awaitable[None],
        drop: DropLimits | None = None,
    ) -> tuple[Upload, Node, list[Version]]:
        """One transaction: place the name, charge the quota, add the file (or a version of it) and the COMPLETED
        upload; it commits once `written` (the blob) is done."""
        blob_id = domain.upload_blob_id(upload_id)
        async with self.uow() as uow:
            parent = await self._upload_parent(uow, caller, parent_id, link_parent)
            owner = parent.owner_id
            target: Node | None = None
            if on_conflict != OnConflict.FAIL:  # FAIL: the unique index answers, without a query first
                name, target = await self._upload_name(uow, parent, name, on_conflict)
            await self._take_link_drop(uow, caller, size, link_parent, drop)
            if not await uow.quotas.consume(owner, size, self.limits.default_quota_bytes):
                raise self._quota_error(await uow.quotas.get(owner, self.limits.default_quota_bytes), size)
            now = self.clock.now()
            pruned: list[Version] = []
            if target is not None:
                node, pruned = await self._add_version(uow, target, blob_id, size, digest, content_type, now)
            else:
                node, version = _new_file(owner, parent.id, name, size, digest, content_type, blob_id, now)
                try:
                    await uow.nodes.add_file(node, version)
                except AlreadyExists:
                    raise AlreadyExists(f"an entry named {name!r} already exists in this folder") from None
            upload = Upload(
                id=upload_id,
                owner_id=owner,
                parent_id=node.parent_id or "",
                name=node.name,
                size=size,
                sha256=digest,
                content_type=content_type,
                committed_size=size,
                state=UploadState.COMPLETED,
                created_at=now,
                expires_at=now + self.limits.upload_expiry,
                node_id=node.id,
                on_conflict=on_conflict,
                target_node_id=target.id if target is not None else "",
                creator_id=caller,
            )
            await uow.uploads.add(upload)
            _uploaded(uow, caller, node, size, digest)
            await written
            await uow.commit()
        return upload, node, pruned

    async def _upload_resumably(
        self,
        caller: str,
        parent_id: str,
        name: str,
        content: bytes,
        size: int,
        sha256: str,
        content_type: str,
        relative_path: str,
        on_conflict: OnConflict,
        link_parent: Node | None,
        drop: DropLimits | None = None,
    ) -> tuple[Upload, Node | None]:
        """Create, write, finish: the three-call path in one (content that is refused ends as a FAILED upload)."""
        upload = await self.create_upload(
            caller,
            parent_id,
            name,
            size,
            sha256,
            content_type,
            relative_path=relative_path,
            on_conflict=on_conflict,
            link_parent=link_parent,
            drop=drop,
        )
        if content:
            await self.write_chunk(caller, upload.id, 0, content)
        return await self.finish_upload(caller, upload.id)

    async def _open_upload(self, uow: UnitOfWork, caller: str, upload_id: str) -> Upload:
        upload = await uow.uploads.get(upload_id) if len(upload_id) <= 64 else None
        # Uploads are private to their creator; another caller sees the same NotFound as for a missing id.
        if upload is None or upload.creator != caller:
            raise NotFound(f"upload {upload_id} not found")
        if caller != upload.owner_id and not caller.startswith(LINK_CREATOR):
            # An editor writing into someone's tree: still allowed there? (A revoked share stops the upload.)
            parent = await uow.nodes.get(upload.parent_id)
            path = [n.id for n in reversed(await self._ancestors(uow, parent))] if parent else []
            if not path or not (await self.access.decide(path, upload.owner_id, "write")).allowed:
                raise NotFound(f"upload {upload_id} not found")
        return upload

    async def get_upload(self, caller: str, upload_id: str) -> tuple[Upload, Node | None]:
        async with self.uow(read_only=True) as uow:
            upload = await self._open_upload(uow, caller, upload_id)
            node = await uow.nodes.get(upload.node_id) if upload.node_id else None
        return upload, node

    async def write_chunk(self, caller: str, upload_id: str, offset: int, data: bytes) -> int:
        """Append one chunk at `offset` (must equal the committed size); durable before it returns."""
        writer = self.writer(caller, upload_id)
        async with writer:
            await writer.start(offset)
            await writer.write(data)
            return await writer.flush()

    def writer(self, caller: str, upload_id: str) -> UploadWriter:
        return UploadWriter(self, caller, upload_id)

    async def finish_upload(self, caller: str, upload_id: str) -> tuple[Upload, Node | None]:
        token = secrets.token_hex(16)
        async with self.uow() as uow:
            upload = await self._open_upload(uow, caller, upload_id)
            if upload.finished:
                node = await uow.nodes.get(upload.node_id) if upload.node_id else None
                return upload, node  # finishing twice answers the same
            upload.check_finish()
            now = self.clock.now()
            if not await uow.uploads.acquire(upload_id, token, now + LEASE, now, UploadState.FINISHING):
                if upload.state == UploadState.FINISHING:
                    return upload, None  # someone is finishing it: poll
                raise upload.held(now, LEASE)
            await uow.commit()
        upload = replace(upload, state=UploadState.FINISHING)
        if upload.size <= self.limits.inline_finish_bytes:
            return await self._complete(upload, token, raise_unavailable=True)
        self._spawn(upload, token)
        return upload, None

    def _spawn(self, upload: Upload, token: str) -> None:
        task = asyncio.create_task(self._complete_logged(upload, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _complete_logged(self, upload: Upload, token: str) -> None:
        try:
            await self._complete(upload, token, raise_unavailable=False)
        except Exception:
            log.exception("finishing upload failed", extra={"upload_id": upload.id})

    async def _verify(self, upload: Upload) -> str:
        """One pass over the staged bytes: SHA-256 and the virus scan together. Returns the digest.

        Scanner unreachable → Unavailable (fail closed: never treated as clean). Content beyond the scanner's
        limit follows `scan_oversize`: "refuse" (default) or "allow-unscanned" (logged)."""
        h = hashlib.sha256()
        session = None
        if self.scanner.enabled:
            try:
                session = await self.scanner.open(upload.size)
            except ScanLimitExceeded as exc:
                if self.limits.scan_oversize != "allow-unscanned":
                    raise ScanRefused(
                        f"file of {upload.size} bytes is larger than the virus scanner's limit of {exc.limit_bytes} "
                        "bytes (storage_clamd_stream_max_bytes); it was refused unscanned"
                    ) from None
                log.warning("stored unscanned: over the scanner's limit", extra={"upload_id": upload.id})
        source = self.blobs.read_staging(upload.id, upload.size, self.limits.chunk_bytes)
        if await self._committed_before(upload):
            source = self.blobs.read(upload.blob_id, 0, upload.size, self.limits.chunk_bytes)
        try:
            async for block in source:
                h.update(block)
                if session is not None:
                    await session.feed(block)
            digest = h.hexdigest()
            if upload.sha256 and digest != upload.sha256:
                raise ScanRefused(f"content SHA-256 is {digest}, not the declared {upload.sha256}; upload it again")
            if session is not None:
                verdict = await session.finish()
                if not verdict.clean:
                    await self.events.record(
                        "storage.infected",
                        actor=upload.creator,
                        subject=upload.owner_id,
                        details={
                            "upload_id": upload.id,
                            "name": upload.name,
                            "signature": verdict.signature or "unknown",
                            "size": str(upload.size),
                        },
                    )
                    raise ScanRefused(f"virus found: {verdict.signature}; the content was destroyed")
        except ScanLimitExceeded as exc:
            raise ScanRefused(f"the virus scanner could not scan all of this file ({exc.message}); refused") from None
        finally:
            if session is not None:
                await session.close()
        return digest

    async def _committed_before(self, upload: Upload) -> bool:
        """A previous finish renamed staging into the blob, then crashed before its database commit."""
        try:
            return await self.blobs.verify(upload.blob_id) == upload.size
        except DomainError:
            return False

    async def _complete(self, upload: Upload, token: str, *, raise_unavailable: bool) -> tuple[Upload, Node | None]:
        try:
            digest = await self._verify(upload)
        except ScanRefused as refused:
            await self._fail(upload, str(refused))
            return replace(upload, state=UploadState.FAILED, failure=str(refused)), None
        except Unavailable as exc:
            async with self.uow() as uow:  # back to OPEN: finishing can be retried once the scanner is back
                await uow.uploads.set_state(upload.id, UploadState.OPEN, failure=exc.message)
                await uow.uploads.release(upload.id, token)
                await uow.commit()
            if raise_unavailable:
                raise
            return replace(upload, state=UploadState.OPEN, failure=exc.message), None
        # Derived from the upload: a finish retried after a crash between rename and commit finds the same blob.
        blob_id = upload.blob_id
        await self.blobs.commit_staging(upload.id, blob_id, upload.size)
        now = self.clock.now()
        pruned: list[Version] = []
        try:
            async with self.uow() as uow:
                parent = await uow.nodes.get(upload.parent_id)
                if parent is None:
                    raise ScanRefused("the target folder was deleted while uploading")
                target = await uow.nodes.get(upload.target_node_id) if upload.target_node_id else None
                if target is not None:
                    node, pruned = await self._add_version(
                        uow, target, blob_id, upload.size, digest, upload.content_type, now
                    )
                else:
                    try:
                        name = await self._place(uow, parent, upload.name, upload.on_conflict)
                    except AlreadyExists:
                        clash = await uow.nodes.child_named(parent.id, domain.name_key(upload.name))
                        if upload.on_conflict != OnConflict.NEW_VERSION or clash is None or clash.kind != Kind.FILE:
                            raise ScanRefused(
                                f"an entry named {upload.name!r} appeared in the folder meanwhile"
                            ) from None
                        node, pruned = await self._add_version(
                            uow, clash, blob_id, upload.size, digest, upload.content_type, now
                        )
                    else:
                        node, version = _new_file(
                            upload.owner_id, parent.id, name, upload.size, digest, upload.content_type, blob_id, now
                        )
                        await uow.nodes.add(node)
                        await uow.versions.add(version)
                await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=upload.size)
                await uow.uploads.set_state(upload.id, UploadState.COMPLETED, node_id=node.id)
                await uow.uploads.release(upload.id, token)
                _uploaded(uow, upload.creator, node, upload.size, digest)
                await uow.commit()
        except ScanRefused as refused:
            await self.blobs.delete(blob_id)
            await self._fail(upload, str(refused), staged=False)
            return replace(upload, state=UploadState.FAILED, failure=str(refused)), None
        except Exception:
            await self.blobs.delete(blob_id)
            raise
        await self._delete_blobs(pruned)
        return replace(upload, state=UploadState.COMPLETED, node_id=node.id), node

    async def _fail(self, upload: Upload, why: str, *, staged: bool = True) -> None:
        """Refuse the content: bytes destroyed, reservation released, the reason kept for the client."""
        if staged:
            await self.blobs.delete_staging(upload.id)
        async with self.uow() as uow:
            await uow.uploads.set_state(upload.id, UploadState.FAILED, failure=why)
            await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=0)
            await uow.commit()
        log.warning("upload refused", extra={"upload_id": upload.id, "reason": why})

    async def abort_upload(self, caller: str, upload_id: str) -> None:
        async with self.uow() as uow:
            upload = await self._open_upload(uow, caller, upload_id)
            if upload.state == UploadState.COMPLETED:
                raise FailedPrecondition("upload is already finished; delete the file instead")
            if upload.state == UploadState.FINISHING:
                raise FailedPrecondition("upload is being finished; wait for it, then delete the file if needed")
            await uow.uploads.delete(upload_id)
            if upload.state == UploadState.OPEN:
                await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=0)
            await uow.commit()
        await self.blobs.delete_staging(upload_id)

    # -- housekeeping -------------------------------------------------------------------------------------------

    async def housekeeping(self) -> dict[str, int]:
        """Expire stale uploads (releasing their quota), resume stalled finishes, purge old trash."""
        done = {"expired_uploads": 0, "resumed_finishes": 0, "purged_trash": 0}
        now = self.clock.now()
        # Finished uploads (every small file sent in one call leaves one) go in bulk; open ones one by one, each with
        # its reservation and staging bytes.
        async with self.uow() as uow:
            done["expired_uploads"] += await uow.uploads.delete_finished(now)
            await uow.commit()
        async with self.uow(read_only=True) as uow:
            expired = await uow.uploads.expired(now, 100)
        for upload in expired:
            async with self.uow() as uow:
                await uow.uploads.delete(upload.id)
                if upload.state == UploadState.OPEN:
                    await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=0)
                await uow.commit()
            with contextlib.suppress(Exception):
                await self.blobs.delete_staging(upload.id)
            done["expired_uploads"] += 1
        async with self.uow(read_only=True) as uow:
            stalled = await uow.uploads.stalled_finishing(now, 20)
        for upload in stalled:
            token = secrets.token_hex(16)
            async with self.uow() as uow:
                if not await uow.uploads.acquire(upload.id, token, now + LEASE, now, UploadState.FINISHING):
                    continue
                await uow.commit()
            self._spawn(upload, token)
            done["resumed_finishes"] += 1
        async with self.uow(read_only=True) as uow:
            old = await uow.nodes.trash_roots_older_than(now - self.limits.trash_retention, 100)
        for root in old:
            async with self.uow() as uow:
                await self._purge(uow, root, "", reason="trash retention")
            done["purged_trash"] += 1
        return done

    async def run_housekeeping(self, every: float) -> None:
        while True:
            try:
                done = await self.housekeeping()
                if any(done.values()):
                    log.info("housekeeping", extra=done)
            except Exception:
                log.exception("housekeeping failed")
            await asyncio.sleep(every)

    # -- downloads ----------------------------------------------------------------------------------------------

    async def open_download(
        self, caller: str, file_id: str, offset: int, length: int, version_id: str = ""
    ) -> tuple[Node, Version | None, int, int]:
        """Check access and the range; returns the node, the version, and the (offset, length) to stream."""
        async with self.uow(read_only=True) as uow:
            node = await self._resolve(uow, caller, file_id, "download")
            if node.kind != Kind.FILE:
                raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
            version = await uow.versions.get(version_id or node.version_id)
        if version is None or version.node_id != node.id:
            raise NotFound(f"version {version_id} not found")
        if offset < 0 or offset > version.size:
            raise InvalidArgument("offset", f"must be between 0 and the file size {version.size}")
        if length < 0:
            raise InvalidArgument("length", "must not be negative")
        length = version.size - offset if length == 0 else min(length, version.size - offset)
        await self.events.record(
            "storage.download",
            actor=caller,
            subject=node.owner_id,
            details={
                "node_id": node.id,
                "name": node.name,
                "version": str(version.number),
                "offset": str(offset),
                "length": str(length),
            },
        )
        return node, version, offset, length

    async def create_download_url(self, caller: str, file_id: str, version_id: str) -> tuple[str, datetime]:
        """A URL-safe token naming one file version for the caller, valid for at most 60 s. Access is checked now;
        redeeming it re-checks that the file still exists (a revoked share is honoured within that minute)."""
        async with self.uow(read_only=True) as uow:
            node = await self._resolve(uow, caller, file_id, "download")
            if node.kind != Kind.FILE:
                raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
            version = await uow.versions.get(version_id or node.version_id)
        if version is None or version.node_id != node.id:
            raise NotFound(f"version {version_id} not found")
        expires = self.clock.now() + self.limits.download_url_lifetime
        token = self.urls.sign({"f": node.id, "v": version.id, "u": caller, "e": int(expires.timestamp())})
        return token, expires

    async def open_download_url(self, token: str) -> tuple[Node, Version, int]:
        claims = self.urls.verify(token)
        # Unknown, forged and expired URLs all answer the same NotFound.
        if claims is None or int(claims.get("e", 0)) < int(self.clock.now().timestamp()):
            raise NotFound("this download link is invalid or has expired; ask for a new one")
        async with self.uow(read_only=True) as uow:
            node = await uow.nodes.get(str(claims["f"]))
            version = await uow.versions.get(str(claims["v"]))
        if node is None or version is None or version.node_id != node.id:
            raise NotFound("this download link is invalid or has expired; ask for a new one")
        await self.events.record(
            "storage.download",
            actor=str(claims["u"]),
            subject=node.owner_id,
            details={"node_id": node.id, "name": node.name, "version": str(version.number), "via": "url"},
        )
        return node, version, version.size

    def read(
        self, version: Version, offset: int, length: int, frame: Callable[[int], bytes] | None = None
    ) -> AsyncIterator[bytes]:
        """A version's bytes in chunks of `chunk_bytes`; `frame` as BlobStore.read (ready-made messages)."""
        return self.blobs.read(version.blob_id, offset, length, self.limits.chunk_bytes, frame)

    # -- public links (anonymous visitors; share_svc vouches for the link on every call) ---------------------------

    async def _link_node(
        self, uow: UnitOfWork, token: str, session: str, node_id: str, action: str
    ) -> tuple[Node, LinkScope, list[Node]]:
        """The node (empty id: the link's root) if the link allows `action` on it, with the breadcrumbs from the
        link's root down. Anything outside the root answers like a missing node."""
        if not node_id:
            node_id = (await self.access.link(token, session, [], "", action)).root_node_id
        node = await uow.nodes.get(node_id) if len(node_id) <= 64 else None
        if node is None:
            await self.access.link(token, session, [], "", action)  # a dead link is a 404 like any other
            raise NotFound(f"node {node_id} not found")
        chain = await self._ancestors(uow, node)
        path = [n.id for n in reversed(chain)]
        scope = await self.access.link(token, session, path, node.owner_id, action)
        if scope.root_node_id not in path or node.owner_id != scope.owner_id:
            raise NotFound(f"node {node_id} not found")
        if not scope.allowed:
            raise PermissionDenied(f"this link does not allow {_DOING[action]}")
        ids = [n.id for n in chain]
        return node, scope, chain[ids.index(scope.root_node_id) :]

    async def link_children(
        self, token: str, session: str, folder_id: str, page_size: int, page_token: str
    ) -> tuple[ChildPage | Node, str, list[Node]]:
        """A page of the link's folder in the listing read model's form (as list_children), or the one file a file
        link lists; the next page's token; breadcrumbs from the link's root."""
        limit = _page_size(page_size, self.limits)
        after = Cursor.decode(page_token) if page_token else None
        async with self.uow(read_only=True) as uow:
            folder, _, chain = await self._link_node(uow, token, session, folder_id, "list")
            if folder.kind == Kind.FILE:
                if len(chain) == 1:
                    return folder, "", chain  # a link to one file lists that file
                raise FailedPrecondition(f"{folder_id} is a file, not a folder")
            page = await uow.listings.children(folder.id, OrderBy.NAME, False, after, limit)
        return page, _next_token(page, OrderBy.NAME), chain

    async def open_link_download(self, token: str, session: str, file_id: str) -> tuple[Node, Version, int]:
        """Checks the link (and counts the download in share_svc, atomically against its limit)."""
        async with self.uow(read_only=True) as uow:
            node, scope, _ = await self._link_node(uow, token, session, file_id, "download")
            if node.kind != Kind.FILE:
                raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
            version = await uow.versions.get(node.version_id)
        if version is None:
            raise NotFound(f"node {file_id} not found")
        await self.events.record(
            "link.downloaded",
            actor=LINK_CREATOR + scope.link_id,
            subject=node.owner_id,
            details={"link_id": scope.link_id, "node_id": node.id, "name": node.name, "size": str(version.size)},
        )
        return node, version, version.size

    async def link_uploader(self, token: str, session: str) -> tuple[str, Node]:
        """For a file-drop link: the creator id its uploads carry, and the folder they go into."""
        creator, folder, _ = await self.link_drop(token, session)
        return creator, folder

    async def link_drop(self, token: str, session: str) -> tuple[str, Node, DropLimits]:
        """link_uploader plus the limits of this link's drops: the deployment's, lowered by the link's own."""
        async with self.uow(read_only=True) as uow:
            folder, scope, _ = await self._link_node(uow, token, session, "", "upload")
        if folder.kind != Kind.FOLDER:
            raise FailedPrecondition("file drops need a folder link")
        files, size = self.limits.link_drop_max_files, self.limits.link_drop_max_bytes
        limits = DropLimits(
            min(files, scope.max_upload_files) if scope.max_upload_files > 0 else files,
            min(size, scope.max_upload_bytes) if scope.max_upload_bytes > 0 else size,
            own_files=0 < scope.max_upload_files < files,
            own_bytes=0 < scope.max_upload_bytes < size,
        )
        return LINK_CREATOR + scope.link_id, folder, limits


T = TypeVar("T")


def _target(name: str, relative_path: str, link_parent: Node | None) -> tuple[str, list[str]]:
    """An upload's validated file name and the folders to create first (a folder upload's relative path)."""
    if relative_path and link_parent is not None:
        raise InvalidArgument("relative_path", "file drops take a name, not a path")
    if relative_path:
        parts = domain.split_relative_path(relative_path)
        return parts[-1], parts[:-1]
    return domain.validate_name(name), []


def _uploaded(uow: UnitOfWork, actor: str, node: Node, size: int, digest: str) -> None:
    uow.events.record(
        "storage.upload",
        actor=actor,
        subject=node.owner_id,
        details={"node_id": node.id, "name": node.name, "size": str(size), "sha256": digest},
    )


def _new_file(
    owner_id: str, parent_id: str, name: str, size: int, digest: str, content_type: str, blob_id: str, now: datetime
) -> tuple[Node, Version]:
    """A new file node and its first version."""
    node = Node(
        id=str(uuid.uuid4()),
        owner_id=owner_id,
        parent_id=parent_id,
        name=name,
        kind=Kind.FILE,
        size=size,
        created_at=now,
        modified_at=now,
        content_type=content_type,
        sha256=digest,
        blob_id=blob_id,
    )
    version = Version(str(uuid.uuid4()), node.id, owner_id, 1, blob_id, size, digest, content_type, now)
    node.version_id = version.id
    return node, version


async def _sha256(data: bytes) -> str:
    """Small content on the loop (a thread hop costs more than hashing 64 KiB), larger in a thread."""
    if len(data) <= 64 * 1024:
        return hashlib.sha256(data).hexdigest()
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())


def _next_token(page: ChildPage, order: OrderBy) -> str:
    """The token of the page after a read-model listing page ("" when it was the last)."""
    last = page.last
    if not page.more or last is None:
        return ""
    return Cursor(domain.kind_rank(last.kind), domain.sort_key(last, order), last.id).encode()


def _page(rows: list[T], limit: int, cursor: Callable[[T], Cursor]) -> tuple[list[T], str]:
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, cursor(rows[-1]).encode() if more else ""


class UploadWriter:
    """One writer's hold on an upload: a lease in the database, so two writers (even on two replicas) never
    interleave; bytes are acknowledged only once fsynced and recorded as committed.

    Pipelined: one blob-store write (encrypt + write, in a thread) and one flush (fsync + record) may be in flight
    while the caller receives the next message. Each starts only after the one before it finished, so the bytes
    stay in order and what a flush records is what was written before it started."""

    def __init__(self, storage: Storage, caller: str, upload_id: str) -> None:
        self.s = storage
        self.caller = caller
        self.upload_id = upload_id
        self.token = secrets.token_hex(16)
        self.upload: Upload | None = None
        self.lease_until = self.s.clock.now()
        self.offset = 0  # next byte to write
        self.committed = 0  # durable and recorded
        self._held = bytearray()  # small messages gathered into one blob-store write (ends at self.offset)
        self._writing: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[int] | None = None
        self._flushing_to = 0  # the offset the flush in flight makes durable
        self._acked = 0

    async def __aenter__(self) -> UploadWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Work in flight finishes before the hold goes: the next writer must find the files as this one left them.
        with contextlib.suppress(Exception):
            await self._settle_write()
        with contextlib.suppress(Exception):
            await self.settle()
        if self.upload is not None:
            async with self.s.uow() as uow:
                await uow.uploads.release(self.upload_id, self.token)
                await uow.commit()

    async def start(self, offset: int) -> int:
        async with self.s.uow() as uow:
            upload = await self.s._open_upload(uow, self.caller, self.upload_id)
            upload.check_resume(offset)
            now = self.s.clock.now()
            if not await uow.uploads.acquire(self.upload_id, self.token, now + LEASE, now, UploadState.OPEN):
                raise upload.held(now, LEASE)
            await uow.commit()
        self.upload = upload
        self.offset = self.committed = self._flushing_to = self._acked = offset
        self.lease_until = self.s.clock.now() + LEASE
        return offset

    async def write(self, data: bytes, offset: int | None = None) -> None:
        assert self.upload is not None
        if offset is not None and offset != self.offset:
            raise domain.offset_mismatch(offset, self.offset)
        self.upload.check_chunk(self.offset, len(data), self.s.limits.max_chunk_bytes)
        if self._flushing is not None and self._flushing.done():
            await self.settle()  # its failure (a lost hold, an I/O error) stops the writer here
        if self.s.clock.now() > self.lease_until - LEASE / 4:
            await self.flush(renew=True)  # renews the lease (or finds it lost) before touching the bytes
        if not self._held and len(data) >= WRITE_UNIT:
            await self._issue(self.offset, data)
        else:
            # REST bodies arrive as whatever pieces Envoy read (often 64 KiB): one write per piece would cost a
            # thread hop each. Nothing held is acknowledged before a flush writes it.
            self._held += data
            if len(self._held) >= WRITE_UNIT:
                await self._write_held(self.offset + len(data))
        self.offset += len(data)

    async def _issue(self, offset: int, data: bytes | bytearray) -> None:
        await self._settle_write()
        self._writing = asyncio.ensure_future(self.s.blobs.write_staging(self.upload_id, offset, data))

    async def _settle_write(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def settle(self) -> None:
        """Wait for the flush in flight (raising its failure)."""
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await flushing

    async def _write_held(self, end: int) -> None:
        held, self._held = self._held, bytearray()
        if held:
            await self._issue(end - len(held), held)

    @property
    def unflushed(self) -> int:
        """Bytes received that no flush (finished or in flight) covers yet."""
        return self.offset - max(self.committed, self._flushing_to)

    async def _record(self, offset: int) -> int:
        await self.s.blobs.sync_staging(self.upload_id)
        async with self.s.uow() as uow:
            now = self.s.clock.now()
            expires = now + self.s.limits.upload_expiry  # the expiry counts from the last activity
            if not await uow.uploads.advance(self.upload_id, self.token, offset, now + LEASE, expires):
                raise Aborted(
                    "this writer lost its hold on the upload (idle too long); resume it", retry_after_seconds=0
                )
            await uow.commit()
        self.lease_until = self.s.clock.now() + LEASE
        self.committed = offset
        return offset

    async def flush_soon(self) -> None:
        """Start making what was received durable, without waiting for the disk: the caller goes on receiving.
        One flush at a time: this waits for the one before (and raises its failure)."""
        await self.settle()
        if self.offset == self.committed:
            return
        self._flushing = asyncio.ensure_future(self._record(await self._all_written()))

    @property
    def flushing(self) -> asyncio.Task[int] | None:
        """The flush in flight, if one is."""
        return self._flushing

    def acknowledge(self) -> int | None:
        """The committed size, once, each time a flush in the background has moved it."""
        if self.committed > self._acked:
            self._acked = self.committed
            return self.committed
        return None

    async def flush(self, *, renew: bool = False) -> int:
        """Make written bytes durable and record them (renewing the lease); returns the committed size."""
        await self.settle()
        if self.offset == self.committed and not renew:
            return self.committed
        self._acked = await self._record(await self._all_written())
        return self.committed

    async def _all_written(self) -> int:
        """Everything received handed to the blob store and written; the offset a flush now covers."""
        await self._write_held(self.offset)
        await self._settle_write()
        self._flushing_to = self.offset
        return self.offset
