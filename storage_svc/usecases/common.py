"""What every storage seam shares: the deployment's limits, paging, the quota error, blob clean-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from flowdock_kernel.errors import InvalidArgument, QuotaExceeded
from storage_svc import domain
from storage_svc.domain import Cursor, OrderBy, Usage, Version
from storage_svc.ports import BlobStore, ChildPage

T = TypeVar("T")


@dataclass(frozen=True)
class DropLimits:
    """What one file-drop link may take; own_*: the limit is the link's own (its owner set it), not the setting."""

    max_files: int
    max_bytes: int
    own_files: bool = False
    own_bytes: bool = False


@dataclass(frozen=True)
class Limits:
    chunk_bytes: int
    max_chunk_bytes: int
    max_file_bytes: int
    upload_expiry: timedelta
    sync_bytes: int
    list_page_size: int
    list_max_page_size: int
    default_quota_bytes: int = 10 * 1024**3
    inline_finish_bytes: int = 64 * 1024 * 1024
    trash_retention: timedelta = timedelta(days=30)
    versions_kept: int = 10
    scan_oversize: str = "refuse"
    inline_upload_bytes: int = 4 * 1024 * 1024
    #: Declared sizes up to this take the small-file path of the three calls (0: off; storage_small_upload_bytes).
    small_upload_bytes: int = 0
    download_url_lifetime: timedelta = timedelta(seconds=60)
    link_drop_max_files: int = 1000
    link_drop_max_bytes: int = 1024**3
    #: Chunk size advised for one request per chunk (unary calls, REST PUT); chunk_bytes stays the stream unit.
    upload_chunk_bytes: int = 16 * 1024 * 1024

    def page_size(self, requested: int) -> int:
        """A listing's page size: the one asked for (0: the default), within the maximum."""
        if requested < 0:
            raise InvalidArgument("page_size", "must not be negative")
        if requested > self.list_max_page_size:
            raise InvalidArgument("page_size", f"must be at most {self.list_max_page_size}")
        return requested or self.list_page_size


def quota_exceeded(usage: Usage, needed: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"storage quota of {usage.limit} bytes exceeded: {usage.used} used, {usage.reserved} reserved by open "
        f"uploads, {needed} more needed; free space (empty the trash, delete old versions) or ask an admin "
        "for a larger quota",
        limit="storage_quota_bytes",
    )


def next_token(page: ChildPage, order: OrderBy) -> str:
    """The token of the page after a read-model listing page ("" when it was the last)."""
    last = page.last
    if not page.more or last is None:
        return ""
    return Cursor(domain.kind_rank(last.kind), domain.sort_key(last, order), last.id).encode()


def paged(rows: list[T], limit: int, cursor: Callable[[T], Cursor]) -> tuple[list[T], str]:
    """One page of `rows` (fetched one beyond `limit`) and the next page's token (empty after the last)."""
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, cursor(rows[-1]).encode() if more else ""


async def delete_blobs(blobs: BlobStore, versions: list[Version]) -> None:
    """The blobs of versions whose rows are gone (committed first: no row ever names a missing blob)."""
    for version in versions:
        await blobs.delete(version.blob_id)
