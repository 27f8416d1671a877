"""S3BlobStore: the blob store on S3-compatible object storage (AWS S3, OpenStack Swift's s3api, MinIO, ...).

The same encrypted format as the local store (storage_svc.envelope: header, AES-256-GCM segments, the last one
final); the object store sees only ciphertext under opaque keys. Nothing an upload needs lives in a process or on
its disk, so an upload begun on one storage_svc replica finishes on another (docs/scaling.md).

Keys, under the configured prefix:

    uploads/<upload id>/header              the upload's header (its wrapped data key), written at creation
    uploads/<upload id>/m/<offset, 20 digits>  manifest at a synced offset: the data objects holding the full
                                            segments below it, in order, and the partial segment (a sealed
                                            journal record, storage_svc.envelope.seal_tail)
    data/<upload id>/<first>-<end>-<random>  segments [first, end) sealed non-final, concatenated (a "run")
    blobs/<blob id>                         a committed blob: header | index length (u32) | index (JSON: the
                                            content id and its runs) | the segments after the runs, inline, the
                                            last one final. A small file's `put` is all inline (no runs).
    refs/<content id>/<blob id>             one empty marker per blob using data/<content id>/ (`link` adds one;
                                            the data go with the last marker)

Staged part objects rather than S3 multipart uploads: a sync writes the full segments not yet stored as one run
object (any size: Swift's and S3's 5 MiB minimum part size does not apply) and a new manifest, each one PUT,
atomic, durable on the object store's quorum when it answers. An acknowledged offset is therefore durable in
the object store, and finishing writes one small object (the final segment and the index) and copies nothing.
A run written by a writer that died before its manifest is referenced by no manifest: finishing and aborting
delete it (and `flowdock fsck` reports any left).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import obstore
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from flowdock_kernel.errors import DataLoss, Unavailable
from storage_svc import envelope as env
from storage_svc.blobstore import DEFAULT_SEGMENT, Frame, _check_id
from storage_svc.config import StorageConfig
from storage_svc.envelope import HEADER_SIZE, Header
from storage_svc.keyring import Keyring

log = logging.getLogger("flowdock.storage")

MiB = 1024 * 1024
DEFAULT_PART = 8 * MiB
READ_UNIT = 4 * MiB  # plaintext per ranged GET of a download
READ_AHEAD = 3  # ranged GETs in flight ahead of the consumer
STORING = 2  # run PUTs one upload may have in flight while its writer goes on
_INDEX = struct.Struct(">I")
_MISSING = (NotFoundError, FileNotFoundError)  # obstore raises either for a missing object
_MISSING_STAGING = "upload staging data is missing; abort and start the upload again"

T = TypeVar("T")


@dataclass(frozen=True)
class S3Settings:
    """Where the objects go. `secret_access_key` is never shown (repr) nor logged."""

    bucket: str
    endpoint: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    prefix: str = ""

    @classmethod
    def from_config(cls, config: StorageConfig) -> S3Settings:
        return cls(
            bucket=config.storage_s3_bucket,
            endpoint=config.storage_s3_endpoint,
            region=config.storage_s3_region,
            access_key_id=config.storage_s3_access_key_id,
            secret_access_key=config.storage_s3_secret_access_key,
            prefix=config.storage_s3_prefix,
        )

    def store(self) -> S3Store:
        """An obstore client: path-style addressing (Swift, MinIO), plain HTTP only for an http:// endpoint,
        bounded retries so an unreachable store becomes Unavailable instead of a hang."""
        kwargs: dict[str, Any] = {
            "region": self.region,
            "virtual_hosted_style_request": False,
            "client_options": {
                "allow_http": self.endpoint.startswith("http://"),
                "timeout": "120s",
                "connect_timeout": "5s",
            },
            "retry_config": {
                "max_retries": 4,
                "retry_timeout": timedelta(seconds=20),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=100),
                    "max_backoff": timedelta(seconds=2),
                    "base": 2,
                },
            },
        }
        if self.endpoint:
            kwargs["endpoint"] = self.endpoint
        if self.access_key_id:
            kwargs["access_key_id"] = self.access_key_id
            kwargs["secret_access_key"] = self.secret_access_key
        return S3Store(self.bucket, **kwargs)


@dataclass(frozen=True)
class _Run:
    """A data object holding segments [first, end) of a content, sealed non-final."""

    first: int
    end: int
    name: str  # "<first>-<end>-<random>", the last part of its key

    @classmethod
    def parse(cls, name: str) -> _Run:
        first, end, _ = name.split("-", 2)
        return cls(int(first), int(end), name)

    @classmethod
    def new(cls, first: int, end: int) -> _Run:
        return cls(first, end, f"{first:010d}-{end:010d}-{secrets.token_hex(6)}")


@dataclass(eq=False)
class _Writer:
    """This process's state of an upload it writes; recovered from the newest manifest when absent or stale."""

    header: Header
    aead: AESGCM
    next_offset: int  # where the next write starts
    tail: bytearray  # plaintext of the partial segment at next_offset
    pending: bytearray  # sealed full segments not yet in a data object
    pending_first: int  # index of pending's first segment
    runs: list[_Run]  # data objects of the segments before pending_first, in order
    synced: int  # offset of the newest manifest this writer wrote or read
    abandoned: set[int] = field(default_factory=set)  # manifests past the committed size seen at recovery
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # the state above
    sync_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one sync at a time
    storing: list[asyncio.Task[None]] = field(default_factory=list)  # run PUTs in flight (the next sync waits)

    @property
    def clean(self) -> bool:
        """Everything written is in the store and named by the newest manifest."""
        return self.next_offset == self.synced and not self.pending and not self.storing


@dataclass
class _Blob:
    """An opened committed blob, ready for range reads."""

    header: Header
    aead: AESGCM
    content: str  # the data/<content>/ objects its runs live in ("" for a blob all inline)
    runs: list[_Run]
    inline_first: int  # index of the first segment stored inline in the blob object
    inline: memoryview  # the inline segments (the last one final)
    size: int
    last: int
    last_plain: bytes


def _index_of(runs: list[_Run], i: int) -> int:
    lo, hi = 0, len(runs)
    while lo < hi:
        mid = (lo + hi) // 2
        if runs[mid].end <= i:
            lo = mid + 1
        else:
            hi = mid
    if lo == len(runs) or not runs[lo].first <= i < runs[lo].end:
        raise env.damaged(f"segment {i} is in no data object")
    return lo


class S3BlobStore:
    """BlobStore on an S3 bucket (storage_svc.ports.BlobStore; selected by storage_blob_backend = "s3")."""

    @classmethod
    def from_config(cls, config: StorageConfig, keyring: Keyring | None = None) -> S3BlobStore:
        from storage_svc.blobstore import keyring_path

        return cls(
            S3Settings.from_config(config),
            keyring if keyring is not None else Keyring(keyring_path(config)),
            segment_size=config.storage_segment_bytes,
            part_size=config.storage_s3_part_bytes,
        )

    def __init__(
        self,
        settings: S3Settings,
        keyring: Keyring,
        *,
        segment_size: int = DEFAULT_SEGMENT,
        part_size: int = DEFAULT_PART,
        cached_uploads: int = 256,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.segment_size = env.check_segment_size(segment_size)
        self.part_size = max(part_size, 1)
        self.store = settings.store()
        self._prefix = settings.prefix.strip("/") + "/" if settings.prefix.strip("/") else ""
        self._cached = cached_uploads
        self._writers: dict[str, _Writer] = {}
        self._chores: set[asyncio.Task[None]] = set()  # deletions of superseded manifests in flight

    def _chore_done(self, task: asyncio.Task[None]) -> None:
        self._chores.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not delete a superseded upload manifest: %s", task.exception())

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.settings.bucket!r}, endpoint={self.settings.endpoint!r})"

    @property
    def description(self) -> str:
        return f"s3 bucket {self.settings.bucket!r} at {self.settings.endpoint or 'AWS'}"

    # -- keys and object I/O --------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return self._prefix + "/".join(parts)

    def _header_key(self, upload_id: str) -> str:
        return self._k("uploads", _check_id(upload_id), "header")

    def _manifest_key(self, upload_id: str, offset: int) -> str:
        return self._k("uploads", _check_id(upload_id), "m", f"{offset:020d}")

    def _data_key(self, content: str, run: _Run) -> str:
        return self._k("data", _check_id(content), run.name)

    def _blob_key(self, blob_id: str) -> str:
        return self._k("blobs", _check_id(blob_id, 4))

    def _ref_key(self, content: str, blob_id: str) -> str:
        return self._k("refs", _check_id(content), _check_id(blob_id, 4))

    async def _io(self, what: Awaitable[T]) -> T:
        """An object-store call; trouble other than a missing object becomes Unavailable (retryable)."""
        try:
            return await what
        except _MISSING:
            raise
        except Exception as exc:  # obstore's errors: network, 5xx after its retries, auth
            raise Unavailable(f"object store error ({type(exc).__name__}); retry shortly") from exc

    async def _get(self, key: str) -> bytes:
        result = await self._io(obstore.get_async(self.store, key))
        return bytes(await self._io(result.bytes_async()))

    async def _get_range(self, key: str, start: int, length: int) -> bytes:
        if length == 0:
            return b""
        return bytes(await self._io(obstore.get_range_async(self.store, key, start=start, length=length)))

    async def _put(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """One PUT, never a multipart upload: the object appears whole or not at all."""
        body = bytes(data) if isinstance(data, memoryview) else data
        await self._io(obstore.put_async(self.store, key, body, use_multipart=False))

    async def _list(self, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        stream = obstore.list(self.store, prefix, chunk_size=1000)
        try:
            async for batch in stream:
                out.extend(batch)  # type: ignore[arg-type]
        except _MISSING:
            return out
        except Exception as exc:
            raise Unavailable(f"object store error ({type(exc).__name__}); retry shortly") from exc
        return out

    async def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]
            with contextlib.suppress(*_MISSING):
                await self._io(obstore.delete_async(self.store, batch))

    # -- staging --------------------------------------------------------------------------------------------

    def _data_aead(self, header: Header) -> AESGCM:
        return AESGCM(header.unwrap(self.keyring.aead(header.kek_id)))

    def _remember(self, upload_id: str, w: _Writer) -> None:
        self._writers.pop(upload_id, None)
        self._writers[upload_id] = w
        excess = len(self._writers) - self._cached
        for key in list(self._writers):
            if excess <= 0:
                break
            old = self._writers[key]
            # Never a writer holding bytes not yet in the store: its next sync must find them.
            if not old.lock.locked() and not old.sync_lock.locked() and old.clean:
                del self._writers[key]
                excess -= 1

    def _forget(self, upload_id: str) -> None:
        self._writers.pop(upload_id, None)

    async def create_staging(self, upload_id: str) -> None:
        kek_id, kek = self.keyring.current()
        header, key = env.new_header(kek_id, kek, self.segment_size)
        await self._put(self._header_key(upload_id), header.pack())
        self._remember(upload_id, _Writer(header, AESGCM(key), 0, bytearray(), bytearray(), 0, [], 0))

    async def _read_header(self, upload_id: str) -> tuple[Header, AESGCM]:
        try:
            raw = await self._get(self._header_key(upload_id))
        except _MISSING:
            raise Unavailable(_MISSING_STAGING) from None
        header = env.parse_header(raw)
        return header, self._data_aead(header)

    async def _manifests(self, upload_id: str) -> list[int]:
        prefix = self._k("uploads", _check_id(upload_id), "m") + "/"
        return sorted(int(str(m["path"]).rsplit("/", 1)[1]) for m in await self._list(prefix))

    async def _recover(self, upload_id: str, offset: int) -> _Writer:
        """Writer state at `offset` (the committed size) from the object store: the manifest at that offset, or
        the first one past it (a sync that covered more than was then recorded; below `offset` all agree)."""
        header, aead = await self._read_header(upload_id)
        seg = header.segment_size
        index, partial = divmod(offset, seg)
        w = _Writer(header, aead, offset, bytearray(), bytearray(), index, [], offset)
        if offset == 0:
            w.abandoned = set(await self._manifests(upload_id))
            return w
        try:
            raw = await self._get(self._manifest_key(upload_id, offset))
            found = None
        except _MISSING:
            found = [m for m in await self._manifests(upload_id) if m >= offset]
            if not found:
                raise DataLoss(
                    f"the upload's staged data lost bytes it had acknowledged (no manifest at {offset}); "
                    "abort and upload again"
                ) from None
            raw = await self._get(self._manifest_key(upload_id, found[0]))
        manifest = json.loads(raw)
        runs = [_Run.parse(name) for name in manifest["runs"]]
        if any(r.first != (runs[i - 1].end if i else 0) for i, r in enumerate(runs)):
            raise env.damaged("upload manifest")
        w.runs = [r for r in runs if r.end <= index]
        reach = w.runs[-1].end if w.runs else 0
        if reach < index:
            # A run reaching past the committed size (written by a sync that covered more than was recorded): its
            # segments below the committed one are kept, sealed as they are, as the first held ones.
            straddle = next(r for r in runs if r.first == reach)
            st = env.stride(seg)
            w.pending = bytearray(await self._get_range(self._data_key(upload_id, straddle), 0, (index - reach) * st))
            w.pending_first = reach
        if partial:
            w.tail = bytearray(await self._segment_prefix(upload_id, header, aead, runs, manifest, index, partial))
        later = [m for m in (found or await self._manifests(upload_id)) if m > offset]
        w.abandoned = set(later)
        return w

    async def _segment_prefix(
        self,
        upload_id: str,
        header: Header,
        aead: AESGCM,
        runs: list[_Run],
        manifest: dict[str, Any],
        index: int,
        n: int,
    ) -> bytes:
        """The first `n` plaintext bytes of segment `index` from a manifest: its tail record, or a run."""
        tail = manifest.get("tail", "")
        if tail:
            rec = env.open_tail(aead, header.file_id, bytes.fromhex(tail))
            if rec is not None and rec[1] == index and len(rec[2]) >= n:
                return rec[2][:n]
        for run in runs:
            if run.first <= index < run.end:
                st = env.stride(header.segment_size)
                stored = await self._get_range(self._data_key(upload_id, run), (index - run.first) * st, st)
                return env.open_segment(aead, header.file_id, index, False, stored)[:n]
        raise DataLoss(
            f"the upload's staged data lost bytes it had acknowledged (segment {index}); abort and upload again"
        )

    async def _writer(self, upload_id: str, offset: int) -> _Writer:
        w = self._writers.get(upload_id)
        if w is not None and w.next_offset == offset:
            return w
        w = await self._recover(upload_id, offset)
        self._remember(upload_id, w)
        return w

    async def write_staging(self, upload_id: str, offset: int, data: bytes | bytearray) -> None:
        """Append `data` at `offset`: sealed in memory; full parts go to the object store as run objects."""
        w = await self._writer(upload_id, offset)
        async with w.lock:
            if w.next_offset != offset:  # another write got in first (never from the one writer of an upload)
                raise Unavailable("the upload moved on meanwhile; resume it")
            try:
                await self._append(upload_id, w, data)
            except BaseException:
                self._forget(upload_id)  # state unknown: the next write recovers from the object store
                raise

    async def _append(self, upload_id: str, w: _Writer, data: bytes | bytearray) -> None:
        seg = w.header.segment_size
        view = memoryview(data)
        whole = bytearray()
        if w.tail:
            take = view[: seg - len(w.tail)]
            w.tail += take
            view = view[len(take) :]
            if len(w.tail) == seg:
                whole += w.tail
                w.tail = bytearray()
        full = len(view) - len(view) % seg
        first = w.pending_first + len(w.pending) // env.stride(seg)
        if whole or full:
            plain = bytes(whole) + bytes(view[:full]) if whole else view[:full]
            out = bytearray(len(plain) // seg * env.stride(seg))
            if len(plain) > 256 * 1024:
                await asyncio.to_thread(env.seal_run, w.aead, w.header.file_id, seg, first, plain, memoryview(out))
            else:
                env.seal_run(w.aead, w.header.file_id, seg, first, plain, memoryview(out))
            w.pending += out
        w.tail += view[full:]
        w.next_offset += len(data)
        if len(w.pending) >= self.part_size:
            await self._store_pending(upload_id, w)

    async def _store_pending(self, upload_id: str, w: _Writer) -> None:
        """The sealed full segments held in memory become one run object, stored in the background (the writer
        goes on sealing the next ones meanwhile); at most STORING of them in flight, the oldest awaited first."""
        for task in [t for t in w.storing if t.done()]:
            w.storing.remove(task)
            task.result()  # a PUT that failed fails the write that follows it
        if not w.pending:
            return
        count = len(w.pending) // env.stride(w.header.segment_size)
        run = _Run.new(w.pending_first, w.pending_first + count)
        w.storing.append(asyncio.ensure_future(self._put(self._data_key(upload_id, run), w.pending)))
        w.runs.append(run)
        w.pending = bytearray()
        w.pending_first = run.end
        while len(w.storing) > STORING:
            await w.storing.pop(0)

    async def _flush_pending(self, upload_id: str, w: _Writer) -> None:
        """Every held segment in the store: the rest as one more run, then every PUT in flight finished."""
        await self._store_pending(upload_id, w)
        await self._drain(w)

    @staticmethod
    async def _drain(w: _Writer) -> None:
        try:
            while w.storing:
                await w.storing[0]
                w.storing.pop(0)
        except BaseException:
            for task in w.storing:
                task.cancel()
            w.storing.clear()
            raise

    async def sync_staging(self, upload_id: str) -> None:
        """Everything written when this is called is in the object store once it returns: the held segments as a
        run, then a manifest at that offset (the one before the previous is deleted: the newest two remain).

        What a sync covers is fixed under the writer's lock (the run started, the runs named, the partial segment
        sealed); its network I/O runs outside that lock, so the writer goes on sealing and storing the next runs
        meanwhile. One sync at a time (`sync_lock`): manifests are written in order."""
        w = self._writers.get(upload_id)
        if w is None:
            return  # nothing written by this process since it last recovered: all of it is stored already
        async with w.sync_lock:
            try:
                async with w.lock:
                    if w.clean:
                        return
                    await self._store_pending(upload_id, w)
                    storing, offset, before = list(w.storing), w.next_offset, w.synced
                    runs = [r.name for r in w.runs]
                    tail = ""
                    if w.tail:
                        index = offset // w.header.segment_size
                        tail = env.seal_tail(w.aead, w.header.file_id, offset, index, w.tail).hex()
                # The staleness check's LIST goes out beside the runs' PUTs (all before the manifest).
                listing = asyncio.ensure_future(self._manifests(upload_id))
                try:
                    await asyncio.gather(*storing)
                finally:
                    known = await listing
                if [m for m in known if m > before and m not in w.abandoned]:
                    # Another replica took the upload over and synced past where this state began: it is stale.
                    raise Unavailable("the upload was resumed elsewhere meanwhile; resume it again")
                manifest = {"offset": offset, "runs": runs, "tail": tail}
                await self._put(self._manifest_key(upload_id, offset), json.dumps(manifest).encode())
                async with w.lock:
                    w.synced = offset
                    for task in storing:
                        if task in w.storing:
                            w.storing.remove(task)
                older = [self._manifest_key(upload_id, m) for m in known if m < before]
                if older:  # off the acknowledgement's path: a manifest left over only costs a little space
                    task = asyncio.ensure_future(self._delete(older))
                    self._chores.add(task)
                    task.add_done_callback(self._chore_done)
            except BaseException:
                self._forget(upload_id)
                raise

    async def read_staging(self, upload_id: str, size: int, chunk: int, *, start: int = 0) -> AsyncIterator[bytes]:
        """Plaintext [start, size) of an upload (after sync), from its newest manifest at or past `size`."""
        if not 0 <= start <= size:
            raise ValueError(f"start {start} outside 0..{size}")
        blob = await self._staged_source(upload_id, size)
        async for block in self._stream(blob, start, size - start, chunk):
            yield block

    async def _staged_source(self, upload_id: str, size: int) -> _Blob:
        w = self._writers.get(upload_id)
        if w is not None and w.next_offset == size:
            await self.sync_staging(upload_id)
        else:
            w = await self._recover(upload_id, size)
        last = size // w.header.segment_size
        held = memoryview(bytes(w.pending))  # sealed segments [pending_first, last) not in a run (recovered)
        return _Blob(w.header, w.aead, upload_id, list(w.runs), w.pending_first, held, size, last, bytes(w.tail))

    async def digest_staging(self, upload_id: str, size: int) -> str:
        import hashlib

        h = hashlib.sha256()
        async for block in self.read_staging(upload_id, size, MiB):
            h.update(block)
        return h.hexdigest()

    async def commit_staging(self, upload_id: str, blob_id: str, size: int) -> None:
        """The blob object: header, the runs' index, the held segments and the final one inline; then the upload's
        staging objects (and runs no manifest names, from writers that died) go."""
        try:
            header_raw = await self._get(self._header_key(upload_id))
        except _MISSING:
            try:
                await self._io(obstore.head_async(self.store, self._blob_key(blob_id)))
                return  # a repeated commit: already done
            except _MISSING:
                raise Unavailable(_MISSING_STAGING) from None
        w = self._writers.get(upload_id)
        if w is None or w.next_offset != size:
            w = await self._recover(upload_id, size)
        async with w.sync_lock, w.lock:
            await self._drain(w)
            seg = w.header.segment_size
            last = size // seg
            final = env.seal(w.aead, w.header.file_id, last, True, w.tail)
            content = upload_id if w.runs else ""
            index = json.dumps({"content": content, "runs": [r.name for r in w.runs]}).encode()
            body = bytearray(header_raw[:HEADER_SIZE])
            body += _INDEX.pack(len(index)) + index + w.pending + final
            if w.runs:
                await self._put(self._ref_key(upload_id, blob_id), b"")
            await self._put(self._blob_key(blob_id), body)
            self._forget(upload_id)
            keep = {r.name for r in w.runs}
        await self._drop_staging(upload_id, keep_data=keep)

    async def _drop_staging(self, upload_id: str, *, keep_data: set[str] | None) -> None:
        """The upload's header and manifests, and its data objects but `keep_data` (None: all of them)."""
        staged = await self._list(self._k("uploads", _check_id(upload_id)) + "/")
        data = await self._list(self._k("data", upload_id) + "/")
        drop = [str(m["path"]) for m in data if keep_data is None or str(m["path"]).rsplit("/", 1)[1] not in keep_data]
        await self._delete(drop)
        await self._delete([str(m["path"]) for m in staged])

    async def put(self, upload_id: str, blob_id: str, data: bytes) -> None:
        """A whole small blob in one object (all segments inline, no runs): absent or complete, never partial."""
        kek_id, kek = self.keyring.current()
        header, key = env.new_header(kek_id, kek, self.segment_size)
        sealed = env.seal_blob(header, AESGCM(key), data)
        index = json.dumps({"content": "", "runs": []}).encode()
        body = bytearray(sealed[:HEADER_SIZE]) + _INDEX.pack(len(index)) + index + sealed[HEADER_SIZE:]
        await self._put(self._blob_key(blob_id), body)

    async def delete_staging(self, upload_id: str) -> None:
        """The upload's staged objects; its data objects too unless a blob refers to them (a finish that got as
        far as the blob object, then failed or crashed before its database commit, keeps them for that blob)."""
        self._forget(upload_id)
        if await self._list(self._k("refs", _check_id(upload_id)) + "/"):
            await self._delete([str(m["path"]) for m in await self._list(self._k("uploads", upload_id) + "/")])
            return
        await self._drop_staging(upload_id, keep_data=None)

    # -- blobs ----------------------------------------------------------------------------------------------

    def _parse_blob(self, raw: bytes) -> _Blob:
        header = env.parse_header(raw[:HEADER_SIZE])
        aead = self._data_aead(header)
        if len(raw) < HEADER_SIZE + _INDEX.size:
            raise env.damaged("truncated")
        (n,) = _INDEX.unpack_from(raw, HEADER_SIZE)
        at = HEADER_SIZE + _INDEX.size + n
        try:
            index = json.loads(raw[HEADER_SIZE + _INDEX.size : at])
            runs = [_Run.parse(name) for name in index["runs"]]
            content = str(index["content"])
        except (ValueError, KeyError, TypeError):
            raise env.damaged("blob index") from None
        seg = header.segment_size
        inline_first = runs[-1].end if runs else 0
        if any(r.first != (runs[i - 1].end if i else 0) for i, r in enumerate(runs)):
            raise env.damaged("blob index")
        inline = memoryview(raw)[at:]
        size = inline_first * seg + env.plaintext_size(seg, HEADER_SIZE + len(inline))
        last = env.last_index(seg, size)
        pos = (last - inline_first) * env.stride(seg)
        last_plain = env.open_segment(aead, header.file_id, last, True, inline[pos:])
        return _Blob(header, aead, content, runs, inline_first, inline, size, last, last_plain)

    async def _open_blob(self, blob_id: str) -> _Blob:
        try:
            raw = await self._get(self._blob_key(blob_id))
        except _MISSING:
            raise DataLoss("the file's stored content is missing") from None
        return self._parse_blob(raw)

    async def _fetch(self, src: _Blob, first: int, stop: int) -> bytes:
        """The stored segments [first, stop) (none of them the last), from runs and the inline part."""
        st = env.stride(src.header.segment_size)
        pieces: list[Awaitable[bytes]] = []
        i = first
        while i < stop:
            if i >= src.inline_first:
                a = (i - src.inline_first) * st
                b = (stop - src.inline_first) * st
                pieces.append(_ready(bytes(src.inline[a:b])))
                break
            run = src.runs[_index_of(src.runs, i)]
            end = min(stop, run.end)
            pieces.append(self._get_range(self._data_key(src.content, run), (i - run.first) * st, (end - i) * st))
            i = end
        try:
            parts = await asyncio.gather(*pieces)
        except _MISSING:
            raise DataLoss("the file's stored content is missing (a data object)") from None
        out = b"".join(parts)
        if len(out) != (stop - first) * st:
            raise env.damaged("truncated")
        return out

    def _decrypt(self, src: _Blob, start: int, n: int, stored: bytes) -> bytes:
        seg = src.header.segment_size
        out = bytearray(n)
        view = memoryview(out)
        below = min(start + n, src.last * seg) - start
        if below > 0:
            env.open_run(src.aead, src.header.file_id, seg, start // seg, stored, start, view[:below])
        if start + n > src.last * seg:
            lo, base = max(start, src.last * seg), src.last * seg
            view[lo - start :] = src.last_plain[lo - base : start + n - base]
        return bytes(out)

    async def _unit(self, src: _Blob, start: int, n: int) -> bytes:
        seg = src.header.segment_size
        first, stop = start // seg, min((start + n - 1) // seg, src.last - 1) + 1
        stored = await self._fetch(src, first, stop) if stop > first else b""
        if len(stored) > 256 * 1024:
            return await asyncio.to_thread(self._decrypt, src, start, n, stored)
        return self._decrypt(src, start, n, stored)

    async def _stream(
        self, src: _Blob, offset: int, length: int, chunk: int, frame: Frame | None = None
    ) -> AsyncIterator[bytes]:
        """Units of about READ_UNIT, READ_AHEAD of them fetched ahead; each authenticated before it is yielded."""
        seg = src.header.segment_size
        unit = max(chunk, seg, READ_UNIT // seg * seg)
        plan = env.units(seg, unit, offset, length)
        tasks: list[asyncio.Task[bytes]] = []
        try:
            for k in range(len(plan)):
                while len(tasks) < READ_AHEAD + 1 and k + len(tasks) < len(plan):
                    tasks.append(asyncio.ensure_future(self._unit(src, *plan[k + len(tasks)])))
                plain = await tasks.pop(0)
                view = memoryview(plain)
                for j in range(0, len(view), chunk):
                    part = view[j : j + chunk]
                    yield b"".join((frame(len(part)), part)) if frame is not None else bytes(part)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    async def read(
        self, blob_id: str, offset: int, length: int, chunk: int, frame: Frame | None = None
    ) -> AsyncIterator[bytes]:
        """Plaintext [offset, offset + length) in chunks (ranged GETs); DataLoss before any byte of a damaged
        segment."""
        src = await self._open_blob(blob_id)
        if offset < 0 or length < 0 or offset + length > src.size:
            raise DataLoss("the file's stored content is shorter than recorded")
        async for block in self._stream(src, offset, length, chunk, frame):
            yield block

    async def verify(self, blob_id: str, pace: Callable[[int], Awaitable[None]] | None = None) -> int:
        """Authenticate every segment; returns the plaintext size, DataLoss if anything is damaged or missing. With
        `pace` (the scrub), `await pace(n)` runs after each unit of n bytes (plaintext: within the per-segment tags
        of what was fetched), so the caller's byte budget applies inside a blob too."""
        src = await self._open_blob(blob_id)
        async for piece in self._stream(src, 0, src.size, READ_UNIT):
            if pace is not None:
                await pace(len(piece))
        return src.size

    async def link(self, src_blob_id: str, dst_blob_id: str) -> None:
        """dst shares src's content: a copy of the blob object (header, index, inline segments) and one more
        reference marker on the data objects."""
        try:
            raw = await self._get(self._blob_key(src_blob_id))
        except _MISSING:
            raise DataLoss("the file's stored content is missing") from None
        content = self._parse_blob(raw).content
        if content:
            await self._put(self._ref_key(content, dst_blob_id), b"")
        await self._put(self._blob_key(dst_blob_id), raw)

    async def delete(self, blob_id: str) -> None:
        """The blob object, its reference marker, and the data objects once no blob refers to them."""
        try:
            raw = await self._get(self._blob_key(blob_id))
        except _MISSING:
            return
        try:
            content = self._parse_blob(raw).content
        except DataLoss:
            content = ""  # damaged beyond reading: its data objects are left for fsck to report
        await self._delete([self._blob_key(blob_id)])
        if content:
            await self._delete([self._ref_key(content, blob_id)])
            if not await self._list(self._k("refs", content) + "/"):
                data = await self._list(self._k("data", content) + "/")
                await self._delete([str(m["path"]) for m in data])

    # -- administration (fsck, key rotation): synchronous, one process of its own ------------------------------

    def _list_sync(self, prefix: str) -> list[dict[str, Any]]:
        try:
            return [m for batch in obstore.list(self.store, self._k(prefix) + "/", chunk_size=1000) for m in batch]  # type: ignore[misc]
        except _MISSING:
            return []

    def list_blobs(self) -> Iterator[tuple[str, int]]:
        """(blob id, plaintext size) of every blob; size -1 when it is not a valid blob's."""
        for meta in sorted(self._list_sync("blobs"), key=lambda m: str(m["path"])):
            blob_id = str(meta["path"]).rsplit("/", 1)[1]
            try:
                raw = bytes(obstore.get(self.store, str(meta["path"])).bytes())
                yield blob_id, self._parse_blob(raw).size
            except _MISSING:
                continue
            except Exception:
                yield blob_id, -1

    def blob_age(self, blob_id: str) -> float:
        meta = obstore.head(self.store, self._blob_key(blob_id))
        return time.time() - meta["last_modified"].timestamp()

    def staging_entries(self) -> Iterator[tuple[str, str, float]]:
        """(upload id, object key, age in seconds) of every staged object and data object no blob refers to."""
        referenced = {str(m["path"]).split("/")[-2] for m in self._list_sync("refs")}
        for prefix in ("uploads", "data"):
            for meta in self._list_sync(prefix):
                key = str(meta["path"])
                upload_id = key[len(self._k(prefix)) + 1 :].split("/", 1)[0]
                if prefix == "data" and upload_id in referenced:
                    continue
                yield upload_id, key, time.time() - meta["last_modified"].timestamp()

    def remove_staging_entry(self, key: str) -> None:
        with contextlib.suppress(*_MISSING):
            obstore.delete(self.store, key)

    def key_holders(self) -> Iterator[str]:
        """Every object holding a wrapped data key: upload headers, then blobs (so one committed meanwhile is
        still seen, under its new key)."""
        for meta in sorted(self._list_sync("uploads"), key=lambda m: str(m["path"])):
            if str(meta["path"]).endswith("/header"):
                yield str(meta["path"])
        for meta in sorted(self._list_sync("blobs"), key=lambda m: str(m["path"])):
            yield str(meta["path"])

    def kek_of(self, key: str) -> str | None:
        try:
            raw = bytes(obstore.get_range(self.store, key, start=0, length=HEADER_SIZE))
            return env.parse_header(raw).kek_id
        except _MISSING:
            raise FileNotFoundError(key) from None
        except (DataLoss, Exception):
            return None

    def rewrap(self, key: str, kek_id: str) -> bool:
        """Re-wrap an object's data key under `kek_id`: the object is written again whole with the new header
        (one PUT: the old or the new object, each complete). False if it already was."""
        try:
            raw = bytearray(obstore.get(self.store, key).bytes())
        except _MISSING:
            raise FileNotFoundError(key) from None
        header = env.parse_header(bytes(raw[:HEADER_SIZE]))
        if header.kek_id == kek_id:
            return False
        new = header.rewrap(self.keyring.aead(header.kek_id), kek_id, self.keyring.aead(kek_id))
        raw[:HEADER_SIZE] = new.pack()
        obstore.put(self.store, key, bytes(raw), use_multipart=False)
        return True

    def is_staging(self, key: str) -> bool:
        return key.startswith(self._k("uploads") + "/")


async def _ready(value: bytes) -> bytes:
    return value
