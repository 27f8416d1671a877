"""EncryptedBlobStore: the local-disk blob store with envelope encryption at rest (format: storage_svc.envelope).

Layout under the root (paths come from ids the service generates, never from names):

    staging/<upload id>         header + full segments of an upload in progress
    staging/<upload id>.tail    journal of its last, partial segment (two slots, written alternately)
    blobs/ab/cd/<blob id>       committed, immutable blobs: header + segments, the last one final

Writes are sequential appends. Full segments go to their place in the staging file as soon as they are
complete; the partial segment stays in memory until `sync_staging`, which fsyncs the staging file and then
writes the partial segment to the journal slot not holding the previous record and fsyncs it. Nothing that was
acknowledged is ever overwritten in place before another durable copy exists, so a crash at any moment (even
one tearing a write) keeps every byte up to the committed size. `commit_staging` writes only the final
segment (from the journal), fsyncs, drops the journal, renames into `blobs/` and fsyncs the directory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import hashlib
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowdock_kernel.errors import DataLoss, DiskFull, Unavailable
from storage_svc import envelope as env
from storage_svc.config import StorageConfig
from storage_svc.envelope import HEADER_SIZE, OVERHEAD, Header
from storage_svc.keyring import Keyring, MissingKek

KiB = 1024
DEFAULT_SEGMENT = 64 * KiB
_IO_TARGET = 1024 * KiB  # bytes encrypted or decrypted per system call batch
READ_AHEAD = 2  # units the kernel is asked to read ahead of a reader whose reads wait for the disk
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # a write refused for lack of space: DiskFull, not Unavailable
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_Stamp = tuple[int, int, int, int, int, int]
Frame = Callable[[int], bytes]  # the bytes put before a chunk of n bytes (e.g. a message header)

P = ParamSpec("P")
T = TypeVar("T")


def _check_id(value: str, min_length: int = 1) -> str:
    if len(value) < min_length or not _ID.match(value):
        raise ValueError(f"not a service-generated id: {value!r}")
    return value


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _ensure_dir(path: str) -> None:
    """mkdir -p whose new entries are durable: each directory created is fsynced into its parent."""
    if not path or os.path.isdir(path):
        return
    parent = os.path.dirname(path.rstrip("/")) or "."
    if parent != path:
        _ensure_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    _fsync_dir(parent)


def _fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pread_exact(fd: int, buf: memoryview, pos: int) -> int:
    """Fill `buf` from `pos`; returns the bytes read (fewer only at end of file)."""
    done = 0
    while done < len(buf):
        n = os.preadv(fd, [buf[done:]], pos + done)
        if n == 0:
            break
        done += n
    return done


def _pwrite_all(fd: int, data: memoryview | bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


class _Scratch(threading.local):
    def __init__(self) -> None:
        self.buf = bytearray()

    def get(self, size: int) -> memoryview:
        if len(self.buf) < size:
            self.buf = bytearray(size)
        return memoryview(self.buf)[:size]


@dataclass(eq=False)
class _Writer:
    """In-memory state of an upload being written by this process (recovered from disk when absent)."""

    header: Header
    aead: AESGCM
    next_offset: int
    tail: bytearray
    seq: int  # of the newest journal record
    main_dirty: bool = False
    tail_dirty: bool = False
    stamp: _Stamp = (0, 0, 0, 0, 0, 0)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the state above
    sync_lock: threading.Lock = field(default_factory=threading.Lock)  # one sync at a time (the journal's slots)


@dataclass(eq=False)
class _Source:
    """An opened blob or staging file, ready for range reads."""

    fd: int
    header: Header
    aead: AESGCM
    size: int  # plaintext bytes
    last: int  # index of the last segment
    last_plain: bytes  # its plaintext, already authenticated
    final: bool  # blobs: the last segment is sealed final; staging: segments are all non-final


def keyring_path(config: StorageConfig) -> Path:
    """Where the keyring is: storage_keyring_path, else <data_dir>/storage/keyring.json."""
    return (
        Path(config.storage_keyring_path)
        if config.storage_keyring_path
        else config.data_dir / "storage" / "keyring.json"
    )


class EncryptedBlobStore:
    """BlobStore with every byte at rest under AES-256-GCM (a random data key per blob, wrapped by a KEK)."""

    @classmethod
    def from_config(cls, config: StorageConfig) -> EncryptedBlobStore:
        """The store under <data_dir>/storage with the configured keyring (created on first use)."""
        return cls(
            config.data_dir / "storage", Keyring(keyring_path(config)), segment_size=config.storage_segment_bytes
        )

    def __init__(
        self, root: Path, keyring: Keyring, *, segment_size: int = DEFAULT_SEGMENT, cached_uploads: int = 256
    ) -> None:
        self.root = root
        self.keyring = keyring
        self.segment_size = env.check_segment_size(segment_size)
        self.staging = root / "staging"
        self.blobs = root / "blobs"
        _ensure_dir(str(self.staging))
        _ensure_dir(str(self.blobs))
        self._sdir, self._bdir = str(self.staging), str(self.blobs)
        self._cached = cached_uploads
        self._writers: collections.OrderedDict[str, _Writer] = collections.OrderedDict()
        self._writers_lock = threading.Lock()
        self._scratch = _Scratch()
        self._nowait = hasattr(os, "RWF_NOWAIT")  # reads that never wait for the disk (Linux); off if unsupported

    # -- paths and helpers ----------------------------------------------------------------------------------

    def _staging(self, upload_id: str) -> Path:
        return Path(self._spath(upload_id))

    def _journal(self, upload_id: str) -> Path:
        return Path(self._jpath(upload_id))

    def _blob(self, blob_id: str) -> Path:
        return Path(self._bpath(blob_id))

    # The same as strings: hot paths avoid pathlib's parsing (a third of a small upload's CPU time).

    def _spath(self, upload_id: str) -> str:
        return f"{self._sdir}/{_check_id(upload_id)}"

    def _jpath(self, upload_id: str) -> str:
        return f"{self._sdir}/{_check_id(upload_id)}.tail"

    def _bpath(self, blob_id: str) -> str:
        _check_id(blob_id, 4)  # sharded by its first four characters
        return f"{self._bdir}/{blob_id[:2]}/{blob_id[2:4]}/{blob_id}"

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Blocking work in a thread; I/O trouble becomes Unavailable (retryable), never a raw OSError."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno in _FULL:
                raise DiskFull(str(self.root), exc.strerror or str(exc)) from exc
            raise Unavailable(f"storage I/O error ({exc.strerror or exc}); retry shortly") from exc

    def _data_aead(self, header: Header) -> AESGCM:
        return AESGCM(header.unwrap(self.keyring.aead(header.kek_id)))

    def _header(self, fd: int) -> tuple[Header, AESGCM]:
        """The header and the blob's cipher. A key rotation may be rewriting the header this very moment: a read
        racing that write can see a mix, so a header that fails is read once more before it counts as damage."""
        try:
            header = env.parse_header(os.pread(fd, HEADER_SIZE, 0))
            return header, self._data_aead(header)
        except MissingKek:
            raise
        except DataLoss:
            time.sleep(0.001)
            header = env.parse_header(os.pread(fd, HEADER_SIZE, 0))
            return header, self._data_aead(header)

    def _stamp(self, upload_id: str) -> _Stamp:
        a = os.stat(self._spath(upload_id))
        try:
            b = os.stat(self._jpath(upload_id))
            tail = (b.st_ino, b.st_size, b.st_mtime_ns)
        except FileNotFoundError:
            tail = (0, 0, 0)
        return (a.st_ino, a.st_size, a.st_mtime_ns, *tail)

    def _forget(self, upload_id: str) -> None:
        with self._writers_lock:
            self._writers.pop(upload_id, None)

    def _remember(self, upload_id: str, writer: _Writer) -> None:
        with self._writers_lock:
            self._writers[upload_id] = writer
            self._writers.move_to_end(upload_id)
            excess = len(self._writers) - self._cached
            for key in [k for k, w in self._writers.items() if not (w.main_dirty or w.tail_dirty)][: max(excess, 0)]:
                del self._writers[key]

    # -- staging: the journal of the partial segment -------------------------------------------------------

    def _records(self, upload_id: str, header: Header, aead: AESGCM) -> list[tuple[int, int, bytes]]:
        try:
            with open(self._jpath(upload_id), "rb") as f:
                raw = f.read(2 * env.tail_stride(header.segment_size))
        except FileNotFoundError:
            return []
        size = env.tail_stride(header.segment_size)
        slots = (raw[:size], raw[size:])
        return [rec for rec in (env.open_tail(aead, header.file_id, s) for s in slots) if rec is not None]

    def _write_record(self, upload_id: str, w: _Writer) -> None:
        """Journal the partial segment in the slot not holding the newest record, then fsync."""
        self._put_record(upload_id, w, *self._seal_record(w))

    @staticmethod
    def _seal_record(w: _Writer) -> tuple[int, bytes]:
        """The journal record of the partial segment as it is now (under w.lock)."""
        w.seq += 1
        return w.seq, env.seal_tail(w.aead, w.header.file_id, w.seq, w.next_offset // w.header.segment_size, w.tail)

    def _put_record(self, upload_id: str, w: _Writer, seq: int, record: bytes) -> None:
        fd = os.open(self._jpath(upload_id), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            _pwrite_all(fd, record, (seq % 2) * env.tail_stride(w.header.segment_size))
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _prefix(
        self, fd: int, header: Header, aead: AESGCM, records: list[tuple[int, int, bytes]], index: int, length: int
    ) -> tuple[bytes, bool]:
        """The first `length` plaintext bytes of segment `index` of a staging file, and whether the journal had them.

        Every durable copy agrees on bytes below the committed size, so any authentic one will do: the newest
        journal record for that segment, else the segment in the staging file (full, or final after a commit
        that was interrupted)."""
        best = max((r for r in records if r[1] == index and len(r[2]) >= length), default=None, key=lambda r: r[0])
        if best is not None:
            return best[2][:length], True
        seg = header.segment_size
        stored = os.pread(fd, env.stride(seg), env.segment_offset(seg, index))
        attempts = [(False, stored)] if len(stored) == env.stride(seg) else []
        attempts.append((True, stored[: length + OVERHEAD]))
        for final, candidate in attempts:
            try:
                plain = env.open_segment(aead, header.file_id, index, final, candidate)
            except DataLoss:
                continue
            if len(plain) >= length:
                return plain[:length], False
        raise DataLoss(
            f"the upload's staging data lost bytes it had acknowledged (segment {index}); abort and upload again"
        )

    def _recover(self, upload_id: str, offset: int) -> _Writer:
        """Writer state at `offset` (the committed size) from what is durable on disk."""
        try:
            fd = os.open(self._spath(upload_id), os.O_RDWR)
        except FileNotFoundError:
            raise Unavailable("upload staging file is missing; abort and start the upload again") from None
        try:
            try:
                header, aead = self._header(fd)
            except MissingKek:
                raise
            except DataLoss:
                if offset != 0:
                    raise
                # Nothing was acknowledged yet and the header never became durable: start the upload afresh.
                kek_id, kek = self.keyring.current()
                header, key = env.new_header(kek_id, kek, self.segment_size)
                os.ftruncate(fd, 0)
                _pwrite_all(fd, header.pack(), 0)
                os.fdatasync(fd)
                os.close(os.open(self._jpath(upload_id), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
                _fsync_dir(self._sdir)  # the journal's name must be durable before it holds anything
                aead = AESGCM(key)
            seg = header.segment_size
            index, partial = divmod(offset, seg)
            if os.fstat(fd).st_size < env.segment_offset(seg, index):
                raise DataLoss("the upload's staging file is shorter than its committed size; abort and upload again")
            records = self._records(upload_id, header, aead)
            w = _Writer(header, aead, offset, bytearray(), max((r[0] for r in records), default=0))
            if partial:
                prefix, journaled = self._prefix(fd, header, aead, records, index, partial)
                w.tail = bytearray(prefix)
                if not journaled:
                    # The only durable copy is the segment we are about to rewrite: journal it first.
                    self._write_record(upload_id, w)
        finally:
            os.close(fd)
        w.stamp = self._stamp(upload_id)
        return w

    def _writer(self, upload_id: str, offset: int) -> _Writer:
        with self._writers_lock:
            w = self._writers.get(upload_id)
        if w is not None and w.next_offset == offset:
            try:
                # This writer's own sync may be journaling meanwhile: it moves the journal's stamp on disk before it
                # records the new stamp and lets go of sync_lock. Our state is read before and after the disk, each
                # time under w.lock, so a sync that ends in between is matched by one of the two (read once, a sync
                # ending between the comparison and the lock test looked like another process's takeover, and the
                # recovery that followed lost the bytes appended since that sync: a false DATA_LOSS). The staging
                # file's stamp must still match while a sync runs: another process taking over would change it.
                with w.lock:
                    before, busy = w.stamp, w.sync_lock.locked()
                now = self._stamp(upload_id)
                with w.lock:
                    after, busy = w.stamp, busy or w.sync_lock.locked()
                if now in (before, after) or (busy and now[:3] in (before[:3], after[:3])):
                    return w
            except FileNotFoundError:
                raise Unavailable("upload staging file is missing; abort and start the upload again") from None
        w = self._recover(upload_id, offset)
        self._remember(upload_id, w)
        return w

    # -- staging: the BlobStore surface --------------------------------------------------------------------

    async def create_staging(self, upload_id: str) -> None:
        def create() -> None:
            kek_id, kek = self.keyring.current()
            header, key = env.new_header(kek_id, kek, self.segment_size)
            fd = os.open(self._spath(upload_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                try:
                    _pwrite_all(fd, header.pack(), 0)
                finally:
                    os.close(fd)
                os.close(os.open(self._jpath(upload_id), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
                _fsync_dir(self._sdir)  # both names survive a crash; the header is fsynced with the first sync
            except BaseException:
                # No upload row will name these (a full disk, say): leave nothing behind for fsck to find.
                _unlink(self._spath(upload_id))
                _unlink(self._jpath(upload_id))
                raise
            w = _Writer(header, AESGCM(key), 0, bytearray(), 0, main_dirty=True)
            w.stamp = self._stamp(upload_id)
            self._remember(upload_id, w)

        await self._run(create)

    async def write_staging(self, upload_id: str, offset: int, data: bytes | bytearray) -> None:
        """Append `data` at `offset`: the committed size for a writer's first write, else where the last ended."""

        def write() -> None:
            w = self._writer(upload_id, offset)
            try:
                with w.lock:
                    self._append(upload_id, w, data)
            except BaseException:
                self._forget(upload_id)  # state unknown: the next write recovers from disk
                self._roll_back(upload_id, env.segment_offset(w.header.segment_size, offset // w.header.segment_size))
                raise

        try:
            await self._run(write)
        except FileNotFoundError:
            self._forget(upload_id)
            raise Unavailable("upload staging file is missing; abort and start the upload again") from None

    def _append(self, upload_id: str, w: _Writer, data: bytes | bytearray) -> None:
        seg = w.header.segment_size
        st = env.stride(seg)
        index = w.next_offset // seg
        pos = env.segment_offset(seg, index)
        view = memoryview(data)
        out = self._scratch.get(max(1, _IO_TARGET // seg) * st)
        used = 0
        fd = -1  # opened only if a segment is completed: small writes just extend the partial one in memory

        def flush() -> None:
            nonlocal fd, pos, used
            if fd < 0:
                fd = os.open(self._spath(upload_id), os.O_WRONLY)
            _pwrite_all(fd, out[:used], pos)
            pos, used = pos + used, 0
            w.main_dirty = True

        try:
            if w.tail:
                take = view[: seg - len(w.tail)]
                w.tail += take
                view = view[len(take) :]
                if len(w.tail) == seg:
                    used += env.seal_into(w.aead, w.header.file_id, index, False, w.tail, out[used:])
                    index += 1
                    w.tail = bytearray()
            while len(view) >= seg:
                if used + st > len(out):
                    flush()
                used += env.seal_into(w.aead, w.header.file_id, index, False, view[:seg], out[used:])
                view = view[seg:]
                index += 1
            if used:
                flush()
        finally:
            if fd >= 0:
                os.close(fd)
        if view:
            w.tail += view
        w.next_offset += len(data)
        w.tail_dirty = True
        if fd >= 0:
            w.stamp = self._stamp(upload_id)

    def _roll_back(self, upload_id: str, size: int) -> None:
        """Cut what a failed write appended (a disk that filled up in the middle of it leaves a torn segment):
        the space is free again and the file ends where the acknowledged bytes do. `size` is where the write's
        first segment starts: every segment from there on is this write's (the bytes of the partial segment
        before it, acknowledged, live in the journal), so a resume recovers exactly the committed state."""
        with contextlib.suppress(OSError):
            fd = os.open(self._spath(upload_id), os.O_WRONLY)
            try:
                if os.fstat(fd).st_size > size:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)

    async def sync_staging(self, upload_id: str) -> None:
        """Everything written so far survives a crash once this returns."""
        try:
            await self._run(self._sync, upload_id)
        except FileNotFoundError:
            self._forget(upload_id)
            raise Unavailable("upload staging file is missing; abort and start the upload again") from None

    def _sync(self, upload_id: str) -> None:
        with self._writers_lock:
            w = self._writers.get(upload_id)
        if w is None:
            fd = os.open(self._spath(upload_id), os.O_WRONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            return
        # What this sync makes durable is what had been written when it took the state lock: the partial segment
        # is sealed into its journal record then. The disk flushes run outside that lock, so appends to later
        # segments go on meanwhile (they mark the writer dirty again, for the next sync).
        with w.sync_lock:
            try:
                with w.lock:
                    main, w.main_dirty = w.main_dirty, False
                    record = self._seal_record(w) if w.tail_dirty and w.tail else None
                    w.tail_dirty = False
                if main:
                    fd = os.open(self._spath(upload_id), os.O_WRONLY)
                    try:
                        os.fdatasync(fd)  # full segments first: the journal may then move past them
                    finally:
                        os.close(fd)
                if record is not None:
                    self._put_record(upload_id, w, *record)
                with w.lock:
                    w.stamp = self._stamp(upload_id)
            except BaseException:
                self._forget(upload_id)
                raise

    def _open_staging(self, upload_id: str, size: int) -> _Source:
        self._sync(upload_id)
        fd = os.open(self._spath(upload_id), os.O_RDWR)
        try:
            header, aead = self._header(fd)
            seg = header.segment_size
            last, partial = divmod(size, seg)
            if os.fstat(fd).st_size < env.segment_offset(seg, last):
                raise DataLoss("the upload's staging file is shorter than its committed size; abort and upload again")
            plain = b""
            if partial:
                plain, _ = self._prefix(fd, header, aead, self._records(upload_id, header, aead), last, partial)
        except BaseException:
            os.close(fd)
            raise
        return _Source(fd, header, aead, size, last, plain, final=False)

    async def read_staging(self, upload_id: str, size: int, chunk: int, *, start: int = 0) -> AsyncIterator[bytes]:
        """Plaintext [start, size) of an upload (after sync): to scan it, or to hash committed bytes a writer's
        hash lacks (another replica wrote them)."""
        if not 0 <= start <= size:
            raise ValueError(f"start {start} outside 0..{size}")
        try:
            src = await self._run(self._open_staging, upload_id, size)
        except FileNotFoundError:
            raise Unavailable("upload staging file is missing; abort and start the upload again") from None
        try:
            async for block in self._stream(src, start, size - start, chunk):
                yield block
        finally:
            os.close(src.fd)

    async def digest_staging(self, upload_id: str, size: int) -> str:
        """SHA-256 of the first `size` plaintext bytes (kept for use cases that only hash)."""
        h = hashlib.sha256()
        async for block in self.read_staging(upload_id, size, _IO_TARGET):
            h.update(block)
        return h.hexdigest()

    async def commit_staging(self, upload_id: str, blob_id: str, size: int) -> None:
        """Seal the final segment (the only one re-encrypted), fsync, and rename into an immutable blob."""

        def commit() -> None:
            if not os.path.exists(self._spath(upload_id)) and os.path.exists(self._bpath(blob_id)):
                return  # a repeated commit (the first one got as far as the rename): already done
            src = self._open_staging(upload_id, size)
            try:
                seg = src.header.segment_size
                final = env.seal(src.aead, src.header.file_id, src.last, True, src.last_plain)
                at, at_plain = env.segment_offset(seg, src.last), src.last * seg
                try:
                    _pwrite_all(src.fd, final, at)
                    os.ftruncate(src.fd, at + len(final))
                    os.fsync(src.fd)
                except OSError:
                    # A full disk: cut the torn final segment, so the space is free and a retried finish starts
                    # from the same state — only while its bytes are also in the journal (dropped below, after the
                    # fsync; a retry after a later step failed has the final segment as their only copy).
                    records = self._records(upload_id, src.header, src.aead)
                    if not src.last_plain or any(r[1] == src.last and len(r[2]) >= size - at_plain for r in records):
                        with contextlib.suppress(OSError):
                            os.ftruncate(src.fd, at)
                    raise
            finally:
                os.close(src.fd)
            _unlink(self._jpath(upload_id))  # a retry reads the final segment back instead
            dst = self._bpath(blob_id)
            parent = os.path.dirname(dst)
            _ensure_dir(parent)
            os.rename(self._spath(upload_id), dst)
            _fsync_dir(parent)
            self._forget(upload_id)

        try:
            await self._run(commit)
        except FileNotFoundError:
            raise Unavailable("upload staging file is missing; abort and start the upload again") from None

    async def put(self, upload_id: str, blob_id: str, data: bytes) -> None:
        """A whole small blob at once (one thread hop, no journal: nothing of it is resumable): encrypted in
        memory, written to the upload's staging name, fdatasync, renamed into `blobs/`, directory fsync. A crash
        leaves no blob or the whole blob; a leftover staging file is an orphan `flowdock fsck --repair` removes."""

        def put() -> None:
            kek_id, kek = self.keyring.current()
            header, key = env.new_header(kek_id, kek, self.segment_size)
            view = memoryview(env.seal_blob(header, AESGCM(key), data))
            tmp, dst = self._spath(upload_id), self._bpath(blob_id)
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                _pwrite_all(fd, view, 0)
                os.fdatasync(fd)
            except BaseException:
                os.close(fd)
                _unlink(tmp)
                raise
            os.close(fd)
            parent = os.path.dirname(dst)
            _ensure_dir(parent)
            os.rename(tmp, dst)
            _fsync_dir(parent)

        await self._run(put)

    async def delete_staging(self, upload_id: str) -> None:
        def delete() -> None:
            self._forget(upload_id)
            _unlink(self._spath(upload_id))
            _unlink(self._jpath(upload_id))

        await self._run(delete)

    # -- blobs ----------------------------------------------------------------------------------------------

    def _open_blob(self, blob_id: str) -> _Source:
        try:
            fd = os.open(self._bpath(blob_id), os.O_RDONLY)
        except FileNotFoundError:
            raise DataLoss("the file's stored content is missing") from None
        try:
            header, aead = self._header(fd)
            seg = header.segment_size
            size = env.plaintext_size(seg, os.fstat(fd).st_size)
            last = env.last_index(seg, size)
            stored = os.pread(fd, OVERHEAD + size - last * seg, env.segment_offset(seg, last))
            # Authenticating the final segment first detects truncation whatever range is asked for.
            plain = env.open_segment(aead, header.file_id, last, True, stored)
        except BaseException:
            os.close(fd)
            raise
        return _Source(fd, header, aead, size, last, plain, final=True)

    @staticmethod
    def _span(src: _Source, start: int, n: int) -> tuple[int, int]:
        """The stored segments [first, stop) holding plaintext [start, start + n), the last segment excepted (its
        plaintext is in `src`, authenticated when the source was opened)."""
        seg = src.header.segment_size
        return start // seg, min((start + n - 1) // seg, src.last - 1) + 1

    def _open_range(self, src: _Source, start: int, view: memoryview, stored: memoryview) -> None:
        """Plaintext [start, start + len(view)) into `view`, from `stored`: the segments `_span` names, read already.
        Every segment touched is authenticated (DataLoss, and `view` must be discarded, if one is damaged)."""
        seg = src.header.segment_size
        end = start + len(view)
        first, _ = self._span(src, start, len(view))
        below = min(end, src.last * seg) - start  # plaintext before the last segment
        if below > 0:
            env.open_run(src.aead, src.header.file_id, seg, first, stored, start, view[:below])
        if end > src.last * seg:
            lo = max(start, src.last * seg)
            base = src.last * seg
            view[lo - start :] = src.last_plain[lo - base : end - base]

    def _read_cached(self, fd: int, buf: memoryview, pos: int) -> int:
        """Fill `buf` from `pos` with what the page cache holds, without waiting for the disk (RWF_NOWAIT);
        returns the bytes read."""
        done = 0
        if not self._nowait:
            return done
        try:
            while done < len(buf):
                n = os.preadv(fd, [buf[done:]], pos + done, os.RWF_NOWAIT)
                if n == 0:
                    break  # end of file
                done += n
        except BlockingIOError:
            pass  # the rest is not in memory (the kernel starts reading it ahead)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise Unavailable(f"storage I/O error ({exc.strerror or exc}); retry shortly") from exc
            self._nowait = False  # a file system that cannot: every read goes to a worker thread
        return done

    @staticmethod
    def _read_waiting(fd: int, buf: memoryview, pos: int, ahead: int) -> int:
        """A read that waits for the disk (in a worker thread), asking the kernel for the next `ahead` bytes too."""
        done = _pread_exact(fd, buf, pos)
        os.posix_fadvise(fd, pos + len(buf), ahead, os.POSIX_FADV_WILLNEED)
        return done

    async def _stream(
        self, src: _Source, offset: int, length: int, chunk: int, frame: Frame | None = None
    ) -> AsyncIterator[bytes]:
        """Read and decrypt unit by unit (in memory: one unit, whatever the size); segments are authenticated before
        anything of them is yielded.

        All of it runs in the event loop's thread when the page cache holds the unit: a hop to a worker thread and
        back (futex wake-ups, GIL hand-overs after each segment's decrypt) cost more CPU than the work it moved —
        1.2-1.35 vs 0.75-0.95 CPU-s per GiB downloaded, measured. Only reads that would wait for the disk go to a
        thread, which also asks the kernel for the next READ_AHEAD units."""
        seg = src.header.segment_size
        st = env.stride(seg)
        unit = max(chunk, seg)
        plain = memoryview(bytearray(min(unit, length)))  # reused: each block is copied out of it (framed)
        stored = memoryview(bytearray())
        for start, n in env.units(seg, unit, offset, length):
            first, stop = self._span(src, start, n)
            if len(stored) < (stop - first) * st:
                stored = memoryview(bytearray((stop - first) * st))
            ct, at = stored[: max(0, stop - first) * st], env.segment_offset(seg, first)
            got = self._read_cached(src.fd, ct, at)
            if got == len(ct):
                # All in memory: nothing here suspends. A consumer that does not suspend either (FinishUpload's
                # hashing pass with scanning off) would hold the event loop for the whole file: give it a turn.
                await asyncio.sleep(0)
            else:
                job = asyncio.ensure_future(
                    self._run(self._read_waiting, src.fd, ct[got:], at + got, READ_AHEAD * len(ct))
                )
                try:
                    got += await asyncio.shield(job)
                finally:
                    if not job.done():  # cancelled: the caller closes the file next, let the thread finish with it
                        with contextlib.suppress(BaseException):
                            await job
            if got < len(ct):
                raise env.damaged("truncated")
            view = plain[:n]
            self._open_range(src, start, view, ct)
            for j in range(0, n, chunk):
                part = view[j : j + chunk]
                yield b"".join((frame(len(part)), part)) if frame is not None else bytes(part)

    async def read(
        self, blob_id: str, offset: int, length: int, chunk: int, frame: Frame | None = None
    ) -> AsyncIterator[bytes]:
        """Plaintext [offset, offset + length) in chunks; DataLoss before any byte of a damaged segment.

        With `frame`, every chunk comes as `frame(len(chunk)) + chunk`, put together as the chunk is copied out of
        the decryption buffer: a caller sending chunks as ready-made messages needs no copy of its own."""
        src = await self._run(self._open_blob, blob_id)
        try:
            if offset < 0 or length < 0 or offset + length > src.size:
                raise DataLoss("the file's stored content is shorter than recorded")
            async for block in self._stream(src, offset, length, chunk, frame):
                yield block
        finally:
            os.close(src.fd)

    def _verify_units(self, src: _Source) -> Iterator[Callable[[], int]]:
        """One step per unit of ~1 MiB: each authenticates its segments and returns the stored bytes it read."""
        seg = src.header.segment_size
        unit = max(1, _IO_TARGET // seg) * seg
        plain = memoryview(bytearray(min(unit, src.size)))
        stored = memoryview(bytearray(unit // seg * env.stride(seg)))

        def check(pos: int) -> int:
            n = min(unit, src.size - pos)
            first, stop = self._span(src, pos, n)
            ct = stored[: max(0, stop - first) * env.stride(seg)]
            if _pread_exact(src.fd, ct, env.segment_offset(seg, first)) < len(ct):
                raise env.damaged("truncated")
            self._open_range(src, pos, plain[:n], ct)
            return len(ct)

        for pos in range(0, src.size, unit):
            yield functools.partial(check, pos)

    async def verify(self, blob_id: str, pace: Callable[[int], Awaitable[None]] | None = None) -> int:
        """Authenticate every segment; returns the plaintext size, DataLoss if anything is damaged.

        Without `pace` (fsck) the whole blob is checked in one worker-thread call. With it (the scrub) each unit of
        ~1 MiB is its own thread call and `await pace(stored bytes read)` runs between units, so a large blob never
        holds a thread or the disk for long and the caller's byte budget applies inside a blob too."""

        def verify() -> int:
            src = self._open_blob(blob_id)
            try:
                for step in self._verify_units(src):
                    step()
                return src.size
            finally:
                os.close(src.fd)

        if pace is None:
            return await self._run(verify)
        src = await self._run(self._open_blob, blob_id)
        try:
            await pace(HEADER_SIZE + OVERHEAD + src.size - src.last * src.header.segment_size)  # read when opened
            for step in self._verify_units(src):
                job = asyncio.ensure_future(self._run(step))
                try:
                    n = await asyncio.shield(job)
                finally:
                    if not job.done():  # cancelled: let the thread finish with the file before it is closed
                        with contextlib.suppress(BaseException):
                            await job
                await pace(n)
            return src.size
        finally:
            os.close(src.fd)

    async def link(self, src_blob_id: str, dst_blob_id: str) -> None:
        """dst shares src's immutable content (a hard link: same data key, rotated together)."""

        def link() -> None:
            dst = self._bpath(dst_blob_id)
            parent = os.path.dirname(dst)
            _ensure_dir(parent)
            try:
                os.link(self._bpath(src_blob_id), dst)
            except FileNotFoundError:
                raise DataLoss("the file's stored content is missing") from None
            _fsync_dir(parent)

        await self._run(link)

    async def delete(self, blob_id: str) -> None:
        await self._run(_unlink, self._bpath(blob_id))

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        """(blob id, plaintext size) of every blob; size -1 when the header or length is not a valid blob's."""
        for path in sorted(self.blobs.glob("*/*/*")):
            if _ID.match(path.name) and path.is_file():
                yield path.name, blob_size(path)

    # -- administration (fsck, key rotation): the same surface as storage_svc.s3store.S3BlobStore's -----------

    @property
    def description(self) -> str:
        return f"local disk at {self.root}"

    def blob_age(self, blob_id: str) -> float:
        """Seconds since the blob was last written."""
        return time.time() - os.stat(self._bpath(blob_id)).st_mtime

    def staging_entries(self) -> Iterator[tuple[str, str, float]]:
        """(upload id, name, age in seconds) of every staging file and journal."""
        for path in sorted(self.staging.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                yield path.name.removesuffix(".tail"), str(path), time.time() - path.stat().st_mtime

    def remove_staging_entry(self, name: str) -> None:
        _unlink(name)

    def key_holders(self) -> Iterator[str]:
        """Every file holding a wrapped data key (`files`), as strings."""
        return (str(path) for path in self.files())

    def kek_of(self, name: str) -> str | None:
        if not os.path.exists(name):
            raise FileNotFoundError(name)
        return kek_of(Path(name))

    def rewrap(self, name: str, kek_id: str) -> bool:
        return rewrap(Path(name), self.keyring, kek_id)

    def is_staging(self, name: str) -> bool:
        return Path(name).parent == self.staging

    def files(self) -> Iterator[Path]:
        """Every file holding a wrapped data key: uploads in progress, then committed blobs (in that order, so an
        upload committed meanwhile is still seen, under its new name)."""
        for path in sorted(self.staging.iterdir()):
            if _ID.match(path.name):
                yield path
        for path in sorted(self.blobs.glob("*/*/*")):
            if _ID.match(path.name):
                yield path


def blob_size(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            header = env.parse_header(f.read(HEADER_SIZE))
            return env.plaintext_size(header.segment_size, os.fstat(f.fileno()).st_size)
    except (DataLoss, OSError):
        return -1


def kek_of(path: Path) -> str | None:
    """The KEK id in a file's header, None if it has no valid header."""
    try:
        with open(path, "rb") as f:
            return env.parse_header(f.read(HEADER_SIZE)).kek_id
    except (DataLoss, OSError):
        return None


def rewrap(path: Path, keyring: Keyring, kek_id: str) -> bool:
    """Re-wrap a file's data key under `kek_id`, rewriting only its header (in place, fsynced).

    False if it already was (resumed rotations skip it). The header is 256 bytes at offset 0, inside one
    sector, and written with one pwrite: a kill leaves the old or the new header, each complete."""
    fd = os.open(path, os.O_RDWR)
    try:
        header = env.parse_header(os.pread(fd, HEADER_SIZE, 0))
        if header.kek_id == kek_id:
            return False
        new = header.rewrap(keyring.aead(header.kek_id), kek_id, keyring.aead(kek_id))
        _pwrite_all(fd, new.pack(), 0)
        os.fdatasync(fd)
        return True
    finally:
        os.close(fd)
