"""What share use cases need from the outside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from share_svc.domain import Link, NodeInfo, Role, Share


class Shares(Protocol):
    async def for_grantee_on(self, grantee_id: str, owner_id: str, node_ids: list[str]) -> list[Share]: ...
    async def outgoing(self, owner_id: str, after: str, limit: int) -> list[Share]: ...
    async def incoming(self, grantee_id: str, after: str, limit: int) -> list[Share]: ...
    async def get(self, share_id: str) -> Share | None: ...
    async def add(self, share: Share) -> None:
        """AlreadyExists if the node is already shared with that grantee."""
        ...

    async def set_role(self, share_id: str, role: Role, at: datetime) -> None: ...
    async def delete(self, share_id: str) -> None: ...
    async def delete_on_nodes(self, owner_id: str, node_ids: list[str]) -> int: ...
    async def delete_of_user(self, user_id: str) -> int:
        """Shares by or to the user."""
        ...


class Links(Protocol):
    async def by_token_hash(self, token_hash: str) -> Link | None: ...
    async def get(self, link_id: str) -> Link | None: ...
    async def add(self, link: Link) -> None: ...
    async def update(self, link: Link) -> None: ...
    async def delete(self, link_id: str) -> None: ...
    async def of_owner(self, owner_id: str, after: str, limit: int) -> list[Link]: ...
    async def count_download(self, link_id: str) -> bool:
        """One more download if the link is under its limit, atomically; False at the limit."""
        ...

    async def delete_on_nodes(self, owner_id: str, node_ids: list[str]) -> int: ...
    async def delete_of_owner(self, owner_id: str) -> int: ...


class Failures(Protocol):
    """Failed link-password attempts (a sliding window per key), counted before they are evaluated."""

    async def reserve(self, key: str, limit: int, since: datetime, at: datetime) -> int | None:
        """Count an attempt under `key` unless `limit` are counted since `since`: its id, or None if refused.
        Attempts on one key are serialised until the transaction ends (count, then write: parallel guesses cannot
        all see a count under the limit). Must be the unit of work's first statement."""
        ...

    async def release(self, ids: list[int]) -> None:
        """Uncount attempts that turned out right (or were never evaluated)."""
        ...

    async def prune(self, before: datetime) -> None: ...


class EventLog(Protocol):
    """The audit events of a unit of work: written by its commit, in the same transaction; dropped with a rollback."""

    def record(self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None) -> str: ...


class UnitOfWork(Protocol):
    @property
    def shares(self) -> Shares: ...
    @property
    def links(self) -> Links: ...
    @property
    def failures(self) -> Failures: ...
    @property
    def events(self) -> EventLog: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    display_name: str


class Accounts(Protocol):
    """auth_svc's internal API, called with the end user's token."""

    async def lookup(self, email: str) -> Account | None: ...
    async def by_id(self, user_id: str) -> Account | None:
        """None when there is no such active account or auth_svc does not answer (a listing goes on without it)."""
        ...

    async def notify(self, user_id: str, subject: str, body: str) -> None: ...


class Nodes(Protocol):
    """storage_svc, called with the end user's token (so it sees what that user may see)."""

    async def get(self, node_id: str) -> NodeInfo: ...
    async def describe(self, node_id: str) -> bytes | None:
        """storage_svc's Node message as the caller sees it, serialised (share_svc hands it on unread); None when
        the caller cannot see it or storage_svc does not answer: a listing shows the share without its node."""
        ...

    async def link_root(self, token: str, session: str) -> bytes | None:
        """storage_svc's Node message of a link's root as a visitor with `session` sees it (PublicLinkService
        GetLinkRoot), serialised; None when storage_svc does not answer (OpenLink answers the id alone)."""
        ...


class Events(Protocol):
    """The audit trail, for what changes nothing here (a link opened): durable when `record` returns, in a
    transaction of its own. Events of a change go on its unit of work (`uow.events`)."""

    async def record(
        self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None
    ) -> str: ...


class PasswordHasher(Protocol):
    """Off the event loop on a bounded pool: raises ResourceExhausted (with a retry delay) when it is full;
    `requester` (the client IP) bounds how much of it one client can hold."""

    async def hash(self, password: str, *, requester: str = "") -> str: ...
    async def verify(self, password_hash: str, password: str, *, requester: str = "") -> bool: ...


class SessionSigner(Protocol):
    """Makes and checks link-session credentials."""

    def sign(self, link_id: str, epoch: int, expires: int) -> str: ...
    def verify(self, token: str) -> tuple[str, int, int] | None:
        """(link id, epoch, expiry) if authentic."""
        ...
