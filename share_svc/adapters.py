"""share_svc adapters: tables and SQL repositories, the link-session signer, Argon2id, auth_svc and storage_svc
clients, the audit outbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import argon2
import grpc
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from flowdock_kernel import db
from flowdock_kernel.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from flowdock_kernel.workers import BoundedPool
from share_svc.domain import Link, LinkPermission, NodeInfo, Role, Share
from share_svc.ports import Account

metadata = sa.MetaData()

shares = sa.Table(
    "shares",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("owner_id", sa.String(36), nullable=False),
    sa.Column("grantee_id", sa.String(36), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("grantee_email", sa.String(320), nullable=False, server_default=""),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
)

links = sa.Table(
    "links",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("owner_id", sa.String(36), nullable=False),
    sa.Column("permission", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("max_downloads", sa.Integer, nullable=False),
    sa.Column("downloads", sa.Integer, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("max_upload_files", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_upload_bytes", sa.BigInteger, nullable=False, server_default="0"),
)

link_failures = sa.Table(
    "link_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

secrets_table = sa.Table(
    "service_secrets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _share(row: Any) -> Share:
    created = _aware(row.created_at)
    assert created is not None
    return Share(
        row.id,
        row.node_id,
        row.owner_id,
        row.grantee_id,
        Role(row.role),
        created,
        row.grantee_email,
        _aware(row.updated_at),
    )


def _link(row: Any) -> Link:
    created = _aware(row.created_at)
    assert created is not None
    return Link(
        id=row.id,
        token_hash=row.token_hash,
        node_id=row.node_id,
        owner_id=row.owner_id,
        permission=LinkPermission(row.permission),
        password_hash=row.password_hash,
        expires_at=_aware(row.expires_at),
        max_downloads=row.max_downloads,
        downloads=row.downloads,
        epoch=row.epoch,
        created_at=created,
        max_upload_files=row.max_upload_files,
        max_upload_bytes=row.max_upload_bytes,
    )


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class SqlShares:
    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def delete_of_user(self, user_id: str) -> int:
        query = shares.delete().where(sa.or_(shares.c.owner_id == user_id, shares.c.grantee_id == user_id))
        result = await self.s.execute(query)
        return int(result.rowcount)

    async def for_grantee_on(self, grantee_id: str, owner_id: str, node_ids: list[str]) -> list[Share]:
        q = sa.select(shares).where(
            shares.c.grantee_id == grantee_id, shares.c.owner_id == owner_id, shares.c.node_id.in_(node_ids)
        )
        return [_share(r) for r in (await self.s.execute(q)).all()]

    async def outgoing(self, owner_id: str, after: str, limit: int) -> list[Share]:
        q = sa.select(shares).where(shares.c.owner_id == owner_id, shares.c.id > after)
        return [_share(r) for r in (await self.s.execute(q.order_by(shares.c.id).limit(limit))).all()]

    async def incoming(self, grantee_id: str, after: str, limit: int) -> list[Share]:
        q = sa.select(shares).where(shares.c.grantee_id == grantee_id, shares.c.id > after)
        return [_share(r) for r in (await self.s.execute(q.order_by(shares.c.id).limit(limit))).all()]

    async def get(self, share_id: str) -> Share | None:
        row = (await self.s.execute(sa.select(shares).where(shares.c.id == share_id))).first()
        return _share(row) if row else None

    async def add(self, share: Share) -> None:
        try:
            await self._insert(share)
        except IntegrityError:
            raise AlreadyExists("the node is already shared with this account") from None

    async def _insert(self, share: Share) -> None:
        await self.s.execute(
            shares.insert().values(
                id=share.id,
                node_id=share.node_id,
                owner_id=share.owner_id,
                grantee_id=share.grantee_id,
                role=share.role.value,
                created_at=share.created_at,
                grantee_email=share.grantee_email,
                updated_at=share.updated_at,
            )
        )

    async def set_role(self, share_id: str, role: Role, at: datetime) -> None:
        await self.s.execute(shares.update().where(shares.c.id == share_id).values(role=role.value, updated_at=at))

    async def delete(self, share_id: str) -> None:
        await self.s.execute(shares.delete().where(shares.c.id == share_id))

    async def delete_on_nodes(self, owner_id: str, node_ids: list[str]) -> int:
        n = 0
        for chunk in _chunks(node_ids):
            result = await self.s.execute(
                shares.delete().where(shares.c.owner_id == owner_id, shares.c.node_id.in_(chunk))
            )
            n += int(result.rowcount)
        return n


class SqlLinks:
    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def delete_of_owner(self, owner_id: str) -> int:
        result = await self.s.execute(links.delete().where(links.c.owner_id == owner_id))
        return int(result.rowcount)

    async def by_token_hash(self, token_hash: str) -> Link | None:
        row = (await self.s.execute(sa.select(links).where(links.c.token_hash == token_hash))).first()
        return _link(row) if row else None

    async def get(self, link_id: str) -> Link | None:
        row = (await self.s.execute(sa.select(links).where(links.c.id == link_id))).first()
        return _link(row) if row else None

    async def add(self, link: Link) -> None:
        await self.s.execute(links.insert().values(**_link_values(link)))

    async def update(self, link: Link) -> None:
        values = _link_values(link)
        del values["downloads"]  # counted atomically elsewhere
        await self.s.execute(links.update().where(links.c.id == link.id).values(**values))

    async def delete(self, link_id: str) -> None:
        await self.s.execute(links.delete().where(links.c.id == link_id))

    async def of_owner(self, owner_id: str, after: str, limit: int) -> list[Link]:
        q = sa.select(links).where(links.c.owner_id == owner_id, links.c.id > after)
        return [_link(r) for r in (await self.s.execute(q.order_by(links.c.id).limit(limit))).all()]

    async def count_download(self, link_id: str) -> bool:
        result = await self.s.execute(
            links.update()
            .where(
                links.c.id == link_id,
                sa.or_(links.c.max_downloads == 0, links.c.downloads < links.c.max_downloads),
            )
            .values(downloads=links.c.downloads + 1)
        )
        return bool(result.rowcount)

    async def delete_on_nodes(self, owner_id: str, node_ids: list[str]) -> int:
        n = 0
        for chunk in _chunks(node_ids):
            result = await self.s.execute(
                links.delete().where(links.c.owner_id == owner_id, links.c.node_id.in_(chunk))
            )
            n += int(result.rowcount)
        return n


def _link_values(link: Link) -> dict[str, Any]:
    return {
        "id": link.id,
        "token_hash": link.token_hash,
        "node_id": link.node_id,
        "owner_id": link.owner_id,
        "permission": link.permission.value,
        "password_hash": link.password_hash,
        "expires_at": link.expires_at,
        "max_downloads": link.max_downloads,
        "downloads": link.downloads,
        "epoch": link.epoch,
        "created_at": link.created_at,
        "max_upload_files": link.max_upload_files,
        "max_upload_bytes": link.max_upload_bytes,
    }


class SqlFailures:
    def __init__(self, s: AsyncConnection) -> None:
        self.s = s

    async def reserve(self, key: str, limit: int, since: datetime, at: datetime) -> int | None:
        # PostgreSQL: an advisory lock on the key; SQLite: the delete below is the transaction's first write and
        # takes the database's write lock. Either way the count sees every earlier attempt on the key.
        await db.lock_key(self.s, "share.link_failures:" + key)
        await self.s.execute(link_failures.delete().where(link_failures.c.key == key, link_failures.c.at <= since))
        q = sa.select(sa.func.count()).where(link_failures.c.key == key, link_failures.c.at > since)
        if int((await self.s.execute(q)).scalar_one()) >= limit:
            return None
        stmt = link_failures.insert().values(key=key, at=at).returning(link_failures.c.id)
        return int((await self.s.execute(stmt)).scalar_one())

    async def release(self, ids: list[int]) -> None:
        if ids:
            await self.s.execute(link_failures.delete().where(link_failures.c.id.in_(ids)))

    async def prune(self, before: datetime) -> None:
        await self.s.execute(link_failures.delete().where(link_failures.c.at < before))


class SqlUnitOfWork(db.SqlUnitOfWork):
    def _bind(self, session: AsyncConnection) -> None:
        self.shares = SqlShares(session)
        self.links = SqlLinks(session)
        self.failures = SqlFailures(session)


async def session_key(factory: db.Connections) -> bytes:
    """The HMAC key of link sessions: 256 random bits kept in share_svc's database, so every replica shares it."""
    async with factory() as s:
        row = (await s.execute(sa.select(secrets_table.c.value).where(secrets_table.c.name == "link_session"))).first()
        if row is None:
            try:
                await s.execute(secrets_table.insert().values(name="link_session", value=secrets.token_hex(32)))
                await s.commit()
            except IntegrityError:
                await s.rollback()  # another replica created it first
            row = (
                await s.execute(sa.select(secrets_table.c.value).where(secrets_table.c.name == "link_session"))
            ).one()
    return bytes.fromhex(row.value)


class HmacSessionSigner:
    """A link session is `<link id>.<epoch>.<expiry>.<HMAC-SHA256>`; any changed character fails the MAC."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the link-session key must be 32 bytes")
        self._key = key

    def _mac(self, body: bytes) -> bytes:
        return base64.urlsafe_b64encode(hmac.new(self._key, b"link-session:" + body, hashlib.sha256).digest()).rstrip(
            b"="
        )

    def sign(self, link_id: str, epoch: int, expires: int) -> str:
        body = f"{link_id}.{epoch}.{expires}".encode()
        return (body + b"." + self._mac(body)).decode()

    def verify(self, token: str) -> tuple[str, int, int] | None:
        if len(token) > 256:
            return None
        body, _, mac = token.encode(errors="replace").rpartition(b".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            link_id, epoch, expires = body.decode().split(".")
            return link_id, int(epoch), int(expires)
        except ValueError:
            return None


class Argon2Hasher:
    """Argon2id (m = 19 MiB, t = 2, p = 1, as for account passwords) on a bounded worker pool, off the event loop:
    a full pool answers RESOURCE_EXHAUSTED at once instead of queueing without end."""

    def __init__(self, pool: BoundedPool | None = None) -> None:
        self._ph = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=argon2.Type.ID)
        self._pool = pool or BoundedPool("share.link_password_hashing", workers=1, queue=16, per_key=2)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._ph.verify(password_hash, password))
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def hash(self, password: str, *, requester: str = "") -> str:
        return await self._pool.run(self._ph.hash, password, key=requester)

    async def verify(self, password_hash: str, password: str, *, requester: str = "") -> bool:
        return await self._pool.run(self._check, password_hash, password, key=requester)

    def close(self) -> None:
        self._pool.close()


class AuthAccounts:
    """auth_svc's AuthInternalService (LookupUser, NotifyUser), with the caller's token forwarded."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = auth_pb2_grpc.AuthInternalServiceStub(channel)

    async def lookup(self, email: str) -> Account | None:
        try:
            reply = await self.stub.LookupUser(auth_pb2.LookupUserRequest(email=email), timeout=5)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument("grantee_email", "is not a valid email address") from None
            raise Unavailable("accounts are unavailable (auth_svc); retry shortly") from exc
        return Account(reply.user_id, reply.email, reply.display_name)

    async def by_id(self, user_id: str) -> Account | None:
        try:
            reply = await self.stub.LookupUser(auth_pb2.LookupUserRequest(user_id=user_id), timeout=5)
        except grpc.aio.AioRpcError:
            return None
        return Account(reply.user_id, reply.email, reply.display_name)

    async def notify(self, user_id: str, subject: str, body: str) -> None:
        await self.stub.NotifyUser(auth_pb2.NotifyUserRequest(user_id=user_id, subject=subject, body=body), timeout=5)


class StorageNodes:
    """storage_svc's GetNode with the caller's token: it answers NotFound for what the caller cannot see."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = storage_pb2_grpc.StorageServiceStub(channel)
        self.links = storage_pb2_grpc.PublicLinkServiceStub(channel)

    async def get(self, node_id: str) -> NodeInfo:
        try:
            node = await self.stub.GetNode(storage_pb2.GetNodeRequest(node_id=node_id), timeout=5)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise NotFound(f"node {node_id} not found") from None
            raise Unavailable("storage is unavailable (storage_svc); retry shortly") from exc
        return NodeInfo(node.id, node.owner_id, node.parent_id, node.kind == storage_pb2.NODE_KIND_FOLDER)

    async def describe(self, node_id: str) -> bytes | None:
        try:
            node = await self.stub.GetNode(storage_pb2.GetNodeRequest(node_id=node_id), timeout=5)
        except grpc.aio.AioRpcError:
            return None
        return node.SerializeToString()

    async def link_root(self, token: str, session: str) -> bytes | None:
        request = storage_pb2.GetLinkRootRequest(token=token, session=session)
        try:
            node = await self.links.GetLinkRoot(request, timeout=5)
        except grpc.aio.AioRpcError:
            return None
        return node.SerializeToString()
