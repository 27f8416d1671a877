"""The tree of folders and files: listing, renames and moves, copies, the trash, versions, quota, search.

Every public method takes the verified caller's id; access goes through `Access` (a node the caller may not see
answers like a missing one).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from storage_svc import domain
from storage_svc.domain import Cursor, Kind, Node, OnConflict, OrderBy, TrashEntry, UploadState, Usage, Version
from storage_svc.ports import BlobStore, ChildPage, UnitOfWork, UnitOfWorkFactory
from storage_svc.usecases.access import ROOT, Access
from storage_svc.usecases.common import Limits, delete_blobs, next_token, paged, quota_exceeded


@dataclass(kw_only=True)
class Tree:
    """Folders and files of one owner's tree as the owner or a grantee sees them (through `access`)."""

    uow: UnitOfWorkFactory
    blobs: BlobStore
    access: Access
    limits: Limits
    clock: Clock

    async def create_folder(self, caller: str, parent_id: str, name: str) -> Node:
        name = domain.validate_name(name)
        async with self.uow() as uow:
            parent = await self.access.folder(uow, caller, parent_id, "write")
            name = await place(uow, parent, name, OnConflict.FAIL)
            now = self.clock.now()
            node = Node(str(uuid.uuid4()), parent.owner_id, parent.id, name, Kind.FOLDER, 0, now, now)
            await uow.nodes.add(node)
            try:
                await uow.commit()
            except AlreadyExists:
                raise AlreadyExists(f"an entry named {name!r} already exists in this folder") from None
        return node

    async def ensure_folders(self, caller: str, parent_id: str, parts: list[str]) -> str:
        """Create missing folders along `parts` below `parent_id` (concurrent creators are fine)."""
        current = parent_id or ROOT
        for part in parts:
            async with self.uow(read_only=True) as uow:
                parent = await self.access.folder(uow, caller, current, "write")
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
        *,
        compact: bool = False,
    ) -> tuple[ChildPage, str, Node]:
        """A page of the folder's children in the listing read model's form, the next page's token and the folder
        (`compact`: entries leave out its id and owner, which the response states once)."""
        limit = self.limits.page_size(page_size)
        after = Cursor.decode(page_token, domain.CURSOR_KEYS[order]) if page_token else None
        async with self.uow(read_only=True) as uow:
            folder = await self.access.folder(uow, caller, folder_id, "list")
            shared_owner = folder.owner_id if compact else None
            page = await uow.listings.children(folder.id, order, descending, after, limit, shared_owner=shared_owner)
        return page, next_token(page, order), folder

    async def get_node(self, caller: str, node_id: str) -> Node:
        async with self.uow(read_only=True) as uow:
            return await self.access.resolve(uow, caller, node_id, "list")

    async def node_path(self, caller: str, node_id: str) -> list[Node]:
        async with self.uow(read_only=True) as uow:
            node, decision = await self.access.node(uow, caller, node_id, "list")
            chain = await self.access.ancestors(uow, node)
        if node.owner_id != caller:
            # A grantee sees breadcrumbs only from the top of their share down.
            ids = [n.id for n in chain]
            chain = chain[ids.index(decision.grant_node_id) :] if decision.grant_node_id in ids else chain[-1:]
        return chain

    async def update_node(self, caller: str, node_id: str, name: str, parent_id: str, policy: OnConflict) -> Node:
        async with self.uow() as uow:
            node = await self.access.writable(uow, caller, node_id)
            if node.parent_id is None:
                raise FailedPrecondition("the root folder cannot be renamed or moved")
            new_name = domain.validate_name(name) if name else node.name
            parent = await self.access.folder(uow, caller, parent_id, "write") if parent_id else None
            if parent is None:
                parent = await uow.nodes.get(node.parent_id)
                if parent is None:
                    raise NotFound(f"node {node_id} not found")
            if parent.owner_id != node.owner_id:
                raise FailedPrecondition("moving between different owners' trees is not supported; copy instead")
            if node.kind == Kind.FOLDER:
                for ancestor in await self.access.ancestors(uow, parent):
                    if ancestor.id == node.id:
                        raise FailedPrecondition("a folder cannot be moved into itself or one of its subfolders")
            if policy == OnConflict.NEW_VERSION:
                raise InvalidArgument("on_conflict", "NEW_VERSION applies to uploads only")
            new_name = await place(uow, parent, new_name, policy, own_id=node.id)
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
            source = await self.access.resolve(uow, caller, node_id, "download")
            if source.parent_id is None:
                raise FailedPrecondition("the root folder cannot be copied; copy its entries")
            parent = await self.access.folder(uow, caller, parent_id or source.parent_id, "write")
            if parent.owner_id != caller:
                raise PermissionDenied("copies go into your own folders")
            if source.kind == Kind.FOLDER:
                for ancestor in await self.access.ancestors(uow, parent):
                    if ancestor.id == source.id:
                        raise FailedPrecondition("a folder cannot be copied into itself or one of its subfolders")
            new_name = domain.validate_name(name) if name else source.name
            if policy == OnConflict.NEW_VERSION:
                raise InvalidArgument("on_conflict", "NEW_VERSION applies to uploads only")
            if not name and not parent_id:
                policy = OnConflict.RENAME  # a copy beside the original gets "name (1)"
            new_name = await place(uow, parent, new_name, policy)
            tree = await uow.nodes.subtree(source.id, live=True)
            currents = {v.id: v for v in await uow.versions.of_nodes([n.id for n in tree if n.kind == Kind.FILE])}
            total = sum(currents[n.version_id].size for n in tree if n.kind == Kind.FILE and n.version_id in currents)
            if not await uow.quotas.consume(caller, total, self.limits.default_quota_bytes):
                raise quota_exceeded(await uow.quotas.get(caller, self.limits.default_quota_bytes), total)
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

    async def delete_node(self, caller: str, node_id: str) -> Node:
        async with self.uow(read_only=True) as uow:
            node = await self.access.writable(uow, caller, node_id)
            if node.parent_id is None:
                raise FailedPrecondition("the root folder cannot be deleted")
            path = [n.id for n in reversed(await self.access.ancestors(uow, node))]
            tree = [n.id for n in await uow.nodes.subtree(node.id, live=True)]
        # Shares and links of the tree go first (fail closed: if share_svc cannot, nothing is deleted), so a
        # restore from the trash never brings old grants back.
        await self.access.drop_shares(node.owner_id, path, tree)
        async with self.uow() as uow:
            node = await self.access.writable(uow, caller, node_id)
            now = self.clock.now()
            await uow.nodes.trash_tree(node.id, now)
            uow.events.record(
                "storage.delete", actor=caller, subject=node.owner_id, details={"node_id": node.id, "name": node.name}
            )
            await uow.commit()
        return replace(node, trashed_at=now, trash_root_id=node.id)

    async def list_trash(self, caller: str, page_size: int, page_token: str) -> tuple[list[TrashEntry], str]:
        limit = self.limits.page_size(page_size)
        after = Cursor.decode(page_token, "micros") if page_token else None
        async with self.uow(read_only=True) as uow:
            rows = await uow.nodes.trash_roots(caller, after, limit + 1)
        now = self.clock.now()
        return paged(rows, limit, lambda e: Cursor(0, domain.micros(e.node.trashed_at or now), e.node.id))

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
                parent = await self.access.root(uow, caller)  # the original folder is gone or trashed itself
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

    async def purge(self, uow: UnitOfWork, root: Node, actor: str, **details: str) -> int:
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
            return await self.purge(uow, await self._trash_root(uow, caller, node_id), caller)

    async def empty_trash(self, caller: str) -> int:
        freed = 0
        while True:
            async with self.uow(read_only=True) as uow:
                roots = await uow.nodes.trash_roots(caller, None, 100)
            if not roots:
                return freed
            for entry in roots:
                async with self.uow() as uow:
                    freed += await self.purge(uow, entry.node, caller)

    async def _file(self, uow: UnitOfWork, caller: str, file_id: str, action: str) -> Node:
        node = await self.access.resolve(uow, caller, file_id, action)
        if node.kind != Kind.FILE:
            raise FailedPrecondition(f"{file_id} is a folder; versions belong to files")
        return node

    async def list_versions(self, caller: str, file_id: str) -> tuple[Node, list[Version]]:
        async with self.uow(read_only=True) as uow:
            node = await self._file(uow, caller, file_id, "list")
            return node, await uow.versions.of_node(node.id)

    async def restore_version(self, caller: str, file_id: str, version_id: str) -> Node:
        async with self.uow() as uow:
            node = await self.access.writable(uow, caller, file_id)
            old = await uow.versions.get(version_id)
            if old is None or old.node_id != node.id:
                raise NotFound(f"version {version_id} not found")
            if old.id == node.version_id:
                return node
            if not await uow.quotas.consume(node.owner_id, old.size, self.limits.default_quota_bytes):
                raise quota_exceeded(await uow.quotas.get(node.owner_id, self.limits.default_quota_bytes), old.size)
            blob_id = uuid.uuid4().hex
            await self.blobs.link(old.blob_id, blob_id)
            updated, pruned = await self.add_version(
                uow, node, blob_id, old.size, old.sha256, old.content_type, self.clock.now()
            )
            uow.events.record(
                "storage.version_restore",
                actor=caller,
                subject=node.owner_id,
                details={"node_id": node.id, "version": str(old.number)},
            )
            await uow.commit()
        await delete_blobs(self.blobs, pruned)
        return updated

    async def add_version(
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
        await delete_blobs(self.blobs, versions)
        for upload_id in staged:
            await self.blobs.delete_staging(upload_id)
        return freed

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
        limit = self.limits.page_size(page_size)
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
        return paged(rows, limit, lambda n: Cursor(0, domain.name_key(n.name), n.id))


async def place(uow: UnitOfWork, parent: Node, name: str, policy: OnConflict, *, own_id: str = "") -> str:
    """The name to use in `parent` under the conflict policy (FAIL → AlreadyExists)."""
    clash = await uow.nodes.child_named(parent.id, domain.name_key(name))
    if clash is None or clash.id == own_id:
        return name
    if policy == OnConflict.RENAME:
        stem = name.rpartition(".")[0] or name
        return domain.free_name(name, await uow.nodes.taken_names(parent.id, domain.name_key(stem)))
    raise AlreadyExists(f"an entry named {name!r} already exists in this folder")
