"""Share use cases: user shares, public links, link sessions and the access decisions storage_svc asks for."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from flowdock_kernel import pagetoken
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from share_svc import domain
from share_svc.domain import Action, Decision, Link, LinkPermission, Role, Share
from share_svc.ports import Account, Accounts, Events, Nodes, PasswordHasher, SessionSigner, UnitOfWork

log = logging.getLogger("flowdock.share")

MAX_PATH = 512
MAX_PAGE = 1000
MAX_DROP = 100_000
LINK_GONE = "this link does not exist, was revoked or has expired"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode(errors="replace")).hexdigest()


@dataclass(frozen=True)
class LinkPolicy:
    session_seconds: int = 3600
    failure_window: timedelta = timedelta(minutes=5)
    failures_per_link: int = 10
    failures_per_ip: int = 20


@dataclass(frozen=True)
class LinkGrant:
    """A CheckLinkAccess answer."""

    link: Link
    allowed: bool


@dataclass(frozen=True)
class LinkChanges:
    password: str | None = None
    expires_at: datetime | None = None
    clear_expiry: bool = False
    max_downloads: int | None = None
    permission: LinkPermission | None = None


def _path(node_path: list[str]) -> list[str]:
    if len(node_path) > MAX_PATH:
        raise InvalidArgument("node_path", f"must have at most {MAX_PATH} entries")
    return node_path


@dataclass
class Sharing:
    uow: Callable[[], UnitOfWork]
    page_size: int
    nodes: Nodes
    accounts: Accounts
    events: Events
    hasher: PasswordHasher
    sessions: SessionSigner
    policy: LinkPolicy = field(default_factory=LinkPolicy)
    public_url: str = ""
    clock: Clock = field(default_factory=SystemClock)

    # -- access decisions -------------------------------------------------------------------------------------

    async def check_access(self, caller: str, node_path: list[str], owner_id: str, action: Action) -> Decision:
        """Answered from the database on every call (no cache): a revoked share stops at the next call."""
        if not node_path:
            raise InvalidArgument("node_path", "must name the node and its ancestors")
        _path(node_path)
        if caller == owner_id:
            return Decision(True, True, node_path[-1])
        async with self.uow() as uow:
            grants = await uow.shares.for_grantee_on(caller, owner_id, node_path)
        return domain.decide(grants, node_path, action)

    async def _live_link(self, uow: UnitOfWork, token: str) -> Link:
        link = await uow.links.by_token_hash(token_hash(token)) if 16 <= len(token) <= 128 else None
        if link is None or not link.alive(self.clock.now()):
            raise NotFound(LINK_GONE)  # unknown, revoked and expired alike
        return link

    def _session_ok(self, link: Link, session: str) -> bool:
        claims = self.sessions.verify(session) if session else None
        if claims is None:
            return False
        link_id, epoch, expires = claims
        return link_id == link.id and epoch == link.epoch and expires > int(self.clock.time())

    async def check_link_access(
        self, token: str, session: str, node_path: list[str], owner_id: str, action: Action
    ) -> LinkGrant:
        _path(node_path)
        async with self.uow() as uow:
            link = await self._live_link(uow, token)
            if link.password_hash and not self._session_ok(link, session):
                raise Unauthenticated("this link needs its password: open it again (POST .../open)")
            if not node_path:
                return LinkGrant(link, False)
            allowed = domain.link_allows(link, node_path, owner_id, action)
            if allowed and action == Action.DOWNLOAD:
                # One conditional UPDATE: two visitors racing for the last download cannot both get it.
                if not await uow.links.count_download(link.id):
                    if await uow.links.get(link.id) is None:
                        raise NotFound(LINK_GONE)
                    raise ResourceExhausted(
                        f"this link has reached its limit of {link.max_downloads} downloads",
                        limit="link_max_downloads",
                    )
                await uow.commit()
        return LinkGrant(link, allowed)

    async def drop_shares(self, caller: str, owner_id: str, node_path: list[str], node_ids: list[str]) -> int:
        """Storage is deleting a tree: its shares and links go (the caller must own or edit it)."""
        if not node_path:
            raise InvalidArgument("node_path", "must name the deleted node and its ancestors")
        if len(node_ids) > MAX_DROP:
            raise InvalidArgument("node_ids", f"must have at most {MAX_DROP} entries")
        decision = await self.check_access(caller, node_path, owner_id, Action.WRITE)
        if not decision.allowed:
            raise PermissionDenied("only the owner or an editor can delete this")
        ids = list(dict.fromkeys([node_path[0], *node_ids]))
        async with self.uow() as uow:
            dropped = await uow.shares.delete_on_nodes(owner_id, ids)
            dropped += await uow.links.delete_on_nodes(owner_id, ids)
            if dropped:
                uow.events.record(
                    "share.dropped",
                    actor=caller,
                    subject=owner_id,
                    details={"node_id": node_path[0], "count": str(dropped), "reason": "node deleted"},
                )
            await uow.commit()
        return dropped

    async def delete_user(self, caller: str, caller_is_admin: bool, user_id: str) -> int:
        """An account is being deleted (auth_svc's admin API): every share by or to it, and its links, go."""
        if not caller_is_admin:
            raise PermissionDenied("admins only")
        if not user_id or len(user_id) > 64:
            raise InvalidArgument("user_id", "is required")
        async with self.uow() as uow:
            dropped = await uow.shares.delete_of_user(user_id)
            dropped += await uow.links.delete_of_owner(user_id)
            uow.events.record(
                "share.dropped",
                actor=caller,
                subject=user_id,
                details={"count": str(dropped), "reason": "user deleted"},
            )
            await uow.commit()
        return dropped

    # -- user shares ------------------------------------------------------------------------------------------

    async def _own_node(self, caller: str, node_id: str) -> domain.NodeInfo:
        if not node_id or len(node_id) > 64:
            raise InvalidArgument("node_id", "is required")
        node = await self.nodes.get(node_id)  # NotFound if the caller cannot see it
        if node.owner_id != caller:
            raise PermissionDenied("only the owner can share this (re-sharing is not allowed)")
        if not node.parent_id:
            raise InvalidArgument("node_id", "your root folder cannot be shared; share a folder or file in it")
        return node

    async def create_share(self, caller: str, node_id: str, email: str, role: Role | None) -> Share:
        if role is None:
            raise InvalidArgument("role", "must be viewer, downloader or editor")
        if not email.strip():
            raise InvalidArgument("grantee_email", "is required")
        node = await self._own_node(caller, node_id)
        account = await self.accounts.lookup(email)
        if account is None:
            raise InvalidArgument(
                "grantee_email", "no FlowDock account uses this email; ask them to sign up, then share again"
            )
        if account.id == caller:
            raise InvalidArgument("grantee_email", "you cannot share with yourself")
        now = self.clock.now()
        share = Share(str(uuid.uuid4()), node.id, caller, account.id, role, now, account.email, now)
        async with self.uow() as uow:
            try:
                await uow.shares.add(share)
                uow.events.record(
                    "share.created",
                    actor=caller,
                    subject=caller,
                    details={"share_id": share.id, "node_id": node.id, "grantee_id": account.id, "role": role.value},
                )
                await uow.commit()
            except AlreadyExists:
                raise AlreadyExists(f"this is already shared with {account.email}; change its role instead") from None
        try:
            await self.accounts.notify(
                account.id,
                "Something was shared with you on FlowDock",
                f"A FlowDock user shared a {'folder' if node.is_folder else 'file'} with you as {role.value}.\n"
                f'Find it under "Shared with me" ({self.public_url}/api/v1/shares/incoming).\n',
            )
        except Exception:
            log.exception("share notification failed", extra={"share_id": share.id})
        return share

    async def _my_share(self, uow: UnitOfWork, caller: str, share_id: str) -> Share:
        share = await uow.shares.get(share_id) if share_id and len(share_id) <= 64 else None
        if share is None or share.owner_id != caller:
            raise NotFound(f"share {share_id} not found")  # someone else's share: the same answer
        return share

    async def update_share(self, caller: str, share_id: str, role: Role | None) -> Share:
        if role is None:
            raise InvalidArgument("role", "must be viewer, downloader or editor")
        now = self.clock.now()
        async with self.uow() as uow:
            share = await self._my_share(uow, caller, share_id)
            await uow.shares.set_role(share.id, role, now)
            uow.events.record(
                "share.changed",
                actor=caller,
                subject=caller,
                details={"share_id": share.id, "node_id": share.node_id, "from": share.role.value, "to": role.value},
            )
            await uow.commit()
        return replace(share, role=role, updated_at=now)

    async def delete_share(self, caller: str, share_id: str) -> None:
        async with self.uow() as uow:
            share = await self._my_share(uow, caller, share_id)
            await uow.shares.delete(share.id)
            uow.events.record(
                "share.revoked",
                actor=caller,
                subject=caller,
                details={"share_id": share.id, "node_id": share.node_id, "grantee_id": share.grantee_id},
            )
            await uow.commit()

    def _limit(self, page_size: int) -> int:
        if page_size < 0 or page_size > MAX_PAGE:
            raise InvalidArgument("page_size", f"must be between 0 and {MAX_PAGE}")
        return page_size or self.page_size

    async def outgoing(self, caller: str, page_size: int, page_token: str) -> tuple[list[Share], str]:
        limit = self._limit(page_size)
        after = pagetoken.uuid_text(page_token)  # the last id of the previous page
        async with self.uow() as uow:
            rows = await uow.shares.outgoing(caller, after, limit + 1)
        return rows[:limit], rows[limit - 1].id if len(rows) > limit else ""

    async def incoming(self, caller: str, page_size: int, page_token: str) -> tuple[list[Share], str]:
        limit = self._limit(page_size)
        after = pagetoken.uuid_text(page_token)  # the last id of the previous page
        async with self.uow() as uow:
            rows = await uow.shares.incoming(caller, after, limit + 1)
        return rows[:limit], rows[limit - 1].id if len(rows) > limit else ""

    async def describe(self, shares: list[Share]) -> list[bytes | None]:
        """Each share's node as storage_svc shows it to the caller (serialised, in order; None where it cannot be
        seen), asked for all at once: a listing page costs one round trip's time, not one per share."""
        return list(await asyncio.gather(*(self.nodes.describe(s.node_id) for s in shares)))

    async def owners(self, shares: list[Share]) -> dict[str, Account]:
        """Who made each share (by owner id; missing where auth_svc cannot name them), one lookup per owner, all at
        once: "Shared with me" says who shared."""
        ids = sorted({s.owner_id for s in shares})
        found = await asyncio.gather(*(self.accounts.by_id(i) for i in ids))
        return {i: a for i, a in zip(ids, found, strict=True) if a is not None}

    async def link_root(self, token: str, session: str) -> bytes | None:
        """The link's root as its visitor sees it (storage_svc's Node, serialised), for OpenLink's answer."""
        return await self.nodes.link_root(token, session)

    # -- public links -----------------------------------------------------------------------------------------

    def url(self, token: str) -> str:
        return f"/api/v1/public/links/{token}"

    async def create_link(
        self,
        caller: str,
        node_id: str,
        permission: LinkPermission | None,
        password: str = "",
        expires_at: datetime | None = None,
        max_downloads: int = 0,
        max_upload_files: int = 0,
        max_upload_bytes: int = 0,
    ) -> tuple[Link, str]:
        """The link and its token (shown once: only its SHA-256 is stored)."""
        if permission is None:
            raise InvalidArgument("permission", "must be view, download or upload")
        node = await self._own_node(caller, node_id)
        if permission == LinkPermission.UPLOAD and not node.is_folder:
            raise InvalidArgument("permission", "upload (file drop) links need a folder")
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("expire_time", "must be in the future")
        domain.validate_max_downloads(max_downloads)
        domain.validate_upload_limits(max_upload_files, max_upload_bytes, permission)
        pw_hash = await self.hasher.hash(domain.validate_link_password(password), requester=caller) if password else ""
        token = secrets.token_urlsafe(32)  # 256 bits from the OS CSPRNG
        link = Link(
            id=str(uuid.uuid4()),
            token_hash=token_hash(token),
            node_id=node.id,
            owner_id=caller,
            permission=permission,
            password_hash=pw_hash,
            expires_at=expires_at,
            max_downloads=max_downloads,
            downloads=0,
            epoch=0,
            created_at=now,
            max_upload_files=max_upload_files,
            max_upload_bytes=max_upload_bytes,
        )
        async with self.uow() as uow:
            await uow.links.add(link)
            uow.events.record(
                "link.created",
                actor=caller,
                subject=caller,
                details={
                    "link_id": link.id,
                    "node_id": node.id,
                    "permission": permission.value,
                    "password": "yes" if pw_hash else "no",
                    "expires": expires_at.isoformat() if expires_at else "",
                    "max_downloads": str(max_downloads),
                },
            )
            await uow.commit()
        return link, token

    async def _my_link(self, uow: UnitOfWork, caller: str, link_id: str) -> Link:
        link = await uow.links.get(link_id) if link_id and len(link_id) <= 64 else None
        if link is None or link.owner_id != caller:
            raise NotFound(f"link {link_id} not found")
        return link

    async def list_links(self, caller: str, page_size: int, page_token: str) -> tuple[list[Link], str]:
        limit = self._limit(page_size)
        after = pagetoken.uuid_text(page_token)
        async with self.uow() as uow:
            rows = await uow.links.of_owner(caller, after, limit + 1)
        return rows[:limit], rows[limit - 1].id if len(rows) > limit else ""

    async def update_link(self, caller: str, link_id: str, changes: LinkChanges) -> Link:
        now = self.clock.now()
        if changes.expires_at is not None and changes.expires_at <= now:
            raise InvalidArgument("expire_time", "must be in the future")
        if changes.max_downloads is not None:
            domain.validate_max_downloads(changes.max_downloads)
        new_hash: str | None = None
        if changes.password is not None:
            new_hash = (
                await self.hasher.hash(domain.validate_link_password(changes.password), requester=caller)
                if changes.password
                else ""
            )
        async with self.uow() as uow:
            link = await self._my_link(uow, caller, link_id)
            if changes.permission == LinkPermission.UPLOAD and link.permission != LinkPermission.UPLOAD:
                node = await self.nodes.get(link.node_id)
                if not node.is_folder:
                    raise InvalidArgument("permission", "upload (file drop) links need a folder")
            updated = link
            if new_hash is not None:
                updated = replace(updated, password_hash=new_hash, epoch=link.epoch + 1)  # open sessions end
            if changes.clear_expiry:
                updated = replace(updated, expires_at=None)
            elif changes.expires_at is not None:
                updated = replace(updated, expires_at=changes.expires_at)
            if changes.max_downloads is not None:
                updated = replace(updated, max_downloads=changes.max_downloads)
            if changes.permission is not None:
                updated = replace(updated, permission=changes.permission)
            await uow.links.update(updated)
            uow.events.record(
                "link.changed",
                actor=caller,
                subject=caller,
                details={
                    "link_id": link.id,
                    "permission": updated.permission.value,
                    "password": "changed" if new_hash is not None else "kept",
                    "expires": updated.expires_at.isoformat() if updated.expires_at else "",
                    "max_downloads": str(updated.max_downloads),
                },
            )
            await uow.commit()
        return updated

    async def _release(self, attempts: list[int]) -> None:
        async with self.uow() as uow:
            await uow.failures.release(attempts)
            await uow.commit()

    async def delete_link(self, caller: str, link_id: str) -> None:
        async with self.uow() as uow:
            link = await self._my_link(uow, caller, link_id)
            await uow.links.delete(link.id)
            uow.events.record("link.revoked", actor=caller, subject=caller, details={"link_id": link.id})
            await uow.commit()

    async def open_link(self, token: str, password: str, ip: str) -> tuple[Link, str, datetime]:
        """A link session: (link, session credential, expiry). Wrong passwords are throttled per link and per IP:
        each attempt is counted as a failure before its password is checked (and uncounted if right), so parallel
        guesses cannot all pass the count."""
        now = self.clock.now()
        async with self.uow() as uow:
            link = await self._live_link(uow, token)
        if link.password_hash:
            since = now - self.policy.failure_window
            keys = [(f"link:{link.id}", self.policy.failures_per_link)]
            if ip:
                keys.append((f"ip:{ip}", self.policy.failures_per_ip))
            attempts: list[int] = []
            async with self.uow() as uow:
                for key, limit in keys:  # always link then IP: one lock order, no deadlock
                    attempt = await uow.failures.reserve(key, limit, since, now)
                    if attempt is None:
                        raise ResourceExhausted(
                            "too many wrong passwords for this link; try again in a few minutes",
                            limit="share_link_password_failures_per_" + key.split(":")[0],
                            retry_after_seconds=self.policy.failure_window.total_seconds(),
                        )
                    attempts.append(attempt)
                await uow.commit()
            try:
                right = len(password) <= domain.MAX_LINK_PASSWORD and await self.hasher.verify(
                    link.password_hash, password, requester=ip
                )
            except BaseException:  # not evaluated (a full hashing pool, a cancelled call): uncounted
                await self._release(attempts)
                raise
            if not right:
                async with self.uow() as uow:
                    await uow.failures.prune(now - self.policy.failure_window * 2)
                    uow.events.record(
                        "link.password_failed", actor="", subject=link.owner_id, details={"link_id": link.id}
                    )
                    await uow.commit()
                raise PermissionDenied("wrong password for this link")
            await self._release(attempts)
        expires = now + timedelta(seconds=self.policy.session_seconds)
        if link.expires_at is not None:
            expires = min(expires, link.expires_at)
        session = self.sessions.sign(link.id, link.epoch, int(expires.timestamp()))
        await self.events.record("link.opened", actor="", subject=link.owner_id, details={"link_id": link.id})
        return link, session, expires
