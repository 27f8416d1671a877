"""The whole-file SHA-256 computed as an upload's bytes arrive, so finishing it reads nothing back (issue 15).

hashlib's state can be copied but not saved or sent to another process, so each process keeps, per upload, the
SHA-256 of the bytes up to the last committed offset that it recorded itself (`UploadHashes`, a small bounded
cache). A writer that starts where such a state ends goes on from it; otherwise (another replica wrote the bytes
in between, or this process restarted) it first hashes the committed bytes it lacks from the staged data, once
(`resume`). Finishing uses the cached state when it covers the whole file, and hashes only the rest otherwise.

Why the cache can never be wrong: a state enters it only after its offset is durable and recorded as committed,
and committed bytes never change (an upload only grows; its id is never reused). So any entry at or below the
committed size is right forever; a newer one only saves work.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
from typing import TYPE_CHECKING, TypeAlias

from flowdock_kernel.errors import DomainError
from storage_svc.ports import BlobStore

if TYPE_CHECKING:
    from hashlib import _Hash

    HashState: TypeAlias = _Hash  # what hashlib.sha256() returns (no public name for it)
else:
    HashState = object

log = logging.getLogger("flowdock.storage")

Bytes = bytes | bytearray | memoryview

INLINE_HASH_BYTES = 64 * 1024  # up to this, on the event loop: a thread hop costs more than hashing it
CACHED_UPLOADS = 1024  # ~0.3 KiB each: uploads being written by this process at once, with room to spare


async def update(state: HashState, data: Bytes) -> None:
    """Hash `data` into `state`: large pieces in a worker thread (hashlib releases the GIL, so it runs beside the
    encryption of the same bytes on the other core)."""
    if len(data) <= INLINE_HASH_BYTES:
        state.update(data)
    else:
        await asyncio.to_thread(state.update, data)


class UploadHashes:
    """upload id → (offset, SHA-256 of its first `offset` bytes) for the uploads this process wrote lately.
    Bounded (least recently used go first); `get` hands out copies, so no two holders share a state."""

    def __init__(self, capacity: int = CACHED_UPLOADS) -> None:
        self.capacity = capacity
        self._entries: collections.OrderedDict[str, tuple[int, HashState]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, upload_id: str) -> tuple[int, HashState] | None:
        entry = self._entries.get(upload_id)
        if entry is None:
            return None
        self._entries.move_to_end(upload_id)
        return entry[0], entry[1].copy()

    def put(self, upload_id: str, offset: int, state: HashState) -> None:
        """Record the state at `offset` — call only once `offset` is durable and recorded as committed. The
        caller gives the state up (pass a copy). An entry further along stays: it is just as right."""
        entry = self._entries.get(upload_id)
        if entry is None or entry[0] <= offset:
            self._entries[upload_id] = (offset, state)
        self._entries.move_to_end(upload_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        """The upload is finished or gone."""
        self._entries.pop(upload_id, None)


class RunningHash:
    """A writer's SHA-256 of an upload's first `offset` bytes, fed in order with what it writes. `state` None: not
    known (the committed bytes could not be read to catch up); finishing then hashes the file as before."""

    def __init__(self, state: HashState | None, offset: int) -> None:
        self.state = state
        self.offset = offset

    async def update(self, data: Bytes) -> None:
        size = len(data)
        if self.state is not None:
            await update(self.state, data)
        self.offset += size

    def snapshot(self) -> HashState | None:
        """A copy of the state as it is now (at `offset`), for the cache once that offset is committed."""
        return self.state.copy() if self.state is not None else None


async def resume(hashes: UploadHashes, blobs: BlobStore, upload_id: str, offset: int, chunk: int) -> RunningHash:
    """The hash for a writer starting at `offset` (the committed size): the cached state if it ends there, else
    the cached one (or an empty one) brought up to `offset` by reading the committed bytes it lacks, once."""
    cached = hashes.get(upload_id)
    if cached is not None and cached[0] == offset:
        return RunningHash(cached[1], offset)
    start, state = cached if cached is not None and cached[0] < offset else (0, hashlib.sha256())
    if start < offset:
        try:
            async for block in blobs.read_staging(upload_id, offset, chunk, start=start):
                await update(state, block)
        except DomainError as exc:  # the write that follows meets the same trouble; finishing re-reads
            log.warning("upload hash not resumed: %s", exc, extra={"upload_id": upload_id})
            return RunningHash(None, offset)
    return RunningHash(state, offset)
