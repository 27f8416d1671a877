"""storage_svc adapters: tables and SQL repositories, the local-disk blob store, share_svc's access client."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock_kernel.errors import AlreadyExists, DataLoss, Unavailable
from storage_svc.domain import Cursor, Kind, Node, Upload, UploadState, kind_rank, name_key

metadata = sa.MetaData()

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.String(36), nullable=False),
    sa.Column("parent_id", sa.String(36), sa.ForeignKey("nodes.id"), nullable=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("name_key", sa.String(1024), nullable=False),
    sa.Column("kind_rank", sa.SmallInteger, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("blob_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=True),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.String(36), nullable=False, index=True),
    sa.Column("parent_id", sa.String(36), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("committed_size", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("node_id", sa.String(36), nullable=False),
    sa.Column("writer", sa.String(32), nullable=True),
    sa.Column("writer_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

LIVE = nodes.c.trashed_at.is_(None)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _node(row: Any) -> Node:
    return Node(
        id=row.id,
        owner_id=row.owner_id,
        parent_id=row.parent_id,
        name=row.name,
        kind=Kind(row.kind),
        size=row.size,
        created_at=_aware(row.created_at),
        modified_at=_aware(row.modified_at),
        content_type=row.content_type,
        sha256=row.sha256,
        blob_id=row.blob_id,
    )


def _upload(row: Any) -> Upload:
    return Upload(
        id=row.id,
        owner_id=row.owner_id,
        parent_id=row.parent_id,
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        content_type=row.content_type,
        committed_size=row.committed_size,
        state=UploadState(row.state),
        created_at=_aware(row.created_at),
        expires_at=_aware(row.expires_at),
        node_id=row.node_id,
    )


class SqlNodes:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, node_id: str) -> Node | None:
        row = (await self.s.execute(sa.select(nodes).where(nodes.c.id == node_id, LIVE))).first()
        return _node(row) if row else None

    async def root(self, owner_id: str) -> Node | None:
        q = sa.select(nodes).where(nodes.c.owner_id == owner_id, nodes.c.parent_id.is_(None))
        row = (await self.s.execute(q)).first()
        return _node(row) if row else None

    async def add(self, node: Node) -> None:
        await self.s.execute(
            nodes.insert().values(
                id=node.id,
                owner_id=node.owner_id,
                parent_id=node.parent_id,
                name=node.name,
                name_key=name_key(node.name),
                kind_rank=kind_rank(node.kind),
                kind=node.kind.value,
                size=node.size,
                content_type=node.content_type,
                sha256=node.sha256,
                blob_id=node.blob_id,
                created_at=node.created_at,
                modified_at=node.modified_at,
            )
        )

    async def child_named(self, parent_id: str, key: str) -> Node | None:
        q = sa.select(nodes).where(nodes.c.parent_id == parent_id, nodes.c.name_key == key, LIVE)
        row = (await self.s.execute(q)).first()
        return _node(row) if row else None

    async def children(self, parent_id: str, after: Cursor | None, limit: int) -> list[Node]:
        """One indexed keyset query per page (ix_nodes_listing), never a query per entry."""
        q = sa.select(nodes).where(nodes.c.parent_id == parent_id, LIVE)
        if after is not None:
            q = q.where(
                sa.tuple_(nodes.c.kind_rank, nodes.c.name_key, nodes.c.id)
                > sa.tuple_(sa.literal(after.kind_rank), sa.literal(after.key), sa.literal(after.id))
            )
        q = q.order_by(nodes.c.kind_rank, nodes.c.name_key, nodes.c.id).limit(limit)
        return [_node(r) for r in (await self.s.execute(q)).all()]


class SqlUploads:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, upload_id: str) -> Upload | None:
        row = (await self.s.execute(sa.select(uploads).where(uploads.c.id == upload_id))).first()
        return _upload(row) if row else None

    async def add(self, upload: Upload) -> None:
        await self.s.execute(
            uploads.insert().values(
                id=upload.id,
                owner_id=upload.owner_id,
                parent_id=upload.parent_id,
                name=upload.name,
                size=upload.size,
                sha256=upload.sha256,
                content_type=upload.content_type,
                committed_size=upload.committed_size,
                state=upload.state.value,
                node_id=upload.node_id,
                created_at=upload.created_at,
                expires_at=upload.expires_at,
            )
        )

    async def acquire(self, upload_id: str, token: str, until: datetime, now: datetime) -> bool:
        free = sa.or_(uploads.c.writer.is_(None), uploads.c.writer_until < now, uploads.c.writer == token)
        result = await self.s.execute(
            uploads.update()
            .where(uploads.c.id == upload_id, uploads.c.state == UploadState.OPEN.value, free)
            .values(writer=token, writer_until=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def advance(self, upload_id: str, token: str, committed: int, until: datetime) -> bool:
        result = await self.s.execute(
            uploads.update()
            .where(uploads.c.id == upload_id, uploads.c.writer == token)
            .values(committed_size=committed, writer_until=until)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, upload_id: str, token: str) -> None:
        await self.s.execute(
            uploads.update()
            .where(uploads.c.id == upload_id, uploads.c.writer == token)
            .values(writer=None, writer_until=None)
        )

    async def complete(self, upload_id: str, node_id: str) -> None:
        await self.s.execute(
            uploads.update()
            .where(uploads.c.id == upload_id)
            .values(state=UploadState.COMPLETED.value, node_id=node_id, writer=None, writer_until=None)
        )

    async def delete(self, upload_id: str) -> None:
        await self.s.execute(uploads.delete().where(uploads.c.id == upload_id))


class SqlUnitOfWork:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    async def __aenter__(self) -> Self:
        self._session = self._factory()
        self.nodes = SqlNodes(self._session)
        self.uploads = SqlUploads(self._session)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        try:
            await self._session.commit()
        except IntegrityError as exc:
            await self._session.rollback()
            raise AlreadyExists("already exists") from exc


class LocalBlobStore:
    """Blobs on local disk under ids we generate: `blobs/ab/cd/<id>`, staging in `staging/<upload id>`.

    A blob appears only by atomic rename of an fsynced staging file, followed by an fsync of its directory,
    so after a crash a blob is either whole or absent.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "staging"
        self.blobs = root / "blobs"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.blobs.mkdir(parents=True, exist_ok=True)

    def _staging(self, upload_id: str) -> Path:
        return self.staging / upload_id

    def _blob(self, blob_id: str) -> Path:
        return self.blobs / blob_id[:2] / blob_id[2:4] / blob_id

    async def create_staging(self, upload_id: str) -> None:
        def create() -> None:
            fd = os.open(self._staging(upload_id), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            os.close(fd)

        await asyncio.to_thread(create)

    async def write_staging(self, upload_id: str, offset: int, data: bytes) -> None:
        def write() -> None:
            fd = os.open(self._staging(upload_id), os.O_WRONLY)
            try:
                view = memoryview(data)
                pos = offset
                while view:
                    n = os.pwrite(fd, view, pos)
                    view, pos = view[n:], pos + n
            finally:
                os.close(fd)

        try:
            await asyncio.to_thread(write)
        except FileNotFoundError:
            raise Unavailable("upload staging file is missing; abort and start the upload again") from None

    async def sync_staging(self, upload_id: str) -> None:
        def sync() -> None:
            fd = os.open(self._staging(upload_id), os.O_WRONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

        await asyncio.to_thread(sync)

    async def digest_staging(self, upload_id: str, size: int) -> str:
        def digest() -> str:
            h = hashlib.sha256()
            with open(self._staging(upload_id), "rb") as f:
                remaining = size
                while remaining:
                    block = f.read(min(remaining, 4 * 1024 * 1024))
                    if not block:
                        raise DataLoss("upload staging file is shorter than its committed size")
                    h.update(block)
                    remaining -= len(block)
            return h.hexdigest()

        return await asyncio.to_thread(digest)

    async def commit_staging(self, upload_id: str, blob_id: str, size: int) -> None:
        def commit() -> None:
            src, dst = self._staging(upload_id), self._blob(blob_id)
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(src, os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(src, dst)
            dfd = os.open(dst.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

        await asyncio.to_thread(commit)

    async def delete_staging(self, upload_id: str) -> None:
        await asyncio.to_thread(self._staging(upload_id).unlink, True)

    async def delete(self, blob_id: str) -> None:
        await asyncio.to_thread(self._blob(blob_id).unlink, True)

    async def read(self, blob_id: str, offset: int, length: int, chunk: int) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(open, self._blob(blob_id), "rb")
        except FileNotFoundError:
            raise DataLoss("the file's stored content is missing") from None
        try:
            await asyncio.to_thread(f.seek, offset)
            remaining = length
            while remaining > 0:
                block = await asyncio.to_thread(f.read, min(chunk, remaining))
                if not block:
                    raise DataLoss("the file's stored content is shorter than recorded")
                remaining -= len(block)
                yield block
        finally:
            f.close()


class ShareAccessPolicy:
    """Asks share_svc (AccessService.CheckAccess) on behalf of the caller, whose token the channel forwards."""

    _ACTIONS = {
        "list": share_pb2.ACTION_LIST,
        "download": share_pb2.ACTION_DOWNLOAD,
        "write": share_pb2.ACTION_WRITE,
    }

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = share_pb2_grpc.AccessServiceStub(channel)

    async def allowed(self, node_path: list[str], owner_id: str, action: str) -> bool:
        try:
            reply = await self.stub.CheckAccess(
                share_pb2.CheckAccessRequest(node_path=node_path, owner_id=owner_id, action=self._ACTIONS[action]),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            # Fail closed: no decision means no access, and the caller can retry.
            raise Unavailable("access decisions are unavailable (share_svc); retry shortly") from exc
        return bool(reply.allowed)
