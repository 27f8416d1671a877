"""Storage use cases: folders, resumable uploads, downloads. Each method takes the verified caller's id."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowdock_kernel.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from storage_svc import domain
from storage_svc.domain import Cursor, Kind, Node, Upload, UploadState
from storage_svc.ports import AccessPolicy, BlobStore, UnitOfWork

ROOT = "root"
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Limits:
    chunk_bytes: int
    max_chunk_bytes: int
    max_file_bytes: int
    upload_expiry: timedelta
    sync_bytes: int
    list_page_size: int
    list_max_page_size: int


def _now() -> datetime:
    return datetime.now(UTC)


def _wrong_offset(offset: int, committed: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"offset {offset} does not match the committed size {committed}; resume at offset {committed}",
        reason="UPLOAD_OFFSET_MISMATCH",
        metadata={"committed_size": str(committed)},
    )


@dataclass
class Storage:
    uow: Callable[[], UnitOfWork]
    blobs: BlobStore
    access: AccessPolicy
    limits: Limits

    # -- access -------------------------------------------------------------------------------------------------

    async def _resolve(self, uow: UnitOfWork, caller: str, node_id: str, action: str) -> Node:
        """The node if the caller may act on it; otherwise the same NotFound as for a missing node."""
        if node_id == ROOT or node_id == "":
            return await self._root(uow, caller)
        node = await uow.nodes.get(node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        if node.owner_id == caller:
            return node
        path = [node.id]
        parent_id = node.parent_id
        while parent_id:
            parent = await uow.nodes.get(parent_id)
            if parent is None:
                break
            path.append(parent.id)
            parent_id = parent.parent_id
        if not await self.access.allowed(path, node.owner_id, action):
            raise NotFound(f"node {node_id} not found")
        return node

    async def _root(self, uow: UnitOfWork, caller: str) -> Node:
        root = await uow.nodes.root(caller)
        if root is not None:
            return root
        now = _now()
        root = Node(str(uuid.uuid4()), caller, None, "", Kind.FOLDER, 0, now, now)
        await uow.nodes.add(root)
        try:
            await uow.commit()
        except AlreadyExists:
            existing = await uow.nodes.root(caller)  # created concurrently
            if existing is None:
                raise
            return existing
        return root

    async def _folder(self, uow: UnitOfWork, caller: str, folder_id: str, action: str) -> Node:
        folder = await self._resolve(uow, caller, folder_id, action)
        if folder.kind != Kind.FOLDER:
            raise FailedPrecondition(f"{folder_id} is a file, not a folder")
        return folder

    # -- folders ------------------------------------------------------------------------------------------------

    async def create_folder(self, caller: str, parent_id: str, name: str) -> Node:
        name = domain.validate_name(name)
        async with self.uow() as uow:
            parent = await self._folder(uow, caller, parent_id or ROOT, "write")
            if await uow.nodes.child_named(parent.id, domain.name_key(name)) is not None:
                raise AlreadyExists(f"an entry named {name!r} already exists in this folder")
            now = _now()
            node = Node(str(uuid.uuid4()), parent.owner_id, parent.id, name, Kind.FOLDER, 0, now, now)
            await uow.nodes.add(node)
            try:
                await uow.commit()
            except AlreadyExists:
                raise AlreadyExists(f"an entry named {name!r} already exists in this folder") from None
        return node

    async def list_children(
        self, caller: str, folder_id: str, page_size: int, page_token: str
    ) -> tuple[list[Node], str]:
        if page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        if page_size > self.limits.list_max_page_size:
            raise InvalidArgument("page_size", f"must be at most {self.limits.list_max_page_size}")
        limit = page_size or self.limits.list_page_size
        after = Cursor.decode(page_token) if page_token else None
        async with self.uow() as uow:
            folder = await self._folder(uow, caller, folder_id or ROOT, "list")
            rows = await uow.nodes.children(folder.id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        token = ""
        if more:
            last = rows[-1]
            token = Cursor(domain.kind_rank(last.kind), domain.name_key(last.name), last.id).encode()
        return rows, token

    async def get_node(self, caller: str, node_id: str) -> Node:
        async with self.uow() as uow:
            return await self._resolve(uow, caller, node_id, "list")

    # -- uploads ------------------------------------------------------------------------------------------------

    async def create_upload(
        self, caller: str, parent_id: str, name: str, size: int, sha256: str, content_type: str
    ) -> Upload:
        name = domain.validate_name(name)
        sha256 = domain.validate_sha256(sha256)
        content_type = domain.validate_content_type(content_type)
        if size < 0:
            raise InvalidArgument("size", "must not be negative")
        if size > self.limits.max_file_bytes:
            raise ResourceExhausted(
                f"size {size} exceeds the per-file limit of {self.limits.max_file_bytes} bytes "
                "(storage_max_file_bytes)",
                limit="storage_max_file_bytes",
            )
        async with self.uow() as uow:
            parent = await self._folder(uow, caller, parent_id or ROOT, "write")
            if await uow.nodes.child_named(parent.id, domain.name_key(name)) is not None:
                raise AlreadyExists(f"an entry named {name!r} already exists in this folder")
            now = _now()
            upload = Upload(
                id=str(uuid.uuid4()),
                owner_id=parent.owner_id,
                parent_id=parent.id,
                name=name,
                size=size,
                sha256=sha256,
                content_type=content_type,
                committed_size=0,
                state=UploadState.OPEN,
                created_at=now,
                expires_at=now + self.limits.upload_expiry,
            )
            await self.blobs.create_staging(upload.id)
            await uow.uploads.add(upload)
            await uow.commit()
        return upload

    async def _open_upload(self, uow: UnitOfWork, caller: str, upload_id: str) -> Upload:
        upload = await uow.uploads.get(upload_id)
        # Uploads are private to their creator; another caller sees the same NotFound as for a missing id.
        if upload is None or upload.owner_id != caller:
            raise NotFound(f"upload {upload_id} not found")
        return upload

    async def get_upload(self, caller: str, upload_id: str) -> Upload:
        async with self.uow() as uow:
            return await self._open_upload(uow, caller, upload_id)

    def _check_chunk(self, upload: Upload, offset: int, length: int) -> None:
        if upload.state != UploadState.OPEN:
            raise FailedPrecondition("upload is already finished; start a new upload to change the file")
        if length > self.limits.max_chunk_bytes:
            raise ResourceExhausted(
                f"chunk of {length} bytes exceeds the limit of {self.limits.max_chunk_bytes} bytes "
                "(storage_max_chunk_bytes); send smaller chunks",
                limit="storage_max_chunk_bytes",
            )
        if offset + length > upload.size:
            raise InvalidArgument(
                "data", f"bytes up to offset {offset + length} exceed the declared size {upload.size}"
            )

    async def write_chunk(self, caller: str, upload_id: str, offset: int, data: bytes) -> int:
        """Append one chunk at `offset` (must equal the committed size); durable before it returns."""
        writer = self.writer(caller, upload_id)
        async with writer:
            await writer.start(offset)
            await writer.write(data)
            return await writer.flush()

    def writer(self, caller: str, upload_id: str) -> UploadWriter:
        return UploadWriter(self, caller, upload_id)

    async def finish_upload(self, caller: str, upload_id: str) -> Node:
        token = secrets.token_hex(16)
        async with self.uow() as uow:
            upload = await self._open_upload(uow, caller, upload_id)
            if upload.state == UploadState.COMPLETED:
                node = await uow.nodes.get(upload.node_id)
                if node is None:
                    raise NotFound(f"upload {upload_id} not found")
                return node  # finishing twice answers the same
            if upload.committed_size != upload.size:
                raise FailedPrecondition(
                    f"only {upload.committed_size} of {upload.size} bytes received; "
                    f"send the rest from offset {upload.committed_size}",
                    reason="UPLOAD_INCOMPLETE",
                    metadata={"committed_size": str(upload.committed_size)},
                )
            if not await uow.uploads.acquire(upload_id, token, _now() + LEASE, _now()):
                raise FailedPrecondition("another client is writing to this upload; retry when it is done")
            await uow.commit()
        digest = await self.blobs.digest_staging(upload_id, upload.size)
        if upload.sha256 and digest != upload.sha256:
            await self.abort_upload(caller, upload_id)
            raise InvalidArgument(
                "sha256",
                f"the received content hashes to {digest}, not the declared {upload.sha256}; "
                "the upload was discarded, upload the file again",
            )
        blob_id = uuid.uuid4().hex
        async with self.uow() as uow:
            if await uow.nodes.child_named(upload.parent_id, domain.name_key(upload.name)) is not None:
                await uow.uploads.release(upload_id, token)
                await uow.commit()
                raise AlreadyExists(f"an entry named {upload.name!r} appeared in the folder meanwhile")
            now = _now()
            node = Node(
                id=str(uuid.uuid4()),
                owner_id=upload.owner_id,
                parent_id=upload.parent_id,
                name=upload.name,
                kind=Kind.FILE,
                size=upload.size,
                created_at=now,
                modified_at=now,
                content_type=upload.content_type,
                sha256=digest,
                blob_id=blob_id,
            )
            await self.blobs.commit_staging(upload_id, blob_id, upload.size)
            await uow.nodes.add(node)
            await uow.uploads.complete(upload_id, node.id)
            try:
                await uow.commit()
            except Exception:
                await self.blobs.delete(blob_id)
                raise
        return node

    async def abort_upload(self, caller: str, upload_id: str) -> None:
        async with self.uow() as uow:
            upload = await self._open_upload(uow, caller, upload_id)
            if upload.state == UploadState.COMPLETED:
                raise FailedPrecondition("upload is already finished; delete the file instead")
            await uow.uploads.delete(upload_id)
            await uow.commit()
        await self.blobs.delete_staging(upload_id)

    # -- downloads ----------------------------------------------------------------------------------------------

    async def open_download(self, caller: str, file_id: str, offset: int, length: int) -> tuple[Node, int, int]:
        """Check access and the range; returns the node and the (offset, length) to stream."""
        async with self.uow() as uow:
            node = await self._resolve(uow, caller, file_id, "download")
        if node.kind != Kind.FILE:
            raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
        if offset < 0 or offset > node.size:
            raise InvalidArgument("offset", f"must be between 0 and the file size {node.size}")
        if length < 0:
            raise InvalidArgument("length", "must not be negative")
        length = node.size - offset if length == 0 else min(length, node.size - offset)
        return node, offset, length

    def read(self, node: Node, offset: int, length: int) -> AsyncIterator[bytes]:
        return self.blobs.read(node.blob_id, offset, length, self.limits.chunk_bytes)


class UploadWriter:
    """One writer's hold on an upload: a lease in the database, so two writers (even on two replicas) never
    interleave; bytes are acknowledged only once fsynced and recorded as committed."""

    def __init__(self, storage: Storage, caller: str, upload_id: str) -> None:
        self.s = storage
        self.caller = caller
        self.upload_id = upload_id
        self.token = secrets.token_hex(16)
        self.upload: Upload | None = None
        self.offset = 0  # next byte to write
        self.committed = 0  # durable and recorded

    async def __aenter__(self) -> UploadWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.upload is not None:
            async with self.s.uow() as uow:
                await uow.uploads.release(self.upload_id, self.token)
                await uow.commit()

    async def start(self, offset: int) -> int:
        async with self.s.uow() as uow:
            upload = await self.s._open_upload(uow, self.caller, self.upload_id)
            self.s._check_chunk(upload, offset, 0)
            if offset != upload.committed_size:
                raise _wrong_offset(offset, upload.committed_size)
            if not await uow.uploads.acquire(self.upload_id, self.token, _now() + LEASE, _now()):
                raise FailedPrecondition(
                    "another client is writing to this upload; wait for it or resume after it stops"
                )
            await uow.commit()
        self.upload = upload
        self.offset = self.committed = offset
        return offset

    async def write(self, data: bytes, offset: int | None = None) -> None:
        assert self.upload is not None
        if offset is not None and offset != self.offset:
            raise _wrong_offset(offset, self.offset)
        self.s._check_chunk(self.upload, self.offset, len(data))
        await self.s.blobs.write_staging(self.upload_id, self.offset, data)
        self.offset += len(data)

    @property
    def pending(self) -> int:
        return self.offset - self.committed

    async def flush(self) -> int:
        """Make written bytes durable and record them; returns the committed size."""
        if self.pending == 0:
            return self.committed
        await self.s.blobs.sync_staging(self.upload_id)
        async with self.s.uow() as uow:
            if not await uow.uploads.advance(self.upload_id, self.token, self.offset, _now() + LEASE):
                raise FailedPrecondition("this writer lost its hold on the upload (idle too long); resume it")
            await uow.commit()
        self.committed = self.offset
        return self.committed
