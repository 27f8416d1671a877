"""Uploads: resumable sessions (create, write at the committed offset, finish, abort), small files in one call,
and the writer that streams bytes into the blob store under a lease.

The path of a streamed upload: servicer.UploadStream → `Uploads.writer` → `UploadWriter` (lease and committed
offset in the database through the unit of work; bytes through the `BlobStore` port, storage_svc/ports.py) →
storage_svc/blobstore.py. The writer hashes the bytes as they arrive (storage_svc/usecases/hashing.py), so
`finish_upload` reads the staged bytes again only to scan them (or to hash what this process did not see), then
turns them into a blob and the file (or a new version of it) in the transaction that completes the upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import (
    Aborted,
    AlreadyExists,
    DiskFull,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    TooLarge,
    Unavailable,
)
from flowdock_kernel.incarnation import PROCESS
from storage_svc import domain
from storage_svc.domain import Kind, Node, OnConflict, ScanLimitExceeded, Upload, UploadState, Version
from storage_svc.ports import BlobStore, Events, LeaseHolders, UnitOfWork, UnitOfWorkFactory, VirusScanner
from storage_svc.usecases import hashing
from storage_svc.usecases.access import LINK_CREATOR, Access
from storage_svc.usecases.common import DropLimits, Limits, delete_blobs, quota_exceeded
from storage_svc.usecases.hashing import HashState, RunningHash, UploadHashes
from storage_svc.usecases.smallfiles import SmallFile, SmallFileCommits, batchable
from storage_svc.usecases.tree import Tree, place

log = logging.getLogger("flowdock.storage")

WRITE_UNIT = 1024 * 1024  # bytes handed to the blob store per write (1 MiB measured best)
LEASE = timedelta(seconds=60)


class ScanRefused(Exception):
    """The content was refused at finish; the message is what the client sees."""


class _Resumable(Exception):
    """A whole-file chunk found the upload changed under it: it goes the resumable way instead."""


@dataclass(kw_only=True)
class Uploads:
    """Upload sessions: the declared size is reserved against the owner's quota at creation; bytes are staged at
    the committed offset; the finish pass verifies and scans them, then makes the file (or a new version)."""

    uow: UnitOfWorkFactory
    blobs: BlobStore
    access: Access
    tree: Tree
    limits: Limits
    scanner: VirusScanner
    events: Events
    clock: Clock
    #: This process's SHA-256 states of the uploads it writes (one per process: replicas each have their own).
    hashes: UploadHashes = field(default_factory=UploadHashes)
    #: Writer lease tokens name their process: the lease of a writer whose process died is taken over at once.
    holders: LeaseHolders = PROCESS
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _group: SmallFileCommits | None = None

    async def create_upload(
        self,
        caller: str,
        parent_id: str,
        name: str,
        size: int,
        sha256: str,
        content_type: str,
        relative_path: str = "",
        on_conflict: OnConflict = OnConflict.FAIL,
        *,
        link_parent: Node | None = None,
        drop: DropLimits | None = None,
    ) -> Upload:
        """`link_parent`: a file drop into that folder, already authorised by the link (caller "link:<id>")."""
        name, folders = _target(name, relative_path, link_parent)
        sha256 = domain.validate_sha256(sha256)
        content_type = domain.validate_content_type(content_type)
        if size < 0:
            raise InvalidArgument("size", "must not be negative")
        if size > self.limits.max_file_bytes:
            raise TooLarge(
                f"size {size} exceeds the per-file limit of {self.limits.max_file_bytes} bytes "
                "(storage_max_file_bytes)",
                limit="storage_max_file_bytes",
            )
        if folders:
            parent_id = await self.tree.ensure_folders(caller, parent_id, folders)
        async with self.uow() as uow:
            parent = await self._upload_parent(uow, caller, parent_id, link_parent)
            name, clash = await self._upload_name(uow, parent, name, on_conflict)
            target = clash.id if clash is not None else ""
            await self._take_link_drop(uow, caller, size, link_parent, drop)
            if not await uow.quotas.reserve(parent.owner_id, size, self.limits.default_quota_bytes):
                raise quota_exceeded(await uow.quotas.get(parent.owner_id, self.limits.default_quota_bytes), size)
            now = self.clock.now()
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
                on_conflict=on_conflict,
                target_node_id=target,
                creator_id=caller,
            )
            if not self._small(size):
                await self.blobs.create_staging(upload.id)
            else:  # nothing on disk yet: the whole-file chunk becomes the blob, a partial one stages (UploadWriter)
                await uow.uploads.add(upload)
                await uow.commit()
                return upload
            try:
                await uow.uploads.add(upload)
                await uow.commit()
            except BaseException:
                # No row names the staging file (a database on a full disk, say): it must not stay as an orphan.
                await asyncio.shield(self.blobs.delete_staging(upload.id))
                raise
        return upload

    def _small(self, size: int) -> bool:
        """Small uploads stage nothing at create (storage_small_upload_bytes): see `_write_whole`."""
        return self.limits.small_upload_bytes > 0 and size <= self.limits.small_upload_bytes

    async def _take_link_drop(
        self, uow: UnitOfWork, caller: str, size: int, link_parent: Node | None, drop: DropLimits | None
    ) -> None:
        """A file drop counts against its link's limits before the owner's quota: a public link must not be
        able to fill the owner's whole quota or their folder with files."""
        if link_parent is None:
            return
        drop = drop or DropLimits(self.limits.link_drop_max_files, self.limits.link_drop_max_bytes)
        used = await uow.link_drops.take(caller, size, drop.max_files, drop.max_bytes)
        if used is None:
            return
        files, taken = used
        if files + 1 > drop.max_files:
            name = "link max_upload_files" if drop.own_files else "storage_link_drop_max_files"
            raise ResourceExhausted(
                f"this file-drop link has taken its {drop.max_files} files ({name}); ask the owner for a new link",
                limit=name,
            )
        name = "link max_upload_bytes" if drop.own_bytes else "storage_link_drop_max_bytes"
        raise ResourceExhausted(
            f"a file of {size} bytes would take this file-drop link past its {drop.max_bytes} bytes "
            f"({taken} taken; {name})",
            limit=name,
        )

    async def _upload_parent(self, uow: UnitOfWork, caller: str, parent_id: str, link_parent: Node | None) -> Node:
        """The folder an upload goes to: a file drop's (authorised by its link), else one the caller may write."""
        if link_parent is None:
            return await self.access.folder(uow, caller, parent_id, "write")
        parent = await uow.nodes.get(link_parent.id)
        if parent is None:
            raise NotFound(f"node {link_parent.id} not found")
        return parent

    async def _upload_name(
        self, uow: UnitOfWork, parent: Node, name: str, on_conflict: OnConflict
    ) -> tuple[str, Node | None]:
        """The name to use under the conflict policy, and the file that gets a new version (NEW_VERSION)."""
        clash = await uow.nodes.child_named(parent.id, domain.name_key(name))
        if clash is None:
            return name, None
        if on_conflict == OnConflict.NEW_VERSION:
            if clash.kind != Kind.FILE:
                raise AlreadyExists(f"{name!r} is a folder; a new version needs a file")
            return name, clash
        return await place(uow, parent, name, on_conflict), None

    async def upload_inline(
        self,
        caller: str,
        parent_id: str,
        name: str,
        content: bytes,
        size: int,
        sha256: str,
        content_type: str,
        relative_path: str = "",
        on_conflict: OnConflict = OnConflict.FAIL,
        *,
        link_parent: Node | None = None,
        drop: DropLimits | None = None,
    ) -> tuple[Upload, Node | None]:
        """A small file in one call: checked, scanned, written as a whole blob and committed in one transaction
        (quota, node, version, and the upload's row, already COMPLETED, so GetUpload answers for it like for any
        upload until it expires) — no lease, nothing resumable, since nothing is left to resume.
        Content that is refused (checksum, virus) or cannot be scanned here takes the resumable path, so refusals
        look the same whichever way a file came (a FAILED upload with its reason, the event recorded)."""
        if len(content) > self.limits.inline_upload_bytes:
            raise TooLarge(
                f"inline content of {len(content)} bytes exceeds storage_inline_upload_bytes "
                f"({self.limits.inline_upload_bytes}); upload it in chunks instead",
                limit="storage_inline_upload_bytes",
            )
        if size != len(content):
            raise InvalidArgument("size", f"must equal the inline content's length ({len(content)})")
        args = (
            caller,
            parent_id,
            name,
            content,
            size,
            sha256,
            content_type,
            relative_path,
            on_conflict,
            link_parent,
            drop,
        )
        name, folders = _target(name, relative_path, link_parent)
        declared = domain.validate_sha256(sha256)
        content_type = domain.validate_content_type(content_type)
        digest = await _sha256(content)
        if (declared and digest != declared) or not await self._clean(content):
            return await self._upload_resumably(*args)
        if folders:
            parent_id = await self.tree.ensure_folders(caller, parent_id, folders)
        upload_id = str(uuid.uuid4())
        blob_id = domain.upload_blob_id(upload_id)
        # The blob is durable before the transaction begins: no row ever names a blob that is not, and no lock
        # (SQLite's one writer, a PostgreSQL quota row) is held while the disk works, so concurrent uploads' writes
        # and fsyncs overlap instead of queueing behind one another's.
        written = asyncio.ensure_future(self.blobs.put(upload_id, blob_id, content))
        grouped: asyncio.Future[tuple[Upload, Node]] | None = None
        try:
            if batchable(link_parent, on_conflict):
                await written
                item = SmallFile(
                    caller=caller,
                    parent_id=parent_id,
                    name=name,
                    size=size,
                    sha256=digest,
                    content_type=content_type,
                    upload_id=upload_id,
                )
                grouped = self._small_files().submit(item)
                upload, node = await asyncio.shield(grouped)
                return upload, node
            for attempt in range(3):
                try:
                    upload, node, pruned = await self._commit_inline(
                        caller,
                        parent_id,
                        name,
                        size,
                        digest,
                        content_type,
                        on_conflict,
                        upload_id,
                        link_parent,
                        written,
                        drop,
                    )
                    break
                except AlreadyExists:
                    # FAIL: the answer. RENAME / NEW_VERSION: someone took the name meanwhile; look again.
                    if on_conflict == OnConflict.FAIL or attempt == 2:
                        raise
        except BaseException:
            with contextlib.suppress(BaseException):
                await written  # let the write finish before its file goes (a half-written one is no one's)
            if grouped is not None and not grouped.done():
                with contextlib.suppress(BaseException):  # the caller went away: the batch still decides
                    await asyncio.shield(grouped)
            if grouped is None or (grouped.done() and not grouped.cancelled() and grouped.exception() is not None):
                await self.blobs.delete(blob_id)  # refused: no row names it (unknown outcome: fsck's orphan)
            raise
        await delete_blobs(self.blobs, pruned)
        return upload, node

    def _small_files(self) -> SmallFileCommits:
        """The group commit of new small files (storage_svc/usecases/smallfiles.py), made on first use."""
        if self._group is None:
            self._group = SmallFileCommits(
                uow=self.uow,
                default_quota_bytes=self.limits.default_quota_bytes,
                alone=self._commit_alone,
                make=self._small_file_rows,
                record=lambda uow, item, node: _uploaded(uow, item.caller, node, item.size, item.sha256),
            )
        return self._group

    async def _commit_alone(self, item: SmallFile) -> tuple[Upload, Node]:
        upload, node, _ = await self._commit_inline(
            item.caller,
            item.parent_id,
            item.name,
            item.size,
            item.sha256,
            item.content_type,
            OnConflict.FAIL,
            item.upload_id,
            None,
            None,
        )
        return upload, node

    def _small_file_rows(self, item: SmallFile, folder: Node) -> tuple[Upload, Node, Version]:
        """A new small file's rows in `folder`: the file, its first version, its COMPLETED upload."""
        now = self.clock.now()
        blob_id = domain.upload_blob_id(item.upload_id)
        node, version = _new_file(
            folder.owner_id, folder.id, item.name, item.size, item.sha256, item.content_type, blob_id, now
        )
        return _completed(item.caller, item.upload_id, node, OnConflict.FAIL, None, now, self.limits), node, version

    async def _clean(self, content: bytes) -> bool:
        """Scanned in memory before anything is written; False: take the resumable path, which records the
        refusal (infected, or over the scanner's limit under the configured policy). Scanner down → Unavailable."""

        async def whole() -> AsyncIterator[bytes]:
            yield content

        try:
            return (await self.scanner.scan(whole(), len(content))).clean
        except ScanLimitExceeded:
            return False

    async def _commit_inline(
        self,
        caller: str,
        parent_id: str,
        name: str,
        size: int,
        digest: str,
        content_type: str,
        on_conflict: OnConflict,
        upload_id: str,
        link_parent: Node | None,
        written: Awaitable[None] | None,
        drop: DropLimits | None = None,
    ) -> tuple[Upload, Node, list[Version]]:
        """One transaction: place the name, charge the quota, add the file (or a version of it) and the COMPLETED
        upload; it begins once `written` (the blob) is done."""
        blob_id = domain.upload_blob_id(upload_id)
        if written is not None:
            await written
        async with self.uow() as uow:
            parent = await self._upload_parent(uow, caller, parent_id, link_parent)
            owner = parent.owner_id
            target: Node | None = None
            if on_conflict != OnConflict.FAIL:  # FAIL: the unique index answers, without a query first
                name, target = await self._upload_name(uow, parent, name, on_conflict)
            await self._take_link_drop(uow, caller, size, link_parent, drop)
            if not await uow.quotas.consume(owner, size, self.limits.default_quota_bytes):
                raise quota_exceeded(await uow.quotas.get(owner, self.limits.default_quota_bytes), size)
            now = self.clock.now()
            pruned: list[Version] = []
            if target is not None:
                node, pruned = await self.tree.add_version(uow, target, blob_id, size, digest, content_type, now)
            else:
                node, version = _new_file(owner, parent.id, name, size, digest, content_type, blob_id, now)
                try:
                    await uow.nodes.add_file(node, version)
                except AlreadyExists:
                    raise AlreadyExists(f"an entry named {name!r} already exists in this folder") from None
            upload = _completed(caller, upload_id, node, on_conflict, target, now, self.limits)
            await uow.uploads.add(upload)
            _uploaded(uow, caller, node, size, digest)
            await uow.commit()
        return upload, node, pruned

    async def _upload_resumably(
        self,
        caller: str,
        parent_id: str,
        name: str,
        content: bytes,
        size: int,
        sha256: str,
        content_type: str,
        relative_path: str,
        on_conflict: OnConflict,
        link_parent: Node | None,
        drop: DropLimits | None = None,
    ) -> tuple[Upload, Node | None]:
        """Create, write, finish: the three-call path in one (content that is refused ends as a FAILED upload)."""
        upload = await self.create_upload(
            caller,
            parent_id,
            name,
            size,
            sha256,
            content_type,
            relative_path=relative_path,
            on_conflict=on_conflict,
            link_parent=link_parent,
            drop=drop,
        )
        if content:
            await self.write_chunk(caller, upload.id, 0, content)
        return await self.finish_upload(caller, upload.id)

    async def find(self, uow: UnitOfWork, caller: str, upload_id: str) -> Upload:
        """The upload if `caller` may write to, finish or abort it: uploads are private to their creator (another
        caller sees the same NotFound as for a missing id), and an editor's share must still allow writing."""
        upload = await uow.uploads.get(upload_id) if len(upload_id) <= 64 else None
        if upload is None:
            raise NotFound(f"upload {upload_id} not found")
        await self.check_caller(uow, caller, upload)
        return upload

    async def check_caller(self, uow: UnitOfWork, caller: str, upload: Upload) -> None:
        """`find`'s checks on an upload already read."""
        if upload.creator != caller:
            raise NotFound(f"upload {upload.id} not found")
        # An editor writing into someone's tree: still allowed there? (A revoked share stops the upload.)
        editor = caller != upload.owner_id and not caller.startswith(LINK_CREATOR)
        if editor and not await self.access.still_allowed(uow, upload.parent_id, upload.owner_id, "write"):
            raise NotFound(f"upload {upload.id} not found")

    async def get_upload(self, caller: str, upload_id: str) -> tuple[Upload, Node | None]:
        async with self.uow(read_only=True) as uow:
            upload = await self.find(uow, caller, upload_id)
            node = await uow.nodes.get(upload.node_id) if upload.node_id else None
        if upload.state == UploadState.FINISHING and self.finisher_lost(upload):
            await self.resume_finish(upload)  # the client polling it is what moves it on: no wait for housekeeping
        return upload, node

    def finisher_lost(self, upload: Upload) -> bool:
        """A FINISHING upload nobody finishes: no hold, a lapsed one, or one whose process ended or gave it up."""
        now = self.clock.now()
        return (
            not upload.writer
            or upload.writer_until is None
            or upload.writer_until < now
            or self.holders.gone(upload.writer)
        )

    async def resume_finish(self, upload: Upload) -> bool:
        """Take over a finish whose finisher is lost and run it in the background; False if another took it."""
        token = self.holders.token()
        now = self.clock.now()
        async with self.uow() as uow:
            if not await uow.uploads.acquire(
                upload.id, token, now + LEASE, now, UploadState.FINISHING
            ) and not await self.take_over(uow, upload, token, now, UploadState.FINISHING):
                return False
            await uow.commit()
        self.finish_in_background(upload, token)
        return True

    async def write_chunk(self, caller: str, upload_id: str, offset: int, data: bytes) -> int:
        """Append one chunk at `offset` (must equal the committed size); durable before it returns.

        Two short transactions: one takes the hold (and reads the upload), the other records the new committed size
        and lets the hold go, after the bytes are fsynced. A small upload's whole content in one chunk takes one
        (`_write_whole`)."""
        if offset == 0 and 0 < len(data) <= self.limits.small_upload_bytes:
            whole = await self._write_whole(caller, upload_id, data)
            if whole is not None:
                return whole
        async with self.writer(caller, upload_id) as writer:
            await writer.open(offset)
            await writer.write(data)
            return await writer.flush(release=True)

    async def _write_whole(self, caller: str, upload_id: str, data: bytes) -> int | None:
        """A small upload's whole content in one chunk (issue 15 item 3): hashed and scanned in memory, written
        once as the file's final blob, then one short transaction takes the hold, records the file (or its new
        version), settles the reservation and completes the upload, so FinishUpload only reads. No staging file,
        no journal, nothing written twice; the committed size it answers is durable (the blob was, before the
        transaction began; a crash before the commit leaves only an unnamed blob, fsck's orphan).

        None: the chunk takes the resumable path, which gives everything else its usual answer (a wrong offset,
        another writer's hold, content that finishing refuses: a checksum, a virus, the folder gone). The blob has
        an id of its own, not the upload's: of two such chunks racing, the one whose transaction commits wins and
        the other deletes its own blob, never the winner's."""
        async with self.uow(read_only=True) as uow:
            upload = await self.find(uow, caller, upload_id)
        if upload.state != UploadState.OPEN or upload.committed_size != 0 or upload.size != len(data):
            return None
        if not self._small(upload.size):
            return None
        upload.check_chunk(0, len(data), self.limits.max_chunk_bytes)
        digest = await _sha256(data)
        try:
            if (upload.sha256 and digest != upload.sha256) or not await self._clean(data):
                return None
        except Unavailable:
            return None  # scanner down: staged as before; finishing says so (fail closed)
        key = str(uuid.uuid4())
        blob_id = domain.upload_blob_id(key)
        await self.blobs.put(key, blob_id, data)
        token = self.holders.token()
        committing = False
        try:
            async with self.uow() as uow:
                now = self.clock.now()
                claimed = await uow.uploads.claim(upload_id, token, now + LEASE, now)
                if claimed is None or claimed.committed_size != 0 or claimed.size != len(data):
                    raise _Resumable
                # Quota row, then folder: the lock order of every other writer (see `_complete`).
                await uow.quotas.settle(claimed.owner_id, reserved=-claimed.size, used=claimed.size)
                node, pruned = await self._record_file(uow, claimed, blob_id, digest, now)
                expires = now + self.limits.upload_expiry
                await uow.uploads.advance(upload_id, token, claimed.size, now, expires, release=True)
                await uow.uploads.set_state(upload_id, UploadState.COMPLETED, node_id=node.id)
                _uploaded(uow, claimed.creator, node, claimed.size, digest)
                committing = True
                await uow.commit()
        except BaseException as exc:
            if committing:  # the commit's outcome is unknown: the blob stays (unnamed, it is fsck's orphan)
                raise
            await asyncio.shield(self.blobs.delete(blob_id))  # its own id: nobody else's content
            if isinstance(exc, _Resumable | ScanRefused) or (
                isinstance(exc, DomainError) and not isinstance(exc, Unavailable | DiskFull)
            ):
                return None  # the resumable path answers it as it always did (a name taken meanwhile: FAILED)
            raise
        self.hashes.forget(upload_id)
        await delete_blobs(self.blobs, pruned)
        return len(data)

    def writer(self, caller: str, upload_id: str) -> UploadWriter:
        """A writer for a stream of chunks: `open` it at the committed size, `write`, `flush`, and `close` it
        (or use it as `async with`)."""
        return UploadWriter(self, caller, upload_id)

    async def take_over(
        self, uow: UnitOfWork, upload: Upload, token: str, now: datetime, state: UploadState
    ) -> Upload | None:
        """The lease of `upload` for `token` if its holder's process is provably gone (killed, crashed: nobody
        writes any more), instead of waiting for the lease to lapse; None if it lives (or cannot be checked)."""
        if not upload.writer or not self.holders.gone(upload.writer):
            return None
        taken = await uow.uploads.take_over(upload.id, upload.writer, token, now + LEASE, state)
        if taken is not None:
            log.info("upload %s: its holder's process is gone; lease taken over", upload.id)
        return taken

    async def finish_upload(self, caller: str, upload_id: str) -> tuple[Upload, Node | None]:
        if self.limits.small_upload_bytes:
            # A small upload's whole-file chunk completed it already (`_write_whole`): answered from a read, without
            # a write transaction (on SQLite, without queueing for its one writer).
            async with self.uow(read_only=True) as uow:
                upload = await self.find(uow, caller, upload_id)
                if upload.finished:
                    node = await uow.nodes.get(upload.node_id) if upload.node_id else None
                    return upload, node
        token = self.holders.token()
        async with self.uow() as uow:
            upload = await self.find(uow, caller, upload_id)
            if upload.finished:
                node = await uow.nodes.get(upload.node_id) if upload.node_id else None
                return upload, node  # finishing twice answers the same
            upload.check_finish()
            now = self.clock.now()
            if not await uow.uploads.acquire(
                upload_id, token, now + LEASE, now, UploadState.FINISHING
            ) and not await self.take_over(uow, upload, token, now, UploadState.FINISHING):
                if upload.state == UploadState.FINISHING:
                    return upload, None  # someone is finishing it: poll
                raise upload.held(now, LEASE)
            await uow.commit()
        upload = replace(upload, state=UploadState.FINISHING)
        if upload.size <= self.limits.inline_finish_bytes:
            return await self._complete(upload, token, raise_unavailable=True)
        self.finish_in_background(upload, token)
        return upload, None

    def finish_in_background(self, upload: Upload, token: str) -> None:
        """Finish an upload held for finishing (`token`) in a task of its own; clients poll GetUpload."""
        task = asyncio.create_task(self._complete_logged(upload, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _complete_logged(self, upload: Upload, token: str) -> None:
        try:
            await self._complete(upload, token, raise_unavailable=False)
        except Exception:
            log.exception("finishing upload failed", extra={"upload_id": upload.id})

    async def _verify(self, upload: Upload) -> str:
        """SHA-256 and the virus scan; returns the digest. The hash was mostly computed as the bytes arrived: with
        the whole of it cached and scanning off, nothing is read; with scanning on, the scan is the one pass over
        the bytes; otherwise that pass hashes only what the cached state lacks (bytes another replica wrote).

        Scanner unreachable → Unavailable (fail closed: never treated as clean). Content beyond the scanner's
        limit follows `scan_oversize`: "refuse" (default) or "allow-unscanned" (logged)."""
        session = None
        if self.scanner.enabled:
            try:
                session = await self.scanner.open(upload.size)
            except ScanLimitExceeded as exc:
                if self.limits.scan_oversize != "allow-unscanned":
                    raise ScanRefused(
                        f"file of {upload.size} bytes is larger than the virus scanner's limit of {exc.limit_bytes} "
                        "bytes (storage_clamd_stream_max_bytes); it was refused unscanned"
                    ) from None
                log.warning("stored unscanned: over the scanner's limit", extra={"upload_id": upload.id})
        known = self.hashes.get(upload.id)
        have, h = known if known is not None and known[0] <= upload.size else (0, hashlib.sha256())
        start = 0 if session is not None else have
        try:
            if start < upload.size:
                pos = start
                async for block in self._staged(upload, start):
                    end = pos + len(block)
                    if end > have:  # bytes the cached state lacks
                        await hashing.update(h, memoryview(block)[max(0, have - pos) :])
                    if session is not None:
                        await session.feed(block)
                    pos = end
            digest = h.hexdigest()
            if upload.sha256 and digest != upload.sha256:
                raise ScanRefused(f"content SHA-256 is {digest}, not the declared {upload.sha256}; upload it again")
            if session is not None:
                verdict = await session.finish()
                if not verdict.clean:
                    await self.events.record(
                        "storage.infected",
                        actor=upload.creator,
                        subject=upload.owner_id,
                        details={
                            "upload_id": upload.id,
                            "name": upload.name,
                            "signature": verdict.signature or "unknown",
                            "size": str(upload.size),
                        },
                    )
                    raise ScanRefused(f"virus found: {verdict.signature}; the content was destroyed")
        except ScanLimitExceeded as exc:
            raise ScanRefused(f"the virus scanner could not scan all of this file ({exc.message}); refused") from None
        finally:
            if session is not None:
                await session.close()
        return digest

    async def _staged(self, upload: Upload, start: int) -> AsyncIterator[bytes]:
        """The upload's bytes from `start`: staged, or already in its blob (a finish that crashed after the rename)."""
        if await self._committed_before(upload):
            source = self.blobs.read(upload.blob_id, start, upload.size - start, self.limits.chunk_bytes)
        else:
            source = self.blobs.read_staging(upload.id, upload.size, self.limits.chunk_bytes, start=start)
        async for block in source:
            yield block

    async def _committed_before(self, upload: Upload) -> bool:
        """A previous finish renamed staging into the blob, then crashed before its database commit."""
        try:
            return await self.blobs.verify(upload.blob_id) == upload.size
        except DomainError:
            return False

    async def _complete(self, upload: Upload, token: str, *, raise_unavailable: bool) -> tuple[Upload, Node | None]:
        # Derived from the upload: a finish retried after a crash between rename and commit finds the same blob.
        blob_id = upload.blob_id
        try:
            digest = await self._verify(upload)
            if upload.size == 0:  # nothing to commit: a small upload has no staging file (one made before has none)
                await self.blobs.delete_staging(upload.id)
                await self.blobs.put(upload.id, blob_id, b"")
            else:
                await self.blobs.commit_staging(upload.id, blob_id, upload.size)
        except ScanRefused as refused:
            await self._fail(upload, str(refused))
            return replace(upload, state=UploadState.FAILED, failure=str(refused)), None
        except (Unavailable, DiskFull) as exc:
            # Back to OPEN: finishing can be retried once the scanner is back, or space is freed (the staged bytes
            # are as they were: a final segment the full disk tore was cut). If the database cannot record even
            # that (its disk is full too), the upload stays FINISHING until the hold lapses, then finishes again.
            try:
                async with self.uow() as uow:
                    await uow.uploads.set_state(upload.id, UploadState.OPEN, failure=exc.message)
                    await uow.uploads.release(upload.id, token)
                    await uow.commit()
            except Exception:
                # The hold cannot be let go (the database is away): give its token up, so the next GetUpload or
                # housekeeping round takes the finish over at once instead of when the hold lapses.
                self.holders.abandon(token)
                if not isinstance(exc, DiskFull):
                    raise
                log.warning("could not reopen an upload on a full disk", extra={"upload_id": upload.id})
            if raise_unavailable:
                raise
            return replace(upload, state=UploadState.OPEN, failure=exc.message), None
        now = self.clock.now()
        pruned: list[Version] = []
        try:
            async with self.uow() as uow:
                # The quota row first, then the folder (its revision row, bumped by the node's trigger): the order
                # the small-file group commit takes them in, or the two deadlock on PostgreSQL.
                await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=upload.size)
                node, pruned = await self._record_file(uow, upload, blob_id, digest, now)
                await uow.uploads.set_state(upload.id, UploadState.COMPLETED, node_id=node.id)
                await uow.uploads.release(upload.id, token)
                _uploaded(uow, upload.creator, node, upload.size, digest)
                await uow.commit()
        except ScanRefused as refused:
            await self.blobs.delete(blob_id)
            await self._fail(upload, str(refused), staged=False)
            return replace(upload, state=UploadState.FAILED, failure=str(refused)), None
        except DiskFull:
            # The database could not record the file (its disk is full): the blob stays, and finishing again once
            # space is freed (after the hold lapses) finds it committed before (`_committed_before`) and records it.
            raise
        except DomainError as refused:
            if not isinstance(refused, Unavailable):
                await self.blobs.delete(blob_id)  # refused before anything was committed
                raise
            self.holders.abandon(token)  # as below
            raise
        except Exception:
            # The database went away (or its answer did): the commit may or may not have happened, and the staged
            # bytes now live only in the blob. Keep it (a retried finish finds it: `_committed_before`) and give the
            # hold up, so the client's next GetUpload or FinishUpload takes the finish over at once. Deleting it here
            # lost acknowledged uploads when PostgreSQL restarted mid-finish (tests/e2e/test_faults.py).
            self.holders.abandon(token)
            raise
        self.hashes.forget(upload.id)
        await delete_blobs(self.blobs, pruned)
        return replace(upload, state=UploadState.COMPLETED, node_id=node.id), node

    async def _record_file(
        self, uow: UnitOfWork, upload: Upload, blob_id: str, digest: str, now: datetime
    ) -> tuple[Node, list[Version]]:
        """The file an upload becomes, or the new version of one, in `uow`; the versions pruned by it. ScanRefused
        (the content is refused) when the folder was deleted or the name taken while uploading."""
        pruned: list[Version] = []
        parent = await uow.nodes.get(upload.parent_id)
        if parent is None:
            raise ScanRefused("the target folder was deleted while uploading")
        target = await uow.nodes.get(upload.target_node_id) if upload.target_node_id else None
        if target is not None:
            return await self.tree.add_version(uow, target, blob_id, upload.size, digest, upload.content_type, now)
        try:
            name = await place(uow, parent, upload.name, upload.on_conflict)
        except AlreadyExists:
            clash = await uow.nodes.child_named(parent.id, domain.name_key(upload.name))
            if upload.on_conflict != OnConflict.NEW_VERSION or clash is None or clash.kind != Kind.FILE:
                raise ScanRefused(f"an entry named {upload.name!r} appeared in the folder meanwhile") from None
            return await self.tree.add_version(uow, clash, blob_id, upload.size, digest, upload.content_type, now)
        node, version = _new_file(
            upload.owner_id, parent.id, name, upload.size, digest, upload.content_type, blob_id, now
        )
        await uow.nodes.add(node)
        await uow.versions.add(version)
        return node, pruned

    async def _fail(self, upload: Upload, why: str, *, staged: bool = True) -> None:
        """Refuse the content: bytes destroyed, reservation released, the reason kept for the client."""
        self.hashes.forget(upload.id)
        if staged:
            await self.blobs.delete_staging(upload.id)
        async with self.uow() as uow:
            await uow.uploads.set_state(upload.id, UploadState.FAILED, failure=why)
            await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=0)
            await uow.commit()
        log.warning("upload refused", extra={"upload_id": upload.id, "reason": why})

    async def abort_upload(self, caller: str, upload_id: str) -> None:
        async with self.uow() as uow:
            upload = await self.find(uow, caller, upload_id)
            if upload.state == UploadState.COMPLETED:
                raise FailedPrecondition("upload is already finished; delete the file instead")
            if upload.state == UploadState.FINISHING:
                raise FailedPrecondition("upload is being finished; wait for it, then delete the file if needed")
            await uow.uploads.delete(upload_id)
            if upload.state == UploadState.OPEN:
                await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=0)
            await uow.commit()
        self.hashes.forget(upload_id)
        await self.blobs.delete_staging(upload_id)


def _target(name: str, relative_path: str, link_parent: Node | None) -> tuple[str, list[str]]:
    """An upload's validated file name and the folders to create first (a folder upload's relative path)."""
    if relative_path and link_parent is not None:
        raise InvalidArgument("relative_path", "file drops take a name, not a path")
    if relative_path:
        parts = domain.split_relative_path(relative_path)
        return parts[-1], parts[:-1]
    return domain.validate_name(name), []


def _completed(
    caller: str, upload_id: str, node: Node, on_conflict: OnConflict, target: Node | None, now: datetime, limits: Limits
) -> Upload:
    """The COMPLETED upload row of a single-call upload (GetUpload answers for it like for any upload)."""
    return Upload(
        id=upload_id,
        owner_id=node.owner_id,
        parent_id=node.parent_id or "",
        name=node.name,
        size=node.size,
        sha256=node.sha256,
        content_type=node.content_type,
        committed_size=node.size,
        state=UploadState.COMPLETED,
        created_at=now,
        expires_at=now + limits.upload_expiry,
        node_id=node.id,
        on_conflict=on_conflict,
        target_node_id=target.id if target is not None else "",
        creator_id=caller,
    )


def _uploaded(uow: UnitOfWork, actor: str, node: Node, size: int, digest: str) -> None:
    uow.events.record(
        "storage.upload",
        actor=actor,
        subject=node.owner_id,
        details={"node_id": node.id, "name": node.name, "size": str(size), "sha256": digest},
    )


def _new_file(
    owner_id: str, parent_id: str, name: str, size: int, digest: str, content_type: str, blob_id: str, now: datetime
) -> tuple[Node, Version]:
    """A new file node and its first version."""
    node = Node(
        id=str(uuid.uuid4()),
        owner_id=owner_id,
        parent_id=parent_id,
        name=name,
        kind=Kind.FILE,
        size=size,
        created_at=now,
        modified_at=now,
        content_type=content_type,
        sha256=digest,
        blob_id=blob_id,
    )
    version = Version(str(uuid.uuid4()), node.id, owner_id, 1, blob_id, size, digest, content_type, now)
    node.version_id = version.id
    return node, version


async def _sha256(data: bytes) -> str:
    """Small content on the loop (a thread hop costs more than hashing 64 KiB), larger in a thread."""
    if len(data) <= 64 * 1024:
        return hashlib.sha256(data).hexdigest()
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())


class UploadWriter:
    """One writer's hold on an upload: a lease in the database, so two writers (even on two replicas) never
    interleave; bytes are acknowledged only once fsynced and recorded as committed.

    Pipelined: one blob-store write (encrypt + write, in a thread) and one flush (fsync + record) may be in flight
    while the caller receives the next message. Each starts only after the one before it finished, so the bytes
    stay in order and what a flush records is what was written before it started."""

    def __init__(self, uploads: Uploads, caller: str, upload_id: str) -> None:
        self.uploads = uploads
        self.caller = caller
        self.upload_id = upload_id
        self.token = uploads.holders.token()
        self.upload: Upload | None = None
        self.lease_until = self.uploads.clock.now()
        self.offset = 0  # next byte to write
        self.committed = 0  # durable and recorded
        self._held = bytearray()  # small messages gathered into one blob-store write (ends at self.offset)
        self._writing: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[int] | None = None
        self._flushing_to = 0  # the offset the flush in flight makes durable
        self._acked = 0
        self._released = False  # the last flush let go of the hold
        self._hash: RunningHash | None = None  # SHA-256 of the bytes up to where the writes handed out so far end
        self._fresh = False  # a small upload at offset 0: its staging file is made before the first write

    async def __aenter__(self) -> UploadWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self, offset: int) -> int:
        """Take the hold on the upload, going on at `offset` (its committed size); returns that offset."""
        async with self.uploads.uow() as uow:
            now = self.uploads.clock.now()
            # One statement takes the hold and reads the upload; a check failing below rolls the hold back.
            claimed = None
            if len(self.upload_id) <= 64:
                claimed = await uow.uploads.claim(self.upload_id, self.token, now + LEASE, now)
            if claimed is None:  # why not: missing, not the caller's, not OPEN, another writer's (in that order)
                upload = await self.uploads.find(uow, self.caller, self.upload_id)
                upload.check_resume(offset)
                # Held: by a live writer, or by one whose process died (its lease is taken over at once).
                claimed = await self.uploads.take_over(uow, upload, self.token, now, UploadState.OPEN)
                if claimed is None:
                    raise upload.held(now, LEASE)
            upload = claimed
            await self.uploads.check_caller(uow, self.caller, upload)
            upload.check_resume(offset)
            await uow.commit()
        self.upload = upload
        self._fresh = offset == 0 and self.uploads._small(upload.size)
        self.offset = self.committed = self._flushing_to = self._acked = offset
        self._hash = await hashing.resume(
            self.uploads.hashes, self.uploads.blobs, self.upload_id, offset, self.uploads.limits.chunk_bytes
        )
        self.lease_until = self.uploads.clock.now() + LEASE
        return offset

    async def write(self, data: bytes, offset: int | None = None) -> None:
        """Take the next bytes (`offset`, if given, must be where the bytes received so far end); they are
        acknowledged only once a flush made them durable."""
        if self.upload is None or self._released:
            raise RuntimeError("open the writer before writing (and write nothing after a releasing flush)")
        if offset is not None and offset != self.offset:
            raise domain.offset_mismatch(offset, self.offset)
        self.upload.check_chunk(self.offset, len(data), self.uploads.limits.max_chunk_bytes)
        if self._flushing is not None and self._flushing.done():
            await self.settle()  # its failure (a lost hold, an I/O error) stops the writer here
        if self.uploads.clock.now() > self.lease_until - LEASE / 4:
            await self.flush(renew=True)  # renews the lease (or finds it lost) before touching the bytes
        if not self._held and len(data) >= WRITE_UNIT:
            await self._issue(self.offset, data)
        else:
            # REST bodies arrive as whatever pieces Envoy read (often 64 KiB): one write per piece would cost a
            # thread hop each. Nothing held is acknowledged before a flush writes it.
            self._held += data
            if len(self._held) >= WRITE_UNIT:
                await self._write_held(self.offset + len(data))
        self.offset += len(data)

    async def _issue(self, offset: int, data: bytes | bytearray) -> None:
        await self._settle_write()
        self._writing = asyncio.ensure_future(self._write(offset, data))

    async def _write(self, offset: int, data: bytes | bytearray) -> None:
        """Encrypt and write the bytes while hashing them (each in a thread of its own: two cores busy)."""
        if self._fresh:
            # Created with nothing on disk (Uploads._small), or left by a writer that acknowledged nothing: afresh.
            self._fresh = False
            await self.uploads.blobs.delete_staging(self.upload_id)
            await self.uploads.blobs.create_staging(self.upload_id)
        running = self._hash
        hashed = asyncio.ensure_future(running.update(data)) if running is not None else None
        try:
            await self.uploads.blobs.write_staging(self.upload_id, offset, data)
        except BaseException:
            if running is not None:
                running.state = None  # what was hashed is no longer what is written: never cache it
            raise
        finally:
            if hashed is not None:
                await hashed

    async def _settle_write(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def settle(self) -> None:
        """Wait for the flush in flight (raising its failure)."""
        if self._flushing is not None:
            flushing, self._flushing = self._flushing, None
            await flushing

    async def _write_held(self, end: int) -> None:
        held, self._held = self._held, bytearray()
        if held:
            await self._issue(end - len(held), held)

    @property
    def unflushed(self) -> int:
        """Bytes received that no flush (finished or in flight) covers yet."""
        return self.offset - max(self.committed, self._flushing_to)

    def _hashed(self, offset: int) -> HashState | None:
        """A copy of the hash state if it covers exactly the first `offset` bytes (take it once they are written)."""
        running = self._hash
        return running.snapshot() if running is not None and running.offset == offset else None

    async def _record(self, offset: int, hashed: HashState | None, *, release: bool = False) -> int:
        """Make the bytes up to `offset` durable and record them as committed; then `hashed` (their SHA-256 state)
        may go into the cache."""
        if not self._fresh:  # else nothing was written yet (no staging file either)
            await self.uploads.blobs.sync_staging(self.upload_id)
        async with self.uploads.uow() as uow:
            now = self.uploads.clock.now()
            expires = now + self.uploads.limits.upload_expiry  # the expiry counts from the last activity
            if not await uow.uploads.advance(self.upload_id, self.token, offset, now + LEASE, expires, release=release):
                raise Aborted(
                    "this writer lost its hold on the upload (idle too long); resume it", retry_after_seconds=0
                )
            await uow.commit()
            if hashed is not None:  # before this task yields: a writer taking the freed hold here finds it
                self.uploads.hashes.put(self.upload_id, offset, hashed)
        self.lease_until = self.uploads.clock.now() + LEASE
        self.committed = offset
        self._released = release
        return offset

    async def flush_soon(self) -> None:
        """Start making what was received durable, without waiting for the disk: the caller goes on receiving.
        One flush at a time: this waits for the one before (and raises its failure)."""
        await self.settle()
        if self.offset == self.committed:
            return
        offset = await self._all_written()
        self._flushing = asyncio.ensure_future(self._record(offset, self._hashed(offset)))

    @property
    def flushing(self) -> asyncio.Task[int] | None:
        """The flush in flight, if one is."""
        return self._flushing

    def acknowledge(self) -> int | None:
        """The committed size, once, each time a flush in the background has moved it."""
        if self.committed > self._acked:
            self._acked = self.committed
            return self.committed
        return None

    async def flush(self, *, renew: bool = False, release: bool = False) -> int:
        """Make written bytes durable and record them (renewing the lease); returns the committed size.

        `release`: the last flush of this writer lets go of the hold in the same statement (no more writes; `close`
        then has nothing left to do in the database)."""
        await self.settle()
        if self.offset == self.committed and not renew:
            return self.committed
        offset = await self._all_written()
        self._acked = await self._record(offset, self._hashed(offset), release=release)
        return self.committed

    async def _all_written(self) -> int:
        """Everything received handed to the blob store and written; the offset a flush now covers.

        Bytes held in memory go to the staging file only under a hold known to be current: a writer that sat idle
        past its lease first renews it (or finds it lost), so it never writes over what a writer that took the upload
        over has written and acknowledged since (the staging file is rewritten from the offset a write starts at)."""
        if self._held and self.uploads.clock.now() > self.lease_until - LEASE / 4:
            await self._settle_write()
            await self._record(self.committed, None)
        await self._write_held(self.offset)
        await self._settle_write()
        self._flushing_to = self.offset
        return self.offset

    async def close(self) -> None:
        """Let go of the upload (also after a failed `open`, when nothing is held)."""
        # Work in flight finishes before the hold goes: the next writer must find the files as this one left them.
        with contextlib.suppress(Exception):
            await self._settle_write()
        with contextlib.suppress(Exception):
            await self.settle()
        if self.upload is not None and not self._released:
            try:
                async with self.uploads.uow() as uow:
                    await uow.uploads.release(self.upload_id, self.token)
                    await uow.commit()
            except BaseException:
                # The hold could not be let go (the database went away under it): nothing here writes with this
                # token any more, so the next writer takes the lease over at once instead of waiting for it to lapse.
                self.uploads.holders.abandon(self.token)
                raise
