"""Public links: what an anonymous visitor may list, download, or drop files into. share_svc vouches for the link
(and its session) on every call; anything outside the link's root answers like a missing node."""

from __future__ import annotations

from dataclasses import dataclass

from flowdock_kernel.errors import FailedPrecondition, NotFound
from storage_svc.domain import ByteRange, Cursor, Kind, Node, OrderBy, Version, requested_part
from storage_svc.ports import ChildPage, Events, UnitOfWorkFactory
from storage_svc.usecases.access import LINK_CREATOR, Access
from storage_svc.usecases.common import DropLimits, Limits, next_token


@dataclass(kw_only=True)
class PublicLinks:
    """Anonymous visitors of a public link; uploads through a file-drop link then go through `Uploads`."""

    uow: UnitOfWorkFactory
    access: Access
    events: Events
    limits: Limits

    async def link_children(
        self, token: str, session: str, folder_id: str, page_size: int, page_token: str
    ) -> tuple[ChildPage | Node, str, list[Node]]:
        """A page of the link's folder in the listing read model's form (as list_children), or the one file a file
        link lists; the next page's token; breadcrumbs from the link's root."""
        limit = self.limits.page_size(page_size)
        after = Cursor.decode(page_token) if page_token else None
        async with self.uow(read_only=True) as uow:
            folder, _, chain = await self.access.link_node(uow, token, session, folder_id, "list")
            if folder.kind == Kind.FILE:
                if len(chain) == 1:
                    return folder, "", chain  # a link to one file lists that file
                raise FailedPrecondition(f"{folder_id} is a file, not a folder")
            page = await uow.listings.children(folder.id, OrderBy.NAME, False, after, limit)
        return page, next_token(page, OrderBy.NAME), chain

    async def link_root(self, token: str, session: str) -> Node:
        """The node at the link's root, whatever the link's permission (a file-drop page names its folder); what a
        folder holds is never part of it."""
        # An empty path asks share_svc only whether the link lives (and its session is good) and where its root is.
        scope = await self.access.policy.link(token, session, [], "", "list")
        async with self.uow(read_only=True) as uow:
            root = await uow.nodes.get(scope.root_node_id) if len(scope.root_node_id) <= 64 else None
        if root is None or root.owner_id != scope.owner_id:
            raise NotFound("this link does not exist, was revoked or has expired")
        return root

    async def open_link_download(
        self, token: str, session: str, file_id: str, byte_range: ByteRange | None = None
    ) -> tuple[Node, Version, int, int]:
        """Checks the link (and counts the download in share_svc, atomically against its limit); the node, the
        version and the (offset, length) to stream. `byte_range` (a visitor resuming a broken download) is only
        looked at after the link, its password session and its limit passed: a dead link is a 404, never a 416.
        Each request counts as one download, a resumed one too (a range is never free of the limit)."""
        async with self.uow(read_only=True) as uow:
            node, scope, _ = await self.access.link_node(uow, token, session, file_id, "download")
            if node.kind != Kind.FILE:
                raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
            version = await uow.versions.get(node.version_id)
        if version is None:
            raise NotFound(f"node {file_id} not found")
        offset, length = requested_part(byte_range, version) or (0, version.size)
        details = {"link_id": scope.link_id, "node_id": node.id, "name": node.name, "size": str(version.size)}
        if length != version.size:
            details |= {"offset": str(offset), "length": str(length)}
        await self.events.record(
            "link.downloaded", actor=LINK_CREATOR + scope.link_id, subject=node.owner_id, details=details
        )
        return node, version, offset, length

    async def link_uploader(self, token: str, session: str) -> tuple[str, Node]:
        """For a file-drop link: the creator id its uploads carry, and the folder they go into."""
        creator, folder, _ = await self.link_drop(token, session)
        return creator, folder

    async def link_drop(self, token: str, session: str) -> tuple[str, Node, DropLimits]:
        """link_uploader plus the limits of this link's drops: the deployment's, lowered by the link's own."""
        async with self.uow(read_only=True) as uow:
            folder, scope, _ = await self.access.link_node(uow, token, session, "", "upload")
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
