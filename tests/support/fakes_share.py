"""In-memory fakes of share_svc's ports (share_svc/ports.py), for use-case tests that run in milliseconds.

As the SQL adapters: a unit of work is a transaction (writes and its audit events are kept only if committed),
a second share of one node with one grantee is AlreadyExists, a link's download count goes up only under its
limit, password failures are counted per key in a sliding window, and repositories hand out copies (frozen
dataclasses here). One transaction at a time: a commit replaces the whole state with the transaction's copy.

    fakes = ShareFakes()
    alice = fakes.account("alice@example.org")
    folder = fakes.node(owner=alice.id)
    sharing = fakes.sharing()
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from flowdock_kernel.errors import AlreadyExists, NotFound, ResourceExhausted
from share_svc.domain import Link, NodeInfo, Role, Share
from share_svc.ports import Account
from share_svc.usecases import LinkPolicy, Sharing
from tests.support.clock import FakeClock


@dataclass(frozen=True)
class RecordedEvent:
    kind: str
    actor: str
    subject: str
    details: dict[str, str]


@dataclass
class ShareState:
    """What share_svc's database holds."""

    shares: dict[str, Share] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    # id -> (key, at)
    failures: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    next_failure: int = 1
    events: list[RecordedEvent] = field(default_factory=list)


class FakeShares:
    def __init__(self, state: ShareState) -> None:
        self._s = state

    async def for_grantee_on(self, grantee_id: str, owner_id: str, node_ids: list[str]) -> list[Share]:
        return [
            s
            for s in self._s.shares.values()
            if s.grantee_id == grantee_id and s.owner_id == owner_id and s.node_id in node_ids
        ]

    async def outgoing(self, owner_id: str, after: str, limit: int) -> list[Share]:
        found = sorted((s for s in self._s.shares.values() if s.owner_id == owner_id and s.id > after), key=_id)
        return found[:limit]

    async def incoming(self, grantee_id: str, after: str, limit: int) -> list[Share]:
        found = sorted((s for s in self._s.shares.values() if s.grantee_id == grantee_id and s.id > after), key=_id)
        return found[:limit]

    async def get(self, share_id: str) -> Share | None:
        return self._s.shares.get(share_id)

    async def add(self, share: Share) -> None:
        if any(s.node_id == share.node_id and s.grantee_id == share.grantee_id for s in self._s.shares.values()):
            raise AlreadyExists("the node is already shared with this account")
        self._s.shares[share.id] = share

    async def set_role(self, share_id: str, role: Role, at: datetime) -> None:
        if found := self._s.shares.get(share_id):
            self._s.shares[share_id] = replace(found, role=role, updated_at=at)

    async def delete(self, share_id: str) -> None:
        self._s.shares.pop(share_id, None)

    async def delete_on_nodes(self, owner_id: str, node_ids: list[str]) -> int:
        gone = [i for i, s in self._s.shares.items() if s.owner_id == owner_id and s.node_id in node_ids]
        for i in gone:
            del self._s.shares[i]
        return len(gone)

    async def delete_of_user(self, user_id: str) -> int:
        gone = [i for i, s in self._s.shares.items() if user_id in (s.owner_id, s.grantee_id)]
        for i in gone:
            del self._s.shares[i]
        return len(gone)


def _id(row: Share | Link) -> str:
    return row.id


class FakeLinks:
    def __init__(self, state: ShareState) -> None:
        self._s = state

    async def by_token_hash(self, token_hash: str) -> Link | None:
        return next((lk for lk in self._s.links.values() if lk.token_hash == token_hash), None)

    async def get(self, link_id: str) -> Link | None:
        return self._s.links.get(link_id)

    async def add(self, link: Link) -> None:
        self._s.links[link.id] = link

    async def update(self, link: Link) -> None:
        if found := self._s.links.get(link.id):
            self._s.links[link.id] = replace(link, downloads=found.downloads)  # counted atomically elsewhere

    async def delete(self, link_id: str) -> None:
        self._s.links.pop(link_id, None)

    async def of_owner(self, owner_id: str, after: str, limit: int) -> list[Link]:
        found = sorted((lk for lk in self._s.links.values() if lk.owner_id == owner_id and lk.id > after), key=_id)
        return found[:limit]

    async def count_download(self, link_id: str) -> bool:
        found = self._s.links.get(link_id)
        if found is None or (found.max_downloads and found.downloads >= found.max_downloads):
            return False
        self._s.links[link_id] = replace(found, downloads=found.downloads + 1)
        return True

    async def delete_on_nodes(self, owner_id: str, node_ids: list[str]) -> int:
        gone = [i for i, lk in self._s.links.items() if lk.owner_id == owner_id and lk.node_id in node_ids]
        for i in gone:
            del self._s.links[i]
        return len(gone)

    async def delete_of_owner(self, owner_id: str) -> int:
        gone = [i for i, lk in self._s.links.items() if lk.owner_id == owner_id]
        for i in gone:
            del self._s.links[i]
        return len(gone)


class FakeFailures:
    def __init__(self, state: ShareState) -> None:
        self._s = state

    async def reserve(self, key: str, limit: int, since: datetime, at: datetime) -> int | None:
        for i in [i for i, (k, t) in self._s.failures.items() if k == key and t <= since]:
            del self._s.failures[i]
        if sum(1 for k, t in self._s.failures.values() if k == key and t > since) >= limit:
            return None
        attempt = self._s.next_failure
        self._s.next_failure += 1
        self._s.failures[attempt] = (key, at)
        return attempt

    async def release(self, ids: list[int]) -> None:
        for i in ids:
            self._s.failures.pop(i, None)

    async def prune(self, before: datetime) -> None:
        for i in [i for i, (_, t) in self._s.failures.items() if t < before]:
            del self._s.failures[i]


class FakeEventLog:
    """`uow.events`: kept with the transaction's state, so a rollback drops them."""

    def __init__(self, state: ShareState) -> None:
        self._s = state

    def record(self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None) -> str:
        self._s.events.append(RecordedEvent(kind, actor, subject, dict(details or {})))
        return str(len(self._s.events))


class ShareStore:
    def __init__(self) -> None:
        self.state = ShareState()

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def failures_of(self, key: str) -> int:
        return sum(1 for k, _ in self.state.failures.values() if k == key)


class FakeUnitOfWork:
    def __init__(self, store: ShareStore) -> None:
        self._store = store

    async def __aenter__(self) -> Self:
        self._work = copy.deepcopy(self._store.state)
        self.shares = FakeShares(self._work)
        self.links = FakeLinks(self._work)
        self.failures = FakeFailures(self._work)
        self.events = FakeEventLog(self._work)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        del self._work

    async def commit(self) -> None:
        self._store.state = copy.deepcopy(self._work)


# -- other services and helpers ------------------------------------------------------------------------------


class FakeAccounts:
    """auth_svc's lookup and notification API."""

    def __init__(self) -> None:
        self.by_email: dict[str, Account] = {}
        self.notified: list[tuple[str, str, str]] = []
        self.notify_fails = False

    async def lookup(self, email: str) -> Account | None:
        return self.by_email.get(email.strip().lower())

    async def by_id(self, user_id: str) -> Account | None:
        return next((a for a in self.by_email.values() if a.id == user_id), None)

    async def notify(self, user_id: str, subject: str, body: str) -> None:
        if self.notify_fails:
            raise ConnectionError("auth_svc is not reachable")
        self.notified.append((user_id, subject, body))


class FakeNodes:
    """storage_svc's GetNode (NotFound for an unknown node; which nodes a caller may see is storage_svc's
    business, tested there)."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}

    async def get(self, node_id: str) -> NodeInfo:
        node = self.nodes.get(node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        return node

    async def describe(self, node_id: str) -> bytes | None:
        return None

    async def link_root(self, token: str, session: str) -> bytes | None:
        return None


class FakeEvents:
    """The audit trail for what changes nothing (a link opened)."""

    def __init__(self) -> None:
        self.recorded: list[RecordedEvent] = []

    async def record(
        self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None
    ) -> str:
        self.recorded.append(RecordedEvent(kind, actor, subject, dict(details or {})))
        return str(len(self.recorded))


class FastHasher:
    """Link-password hashing without the cost; `full = True` refuses like a busy pool."""

    def __init__(self) -> None:
        self.full = False
        self.verified = 0

    def _check(self) -> None:
        if self.full:
            raise ResourceExhausted("password hashing is busy", limit="share.hashing", retry_after_seconds=1.0)

    async def hash(self, password: str, *, requester: str = "") -> str:
        self._check()
        return "fake$" + hashlib.sha256(password.encode()).hexdigest()

    async def verify(self, password_hash: str, password: str, *, requester: str = "") -> bool:
        self._check()
        self.verified += 1
        return hmac.compare_digest(password_hash, "fake$" + hashlib.sha256(password.encode()).hexdigest())


class FakeSessionSigner:
    """`<link>.<epoch>.<expires>.sig`: unforgeable enough for a test (any other ending is refused)."""

    def sign(self, link_id: str, epoch: int, expires: int) -> str:
        return f"{link_id}.{epoch}.{expires}.sig"

    def verify(self, token: str) -> tuple[str, int, int] | None:
        parts = token.split(".")
        if len(parts) != 4 or parts[3] != "sig" or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        return parts[0], int(parts[1]), int(parts[2])


@dataclass
class ShareFakes:
    """Every port of `Sharing`, faked, on one clock."""

    clock: FakeClock = field(default_factory=FakeClock)
    store: ShareStore = field(default_factory=ShareStore)
    accounts: FakeAccounts = field(default_factory=FakeAccounts)
    nodes: FakeNodes = field(default_factory=FakeNodes)
    events: FakeEvents = field(default_factory=FakeEvents)
    hasher: FastHasher = field(default_factory=FastHasher)
    signer: FakeSessionSigner = field(default_factory=FakeSessionSigner)

    def sharing(self, **options: Any) -> Sharing:
        options.setdefault("policy", LinkPolicy())
        options.setdefault("page_size", 50)
        return Sharing(
            uow=self.store.uow,
            nodes=self.nodes,
            accounts=self.accounts,
            events=self.events,
            hasher=self.hasher,
            sessions=self.signer,
            clock=self.clock,
            public_url="https://files.example.org",
            **options,
        )

    def account(self, email: str) -> Account:
        account = Account(str(uuid.uuid4()), email, email.split("@")[0])
        self.accounts.by_email[email] = account
        return account

    def node(self, owner: str, *, parent: str = "", folder: bool = True) -> NodeInfo:
        """A node in `owner`'s tree, under `parent` (default: a new root folder of theirs)."""
        if not parent:
            root = NodeInfo(str(uuid.uuid4()), owner, "", True)
            self.nodes.nodes[root.id] = root
            parent = root.id
        node = NodeInfo(str(uuid.uuid4()), owner, parent, folder)
        self.nodes.nodes[node.id] = node
        return node

    def path(self, node_id: str) -> list[str]:
        """The node and its ancestors, nearest first (what storage_svc sends with an access check)."""
        path = []
        while node_id:
            path.append(node_id)
            node_id = self.nodes.nodes[node_id].parent_id
        return path

    def event_kinds(self) -> list[str]:
        return [e.kind for e in self.store.state.events]
