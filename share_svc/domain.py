"""Shares and the rule of what each role allows. No gRPC, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    DOWNLOADER = "downloader"
    EDITOR = "editor"


class Action(StrEnum):
    LIST = "list"
    DOWNLOAD = "download"
    WRITE = "write"


ALLOWS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.LIST}),
    Role.DOWNLOADER: frozenset({Action.LIST, Action.DOWNLOAD}),
    Role.EDITOR: frozenset({Action.LIST, Action.DOWNLOAD, Action.WRITE}),
}


@dataclass(frozen=True)
class Share:
    id: str
    node_id: str
    owner_id: str
    grantee_id: str
    role: Role
    created_at: datetime


def permits(shares: list[Share], action: Action) -> bool:
    """A grant on any node of the path (the node or an ancestor) covers the whole subtree below it."""
    return any(action in ALLOWS[s.role] for s in shares)
