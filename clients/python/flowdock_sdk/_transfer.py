"""Uploads and downloads over native gRPC: streaming, checksums, retries, resume state."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from flowdock.storage.v1 import storage_pb2
from flowdock_sdk._errors import (
    FlowDockError,
    IntegrityError,
    LocalFileError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    TransferInterrupted,
    Unavailable,
)
from flowdock_sdk._models import Node, TransferProgress
from flowdock_sdk._session import RpcSession

T = TypeVar("T")
READ = 1024 * 1024
# Files up to this size go in one call (CreateUpload with the content): one round trip and one server transaction
# instead of create, write and finish. Servers accept up to storage_inline_upload_bytes (4 MiB by default); a
# smaller server limit answers RESOURCE_EXHAUSTED naming it, and the file then goes the chunked way.
INLINE = 256 * 1024
LEASE_WAIT = 90.0  # a writer's lease on the server lasts 60 s when its connection vanished without a goodbye
_RETRYABLE = (Unavailable, TransferInterrupted)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * READ):
            digest.update(block)
    return digest.hexdigest()


class UploadState:
    """The local record of open uploads (JSON: key -> upload id, path, size, mtime, sha256, and the node once
    done), so a later run can resume them. In memory only when `path` is None."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mem: dict[str, dict[str, Any]] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return self._mem
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        if self.path is None:
            self._mem = data
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._load().get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        with self._lock:
            data = self._load()
            data[key] = entry
            self._save(data)

    def remove(self, keys: list[str]) -> None:
        with self._lock:
            data = self._load()
            if any(k in data for k in keys):
                for k in keys:
                    data.pop(k, None)
                self._save(data)

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._load())


@dataclass
class LocalFile:
    path: Path
    relative: str  # "photos/2024/a.jpg": the remote path below the destination folder
    size: int


@dataclass
class UploadPlan:
    source: Path
    files: list[LocalFile] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)


def plan_upload(source: Path, *, contents: bool = False) -> UploadPlan:
    """The files (and empty directories) to upload for a local file or tree; unreadable ones are errors now.

    Relative paths start with the directory's own name ("photos/a.jpg"), or below it with `contents` ("a.jpg")."""
    source = Path(os.path.abspath(source))  # "." and "dir/.." still get a name; symlinks are kept
    plan = UploadPlan(source)

    def add(path: Path, rel: str) -> None:
        if not os.access(path, os.R_OK):
            raise LocalFileError(f"{path}: permission denied (not readable)")
        plan.files.append(LocalFile(path, rel, path.stat().st_size))

    if not source.exists():
        raise LocalFileError(f"{source}: no such local file or directory")
    if source.is_file():
        add(source, source.name)
        return plan
    if not source.is_dir():
        raise LocalFileError(f"{source}: not a regular file or directory")
    base = source if contents else source.parent

    def fail(exc: OSError) -> None:
        raise LocalFileError(f"{exc.filename}: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(source, onerror=fail):
        dirnames.sort()
        here = Path(dirpath)
        if not os.access(here, os.R_OK | os.X_OK):
            raise LocalFileError(f"{here}: permission denied (not readable)")
        if not filenames and not dirnames and here != base:
            plan.empty_dirs.append(here.relative_to(base).as_posix())
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink() and not path.exists():
                continue  # a dangling link has no content to send
            if path.is_file():
                add(path, path.relative_to(base).as_posix())
    return plan


def _readable(path: Path) -> tuple[os.stat_result, str]:
    try:
        st = path.stat()
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise LocalFileError(f"{path}: {exc.strerror or exc}") from None
    return st, str(path.resolve())


class Uploader:
    """Uploads files into one destination folder for one `AsyncClient.upload` call."""

    def __init__(
        self,
        session: RpcSession,
        state: UploadState,
        folder_id: str,
        *,
        overwrite: bool,
        resume: bool,
        progress: Callable[[TransferProgress], None] | None,
    ) -> None:
        self.session = session
        self.state = state
        self.folder_id = folder_id
        self.on_conflict = storage_pb2.ON_CONFLICT_NEW_VERSION if overwrite else storage_pb2.ON_CONFLICT_FAIL
        self.resume = resume
        self.progress = progress or (lambda _p: None)

    async def get_upload(self, upload_id: str) -> storage_pb2.Upload:
        return await self.session.call(
            self.session.storage.GetUpload, storage_pb2.GetUploadRequest(upload_id=upload_id)
        )

    async def one(self, path: Path, relative: str) -> Node:
        """Upload one file (resuming its earlier upload when asked and it still matches the file)."""
        st, resolved = await asyncio.to_thread(_readable, path)
        key = f"{self.session.base_url}|{self.folder_id}|{relative}|{resolved}"
        entry = self.state.get(key)
        same = entry is not None and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        upload: storage_pb2.Upload | None = None
        resumed = 0
        if entry is not None and same and self.resume and entry.get("node_id"):
            # Uploaded by the interrupted run already: done, unless the file was deleted since (then anew).
            with contextlib.suppress(NotFound):
                req = storage_pb2.GetNodeRequest(node_id=str(entry["node_id"]))
                node = Node.from_pb(await self.session.call(self.session.storage.GetNode, req))
                self.progress(TransferProgress(relative, st.st_size, st.st_size, resumed_from=st.st_size))
                return node
        elif entry is not None and same and self.resume:
            with contextlib.suppress(NotFound):
                found = await self.get_upload(str(entry["upload_id"]))
                if found.state != storage_pb2.UPLOAD_STATE_FAILED:
                    upload, resumed = found, found.committed_size
        elif entry is not None and not entry.get("node_id"):
            with contextlib.suppress(FlowDockError):  # an abandoned earlier upload: release its reservation
                await self.session.call(
                    self.session.storage.AbortUpload, storage_pb2.AbortUploadRequest(upload_id=str(entry["upload_id"]))
                )
        if upload is None and 0 < st.st_size <= INLINE:  # (empty content reads as no content: create + finish)
            small = await self.small(path, relative, st.st_size)
            if small is not None:
                if entry is not None:
                    self.state.remove([key])
                return small
        if upload is None:
            if entry is not None and same:
                digest = entry["sha256"]
            else:
                self.progress(TransferProgress(relative, 0, st.st_size, hashing=True))
                digest = await asyncio.to_thread(sha256_file, path)
            content_type = mimetypes.guess_type(path.name)[0] or ""
            upload = await self.session.call(
                self.session.storage.CreateUpload,
                storage_pb2.CreateUploadRequest(
                    parent_id=self.folder_id,
                    relative_path=relative,
                    size=st.st_size,
                    sha256=digest,
                    content_type=content_type,
                    on_conflict=self.on_conflict,
                ),
            )
            entry = {
                "upload_id": upload.upload_id,
                "path": resolved,
                "relative_path": relative,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": digest,
                "server": self.session.base_url,
            }
            self.state.put(key, entry)
        assert entry is not None
        self.progress(TransferProgress(relative, upload.committed_size, st.st_size, resumed_from=resumed))
        done = await self.drive(upload, path, relative, resumed)
        if done.state == storage_pb2.UPLOAD_STATE_FAILED:
            self.state.remove([key])
            raise IntegrityError(f"{relative}: refused at finish: {done.failure}")
        self.state.put(key, {**entry, "node_id": done.node.id})
        return Node.from_pb(done.node)

    async def small(self, path: Path, relative: str, size: int) -> Node | None:
        """The whole file in one call; None if it changed size meanwhile or the server takes less inline."""
        self.progress(TransferProgress(relative, 0, size))
        data = await asyncio.to_thread(path.read_bytes)
        if len(data) != size:
            return None
        try:
            done = await self.session.call(
                self.session.storage.CreateUpload,
                storage_pb2.CreateUploadRequest(
                    parent_id=self.folder_id,
                    relative_path=relative,
                    size=size,
                    sha256=hashlib.sha256(data).hexdigest(),
                    content_type=mimetypes.guess_type(path.name)[0] or "",
                    on_conflict=self.on_conflict,
                    content=data,
                ),
            )
        except QuotaExceeded as exc:
            if exc.limit == "storage_inline_upload_bytes":
                return None
            raise
        if done.state == storage_pb2.UPLOAD_STATE_FAILED:
            raise IntegrityError(f"{relative}: refused at finish: {done.failure}")
        self.progress(TransferProgress(relative, size, size))
        return Node.from_pb(done.node)

    async def drive(self, upload: storage_pb2.Upload, path: Path, display: str, resumed: int) -> storage_pb2.Upload:
        """Send what the server lacks, finish, wait for COMPLETED/FAILED; retry dropped connections."""
        attempt = 0
        lease_deadline = 0.0
        up = upload
        while True:
            try:
                if attempt:
                    up = await self.get_upload(upload.upload_id)
                if up.state == storage_pb2.UPLOAD_STATE_OPEN:
                    if up.committed_size < up.size:
                        await self.stream(up, path, display, resumed)
                    up = await self.session.call(
                        self.session.storage.FinishUpload, storage_pb2.FinishUploadRequest(upload_id=upload.upload_id)
                    )
                pause = 0.05
                while up.state == storage_pb2.UPLOAD_STATE_FINISHING:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    up = await self.get_upload(upload.upload_id)
                return up
            except (RateLimited, TransferInterrupted) as exc:
                if exc.retry_after is None and isinstance(exc, TransferInterrupted):
                    attempt = await self._backoff(attempt, display, exc)
                    continue
                # The server said when: the lease of a writer that vanished (killed client, dropped connection)
                # lapses, or a rate limit passes. Waiting is bounded; a limit that waiting will not lift
                # (QuotaExceeded but not RateLimited, FailedPrecondition) is never retried.
                lease_deadline = lease_deadline or time.monotonic() + LEASE_WAIT
                if time.monotonic() > lease_deadline:
                    raise
                attempt = max(attempt, 1)
                await asyncio.sleep(min(max(exc.retry_after or 1.0, 0.5), LEASE_WAIT))
            except _RETRYABLE as exc:
                attempt = await self._backoff(attempt, display, exc)

    async def _backoff(self, attempt: int, display: str, exc: FlowDockError) -> int:
        """A dropped connection: wait longer each time, give up after `retries`."""
        attempt += 1
        if attempt > self.session.retries:
            raise TransferInterrupted(
                f"{display}: connection lost ({exc.message}); the upload is saved, resume it later"
            ) from None
        await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
        return attempt

    async def stream(self, up: storage_pb2.Upload, path: Path, display: str, resumed: int) -> int:
        """One UploadStream call from the committed offset to the end; returns the last acknowledged offset."""
        chunk = max(1, min(up.stream_chunk_size or up.chunk_size or READ, up.max_chunk_size or READ))
        size = up.size

        async def messages() -> AsyncIterator[storage_pb2.UploadStreamRequest]:
            pos = up.committed_size
            with open(path, "rb") as f:  # noqa: ASYNC230 (reads go through to_thread below)
                f.seek(pos)
                while pos < size:
                    data = await asyncio.to_thread(f.read, min(chunk, size - pos))
                    if not data:
                        raise IntegrityError(f"{path}: the file shrank while it was being uploaded")
                    yield storage_pb2.UploadStreamRequest(upload_id=up.upload_id, offset=pos, data=data)
                    pos += len(data)
                    self.progress(TransferProgress(display, pos, size, resumed_from=resumed))

        committed = up.committed_size
        async for ack in self.session.stream(self.session.storage.UploadStream, messages()):
            committed = ack.committed_size
        return committed


async def stream_download(
    session: RpcSession, file_id: str, offset: int = 0, length: int = 0, version: str = ""
) -> AsyncIterator[bytes]:
    req = storage_pb2.DownloadFileRequest(file_id=file_id, offset=offset, length=length, version=version)
    async for msg in session.stream(session.storage.DownloadFile, req):
        yield msg.data


def _write_hashed(f: BinaryIO, digest: Any, data: bytes) -> None:
    f.write(data)
    digest.update(data)  # hashlib lets go of the GIL for large buffers: this overlaps with receiving


def part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.flowdock-part")


async def download_file(
    session: RpcSession,
    node: Node,
    dest: Path,
    *,
    progress: Callable[[TransferProgress], None] | None = None,
    resume: bool = False,
) -> Path:
    """Write one file beside `dest` (`.NAME.flowdock-part`), check size and SHA-256, rename into place.

    Without `resume` nothing partial stays behind; with it, an interrupted part file is kept and a later call
    continues it (a part whose bytes turn out wrong is dropped)."""
    report = progress or (lambda _p: None)
    display = str(dest)
    tmp = part_path(dest)
    digest = hashlib.sha256()
    written = 0
    attempt = 0
    try:
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        if resume:
            written = await asyncio.to_thread(_hash_part, tmp, digest, node.size)
        flags = os.O_WRONLY | os.O_CREAT | (0 if written else os.O_TRUNC)
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.seek(written)
            report(TransferProgress(display, written, node.size, resumed_from=written))
            while True:
                try:
                    async for data in stream_download(session, node.id, offset=written):
                        await asyncio.to_thread(_write_hashed, f, digest, data)
                        written += len(data)
                        report(TransferProgress(display, written, node.size))
                    break
                except _RETRYABLE as exc:  # a dropped connection: continue from what arrived
                    attempt += 1
                    if attempt > session.retries:
                        raise TransferInterrupted(f"{display}: connection lost ({exc.message})") from None
                    await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
            f.flush()
            os.fsync(f.fileno())
        if written != node.size or (node.sha256 and digest.hexdigest() != node.sha256):
            raise IntegrityError(f"{display}: the downloaded bytes do not match the file's size and SHA-256")
        os.chmod(tmp, 0o666 & ~_UMASK)
        if node.modified is not None:
            stamp = node.modified.timestamp()
            os.utime(tmp, (stamp, stamp))
        os.replace(tmp, dest)
    except BaseException as exc:
        if not resume or isinstance(exc, IntegrityError):
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    return dest


def _hash_part(tmp: Path, digest: Any, size: int) -> int:
    """Feed an earlier part file into `digest`; its length (0 if there is none or it is longer than the file)."""
    try:
        if tmp.stat().st_size > size:
            return 0
        with open(tmp, "rb") as f:
            done = 0
            while block := f.read(4 * READ):
                digest.update(block)
                done += len(block)
            return done
    except FileNotFoundError:
        return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
