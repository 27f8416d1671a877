"""Who may touch a node: the owner, a grantee whose share allows the action (share_svc decides), or an
anonymous visitor of a public link (share_svc vouches for the link on every call).

A node the caller may not see answers exactly like a missing node (NotFound), so ids cannot be probed; one they see
through a share whose role does not allow the action answers PermissionDenied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from storage_svc.domain import Decision, Kind, LinkScope, Node
from storage_svc.ports import AccessPolicy, UnitOfWork, UnitOfWorkFactory

ROOT = "root"
#: The creator id of what a file-drop link uploads: "link:<link id>".
LINK_CREATOR = "link:"
_DOING = {"list": "seeing this", "download": "downloading", "write": "changing this", "upload": "uploading"}


@dataclass(kw_only=True)
class Access:
    """The access checks every seam shares; owners never ask share_svc."""

    uow: UnitOfWorkFactory
    policy: AccessPolicy
    clock: Clock

    async def node(self, uow: UnitOfWork, caller: str, node_id: str, action: str) -> tuple[Node, Decision]:
        """The live node and share_svc's decision if the caller may act on it. A node the caller cannot see at all
        answers the same NotFound as a missing node; one they see through a share whose role does not allow the
        action answers PermissionDenied."""
        if node_id in (ROOT, ""):
            return await self.root(uow, caller), Decision(True, True)
        node = await uow.nodes.get(node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        if node.owner_id == caller:
            return node, Decision(True, True)
        path = [n.id for n in reversed(await self.ancestors(uow, node))]
        decision = await self.policy.decide(path, node.owner_id, action)
        if not decision.allowed:
            if decision.visible:
                raise PermissionDenied(f"your role on this share does not allow {_DOING[action]}")
            raise NotFound(f"node {node_id} not found")
        return node, decision

    async def resolve(self, uow: UnitOfWork, caller: str, node_id: str, action: str) -> Node:
        return (await self.node(uow, caller, node_id, action))[0]

    async def ancestors(self, uow: UnitOfWork, node: Node) -> list[Node]:
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

    async def root(self, uow: UnitOfWork, caller: str) -> Node:
        root = await uow.nodes.root(caller)
        if root is not None:
            return root
        if uow.read_only:  # a user's first call: their root is made once, in a transaction of its own
            async with self.uow() as writer:
                return await self.root(writer, caller)
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

    async def folder(self, uow: UnitOfWork, caller: str, folder_id: str, action: str) -> Node:
        folder = await self.resolve(uow, caller, folder_id or ROOT, action)
        if folder.kind != Kind.FOLDER:
            raise FailedPrecondition(f"{folder_id} is a file, not a folder")
        return folder

    async def writable(self, uow: UnitOfWork, caller: str, node_id: str) -> Node:
        """The owner, or an editor below the top of their share (the shared item itself stays the owner's)."""
        node, decision = await self.node(uow, caller, node_id, "write")
        if node.owner_id != caller and decision.grant_node_id == node.id:
            raise PermissionDenied("the shared item itself can only be renamed, moved or deleted by its owner")
        return node

    async def link_node(
        self, uow: UnitOfWork, token: str, session: str, node_id: str, action: str
    ) -> tuple[Node, LinkScope, list[Node]]:
        """The node (empty id: the link's root) if the link allows `action` on it, with the breadcrumbs from the
        link's root down. Anything outside the root answers like a missing node."""
        if not node_id:
            node_id = (await self.policy.link(token, session, [], "", action)).root_node_id
        node = await uow.nodes.get(node_id) if len(node_id) <= 64 else None
        if node is None:
            await self.policy.link(token, session, [], "", action)  # a dead link is a 404 like any other
            raise NotFound(f"node {node_id} not found")
        chain = await self.ancestors(uow, node)
        path = [n.id for n in reversed(chain)]
        scope = await self.policy.link(token, session, path, node.owner_id, action)
        if scope.root_node_id not in path or node.owner_id != scope.owner_id:
            raise NotFound(f"node {node_id} not found")
        if not scope.allowed:
            raise PermissionDenied(f"this link does not allow {_DOING[action]}")
        ids = [n.id for n in chain]
        return node, scope, chain[ids.index(scope.root_node_id) :]

    async def still_allowed(self, uow: UnitOfWork, node_id: str, owner_id: str, action: str) -> bool:
        """Whether a non-owner may still `action` on a node of `owner_id`'s tree (a revoked share stops them)."""
        node = await uow.nodes.get(node_id)
        path = [n.id for n in reversed(await self.ancestors(uow, node))] if node else []
        return bool(path) and (await self.policy.decide(path, owner_id, action)).allowed

    async def drop_shares(self, owner_id: str, node_path: list[str], node_ids: list[str]) -> None:
        """A tree is being deleted: share_svc forgets its shares and links (Unavailable if it cannot)."""
        await self.policy.drop_shares(owner_id, node_path, node_ids)
