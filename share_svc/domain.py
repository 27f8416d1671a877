"""Shares, public links and the rules of what each role and link permission allows. No gRPC, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from flowdock_kernel.errors import InvalidArgument

MIN_LINK_PASSWORD = 8
MAX_LINK_PASSWORD = 128


class Role(StrEnum):
    VIEWER = "viewer"
    DOWNLOADER = "downloader"
    EDITOR = "editor"


class Action(StrEnum):
    LIST = "list"
    DOWNLOAD = "download"
    WRITE = "write"
    UPLOAD = "upload"


class LinkPermission(StrEnum):
    VIEW = "view"
    DOWNLOAD = "download"
    UPLOAD = "upload"


# Re-sharing: no role allows it. Only a node's owner creates shares and links (see docs/sharing.md).
ALLOWS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.LIST}),
    Role.DOWNLOADER: frozenset({Action.LIST, Action.DOWNLOAD}),
    Role.EDITOR: frozenset({Action.LIST, Action.DOWNLOAD, Action.WRITE}),
}

# A file drop (UPLOAD) lists nothing and downloads nothing.
LINK_ALLOWS: dict[LinkPermission, frozenset[Action]] = {
    LinkPermission.VIEW: frozenset({Action.LIST}),
    LinkPermission.DOWNLOAD: frozenset({Action.LIST, Action.DOWNLOAD}),
    LinkPermission.UPLOAD: frozenset({Action.UPLOAD}),
}


@dataclass(frozen=True)
class Share:
    id: str
    node_id: str
    owner_id: str
    grantee_id: str
    role: Role
    created_at: datetime
    grantee_email: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Link:
    id: str
    token_hash: str
    node_id: str
    owner_id: str
    permission: LinkPermission
    password_hash: str
    expires_at: datetime | None
    max_downloads: int
    downloads: int
    epoch: int
    created_at: datetime
    #: File-drop limits the owner set on this link (0: the deployment's own limits apply).
    max_upload_files: int = 0
    max_upload_bytes: int = 0

    def alive(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class Decision:
    allowed: bool
    visible: bool
    grant_node_id: str = ""


@dataclass(frozen=True)
class NodeInfo:
    """What share_svc needs to know of a node (from storage_svc)."""

    id: str
    owner_id: str
    parent_id: str
    is_folder: bool


def decide(shares: list[Share], node_path: list[str], action: Action) -> Decision:
    """A grant on any node of the path (the node or an ancestor) covers the whole subtree below it. `node_path` is
    nearest first; the grant reported is the one highest up that allows the action."""
    if not shares:
        return Decision(False, False)
    allowing = {s.node_id for s in shares if action in ALLOWS[s.role]}
    for node_id in reversed(node_path):
        if node_id in allowing:
            return Decision(True, True, node_id)
    return Decision(False, True)


def permits(shares: list[Share], action: Action) -> bool:
    return any(action in ALLOWS[s.role] for s in shares)


def link_allows(link: Link, node_path: list[str], owner_id: str, action: Action) -> bool:
    """Only nodes at or below the link's root, in the link owner's tree, for what the permission allows."""
    return owner_id == link.owner_id and link.node_id in node_path and action in LINK_ALLOWS[link.permission]


def validate_link_password(password: str) -> str:
    if len(password) < MIN_LINK_PASSWORD:
        raise InvalidArgument("password", f"must be at least {MIN_LINK_PASSWORD} characters (or empty for none)")
    if len(password) > MAX_LINK_PASSWORD:
        raise InvalidArgument("password", f"must be at most {MAX_LINK_PASSWORD} characters")
    return password


def validate_upload_limits(max_files: int, max_bytes: int, permission: LinkPermission) -> None:
    if max_files < 0:
        raise InvalidArgument("max_upload_files", "must be 0 (the deployment's limit) or more")
    if max_bytes < 0:
        raise InvalidArgument("max_upload_bytes", "must be 0 (the deployment's limit) or more")
    if (max_files or max_bytes) and permission != LinkPermission.UPLOAD:
        raise InvalidArgument("max_upload_files", "upload limits are for file-drop (upload) links")


def validate_max_downloads(value: int) -> int:
    if value < 0:
        raise InvalidArgument("max_downloads", "must be 0 (unlimited) or more")
    return value
