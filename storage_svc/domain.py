"""The tree model and its rules. No gRPC, no SQLAlchemy."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from flowdock_kernel import pagetoken
from flowdock_kernel.errors import Aborted, FailedPrecondition, InvalidArgument, TooLarge

MAX_NAME_BYTES = 255
# Bidirectional overrides and isolates make "evil\u202egpj.exe" display as "evilexe.jpg": refused outright.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
SCAN_LIMIT_REASON = "SCAN_LIMIT_EXCEEDED"
HELD_RETRY_SECONDS = 5  # how soon a writer finding an upload held is told to look again


class Kind(StrEnum):
    FOLDER = "folder"
    FILE = "file"


class UploadState(StrEnum):
    OPEN = "open"
    FINISHING = "finishing"
    COMPLETED = "completed"
    FAILED = "failed"


class OnConflict(StrEnum):
    FAIL = "fail"
    RENAME = "rename"
    NEW_VERSION = "new_version"


class OrderBy(StrEnum):
    NAME = "name"
    SIZE = "size"
    MODIFIED = "modified"


@dataclass
class Node:
    id: str
    owner_id: str
    parent_id: str | None
    name: str
    kind: Kind
    size: int
    created_at: datetime
    modified_at: datetime
    content_type: str = ""
    sha256: str = ""
    blob_id: str = ""
    version_id: str = ""
    trashed_at: datetime | None = None
    trash_root_id: str = ""


@dataclass(frozen=True)
class StoredBlob:
    """A version's blob as the scrub visits them (by blob id), with what an operator and the owner need to know
    when it is damaged: which file, which version, whose."""

    blob_id: str
    version_id: str
    node_id: str
    owner_id: str
    name: str
    size: int


@dataclass(frozen=True)
class ScrubState:
    """Where the scrub is (one row for the installation, shared by every replica): the last blob id verified in
    the current pass ("" before its first blob), when that pass began and the last one ended, the blobs it is owed
    (its share per day accrues as `credit` between rounds) and who holds its lease."""

    position: str = ""
    pass_started_at: datetime | None = None
    last_pass_at: datetime | None = None
    credit: float = 0.0
    ticked_at: datetime | None = None
    holder: str | None = None
    holder_until: datetime | None = None


@dataclass(frozen=True)
class Version:
    """One stored content of a file; the node points at the current one."""

    id: str
    node_id: str
    owner_id: str
    number: int
    blob_id: str
    size: int
    sha256: str
    content_type: str
    created_at: datetime

    @property
    def etag(self) -> str:
        """The HTTP entity tag of this content (strong: the SHA-256 of its bytes), as downloads send it."""
        return f'"{self.sha256}"'


@dataclass(frozen=True)
class Usage:
    used: int
    reserved: int
    limit: int


@dataclass(frozen=True)
class TrashEntry:
    node: Node
    size: int


@dataclass
class Upload:
    id: str
    owner_id: str
    parent_id: str
    name: str
    size: int
    sha256: str
    content_type: str
    committed_size: int
    state: UploadState
    created_at: datetime
    expires_at: datetime
    node_id: str = ""
    on_conflict: OnConflict = OnConflict.FAIL
    target_node_id: str = ""
    failure: str = ""
    # Who writes it: the owner, a grantee with the editor role, or "link:<link id>" (a file drop). The owner's
    # quota is charged either way; only the creator may write to, finish or abort it.
    creator_id: str = ""
    # Until when the current writer's lease holds it (None: nobody writes).
    writer_until: datetime | None = None
    # The current writer's lease token ("" when nobody writes); it names the holder's process (LeaseHolders).
    writer: str = ""

    @property
    def creator(self) -> str:
        return self.creator_id or self.owner_id

    @property
    def blob_id(self) -> str:
        """The blob its content becomes (upload_blob_id)."""
        return upload_blob_id(self.id)

    @property
    def finished(self) -> bool:
        """COMPLETED or FAILED: nothing more happens to it (finishing again answers the same)."""
        return self.state in (UploadState.COMPLETED, UploadState.FAILED)

    def check_chunk(self, offset: int, length: int, max_chunk_bytes: int) -> None:
        """Raise why `length` bytes at `offset` may not be written: the upload is not OPEN, the chunk is over the
        per-chunk limit, or it would go past the declared size."""
        if self.state != UploadState.OPEN:
            raise FailedPrecondition(f"upload is {self.state.value}; it takes no more bytes")
        if length > max_chunk_bytes:
            raise TooLarge(
                f"chunk of {length} bytes exceeds the limit of {max_chunk_bytes} bytes "
                "(storage_max_chunk_bytes); send smaller chunks",
                limit="storage_max_chunk_bytes",
            )
        if offset + length > self.size:
            raise InvalidArgument("data", f"bytes up to offset {offset + length} exceed the declared size {self.size}")

    def check_resume(self, offset: int) -> None:
        """Raise why a writer may not start at `offset`: bytes go on exactly where the durable ones end."""
        self.check_chunk(offset, 0, 0)
        if offset != self.committed_size:
            raise offset_mismatch(offset, self.committed_size)

    def check_finish(self) -> None:
        """Raise why an OPEN upload cannot be finished yet: every declared byte must have been received."""
        if self.state == UploadState.OPEN and self.committed_size != self.size:
            raise FailedPrecondition(
                f"only {self.committed_size} of {self.size} bytes received; "
                f"send the rest from offset {self.committed_size}",
                reason="UPLOAD_INCOMPLETE",
                metadata={"committed_size": str(self.committed_size)},
            )

    def held(self, now: datetime, lease: timedelta) -> Aborted:
        """Another writer holds the upload: a live one, or one that vanished (a killed client, a dropped
        connection) whose lease runs out at `writer_until`. Either way the same call works once it is released:
        say when to look again (the lapse, or a few seconds, since a live writer may stop any moment)."""
        lapse = lease.total_seconds()
        if self.writer_until is not None:
            lapse = min(lapse, max((self.writer_until - now).total_seconds(), 0.0))
        wait = max(1, min(HELD_RETRY_SECONDS, math.ceil(lapse)))
        return Aborted(
            f"another connection is writing to this upload (if it stopped without closing, its hold lapses in "
            f"{math.ceil(lapse)} s); try again in {wait} s",
            retry_after_seconds=wait,
        )


def upload_blob_id(upload_id: str) -> str:
    """The blob an upload's content becomes: derived from its id, so a finish retried after a crash between the
    rename and the commit finds the same blob (and a small file sent in one call names its blob up front)."""
    return upload_id.replace("-", "")


def offset_mismatch(offset: int, expected: int) -> FailedPrecondition:
    """Bytes sent for `offset` where the upload goes on at `expected`: the client resumes from there."""
    return FailedPrecondition(
        f"offset {offset} does not match the committed size {expected}; resume at offset {expected}",
        reason="UPLOAD_OFFSET_MISMATCH",
        metadata={"committed_size": str(expected)},
    )


@dataclass(frozen=True)
class Decision:
    """share_svc's answer for a non-owner: allowed; visible (some grant covers the node); the top of the grant."""

    allowed: bool
    visible: bool = False
    grant_node_id: str = ""


@dataclass(frozen=True)
class LinkScope:
    """A public link as share_svc vouches for it: its id, root node, the owner of that tree."""

    link_id: str
    root_node_id: str
    owner_id: str
    allowed: bool
    #: The link's own file-drop limits (0: none set; the deployment's apply).
    max_upload_files: int = 0
    max_upload_bytes: int = 0


class ScanLimitExceeded(FailedPrecondition):
    """The content is (or would be) larger than the scanner can scan; `limit_bytes` is that limit.

    A FailedPrecondition: retrying the same file cannot succeed; the caller decides by policy whether such a
    file is refused (the default) or stored unscanned.
    """

    def __init__(self, limit_bytes: int, *, size: int | None = None, detail: str = "", message: str = "") -> None:
        super().__init__(
            message or f"file is larger than the virus scanner's limit of {limit_bytes} bytes",
            reason=SCAN_LIMIT_REASON,
            metadata={"limit_bytes": str(limit_bytes), **({"scanner_limit": detail} if detail else {})},
        )
        self.limit_bytes = limit_bytes
        self.size = size
        self.detail = detail  # which limit: "declared size", a clamd reply, "Heuristics.Limits.Exceeded.MaxScanSize"


RANGE_NOT_SATISFIABLE = "RANGE_NOT_SATISFIABLE"
_BYTE_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


class RangeNotSatisfiable(FailedPrecondition):
    """A download's Range starts at or beyond the end of the content (REST 416: nothing is left to send there)."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the range starts beyond the content ({size} bytes); ask for bytes=0-{max(size - 1, 0)} or less",
            reason=RANGE_NOT_SATISFIABLE,
            metadata={"size": str(size)},
        )


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One range of an HTTP Range header (RFC 9110 14.1.2), which a client resuming a broken download sends:
    `bytes=first-last`, `bytes=first-` (to the end) or `bytes=-n` (the last n bytes; `first` is None). `if_range`
    is the request's If-Range: the range applies only while the content still has that ETag (else all of it)."""

    first: int | None
    last: int | None
    if_range: str = ""

    @classmethod
    def parse(cls, header: str, if_range: str = "") -> ByteRange | None:
        """None for what is served whole (RFC 9110 lets a server ignore Range): no header, another unit, several
        ranges, or a malformed one."""
        m = _BYTE_RANGE.fullmatch(header.strip().replace(" ", ""))
        if m is None or not (m.group(1) or m.group(2)):
            return None
        first = int(m.group(1)) if m.group(1) else None
        last = int(m.group(2)) if m.group(2) else None
        if first is not None and last is not None and last < first:
            return None
        return cls(first, last, if_range.strip())

    def applies(self, etag: str) -> bool:
        """Whether to send the range (an If-Range naming other content, or a date, means: send it all)."""
        return not self.if_range or self.if_range == etag

    def resolve(self, size: int) -> tuple[int, int]:
        """(offset, length) within content of `size` bytes; RangeNotSatisfiable when it starts at or past the end."""
        if self.first is None:  # the last n bytes
            n = min(self.last or 0, size)
            if n == 0:
                raise RangeNotSatisfiable(size)
            return size - n, n
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last - self.first + 1


def requested_part(byte_range: ByteRange | None, version: Version) -> tuple[int, int] | None:
    """(offset, length) of `version` that a Range asks for, or None when the whole content goes out (no Range, or
    an If-Range naming other content). Every ranged download route (content, signed URL, public link) asks here."""
    if byte_range is None or not byte_range.applies(version.etag):
        return None
    return byte_range.resolve(version.size)


def validate_name(raw: str, field: str = "name") -> str:
    """Return the NFC form of a valid file or folder name.

    Policy: no `/`, `\\`, NUL or other control characters, no bidi controls, not `.`/`..`, no leading or
    trailing whitespace, no trailing dot (Windows clients could not create such files), at most 255 bytes UTF-8.
    Names compare case-insensitively among siblings (`name_key`).
    """
    name = unicodedata.normalize("NFC", raw)
    if not name:
        raise InvalidArgument(field, "must not be empty")
    if name in (".", ".."):
        raise InvalidArgument(field, "must not be '.' or '..'")
    if "/" in name or "\\" in name:
        raise InvalidArgument(field, "must not contain '/' or '\\'")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise InvalidArgument(field, "must not contain NUL or control characters")
    if any(c in _BIDI_CONTROLS for c in name):
        raise InvalidArgument(field, "must not contain bidirectional control characters (e.g. U+202E)")
    if name != name.strip():
        raise InvalidArgument(field, "must not start or end with whitespace")
    if name.endswith("."):
        raise InvalidArgument(field, "must not end with a dot")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidArgument(field, f"must be at most {MAX_NAME_BYTES} bytes in UTF-8")
    return name


def split_relative_path(raw: str) -> list[str]:
    """`a/b/c.txt` → validated parts; empty segments, `.` and `..` are refused (no climbing out)."""
    parts = raw.strip("/").split("/")
    if len(parts) > 64:
        raise InvalidArgument("relative_path", "must have at most 64 levels")
    return [validate_name(part, "relative_path") for part in parts]


def free_name(name: str, taken: set[str]) -> str:
    """The first of `name`, `name (1).ext`, `name (2).ext`, ... whose name_key is not taken."""
    if name_key(name) not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    for i in range(1, 10_000):
        candidate = f"{stem} ({i}){suffix}"
        if name_key(candidate) not in taken and len(candidate.encode()) <= MAX_NAME_BYTES:
            return candidate
    raise InvalidArgument("name", "no free name left for this entry")


def name_key(name: str) -> str:
    """Sibling uniqueness and sorting key: case-insensitive (Unicode casefold of the NFC name)."""
    return unicodedata.normalize("NFC", name.casefold())


def validate_sha256(raw: str) -> str:
    value = raw.strip().lower()
    if value and not _HEX64.match(value):
        raise InvalidArgument("sha256", "must be 64 hexadecimal characters")
    return value


def validate_content_type(raw: str) -> str:
    value = raw.strip()
    if len(value) > 255 or any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidArgument("content_type", "must be a MIME type of at most 255 characters")
    return value or "application/octet-stream"


@dataclass(frozen=True)
class Cursor:
    """Keyset position in a listing: kind rank (folders first), the sort value, then the id as tie-breaker."""

    kind_rank: int
    key: str | int
    id: str

    def encode(self) -> str:
        return pagetoken.encode_text(json.dumps([self.kind_rank, self.key, self.id], separators=(",", ":")))

    @staticmethod
    def decode(token: str, key: CursorKey = "text") -> Cursor:
        """The cursor a listing issued, its key checked against what that listing sorts by (a crafted token with a
        number where a name is compared, a NUL byte or a time beyond year 9999 would otherwise fail in the driver)."""
        value = pagetoken.decode_json(token)
        if not isinstance(value, list) or len(value) != 3:
            raise pagetoken.bad_token()
        rank = pagetoken.int64(value[0], minimum=0, maximum=1)
        raw_key = value[1]
        parsed: str | int
        if key == "text":
            parsed = pagetoken.text(raw_key)
        elif key == "size":
            parsed = pagetoken.int64(raw_key, minimum=0)
        else:
            parsed = pagetoken.int64(raw_key, minimum=_MIN_MICROS, maximum=_MAX_MICROS)
        return Cursor(rank, parsed, pagetoken.text(value[2], max_chars=pagetoken.MAX_ID_CHARS))


#: What a listing's cursor key is: a name key, a size in bytes, or a time in microseconds since 1970.
CursorKey = Literal["text", "size", "micros"]
#: The cursor key each listing order compares (sort_key).
CURSOR_KEYS: dict[OrderBy, CursorKey] = {OrderBy.NAME: "text", OrderBy.SIZE: "size", OrderBy.MODIFIED: "micros"}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MIN_MICROS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_MICROS = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def micros(at: datetime) -> int:
    """Microseconds since 1970 (UTC; naive means UTC), exact from year 1 to 9999 (a float `timestamp()` is not
    beyond ~2^53 µs: year 9999 rounded up into year 10000)."""
    return ((at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    """The aware UTC datetime `micros` made `us` from."""
    return _EPOCH + timedelta(microseconds=us)


def sort_key(node: Node, order: OrderBy) -> str | int:
    if order == OrderBy.SIZE:
        return node.size
    if order == OrderBy.MODIFIED:
        return micros(node.modified_at)
    return name_key(node.name)


def kind_rank(kind: Kind) -> int:
    return 0 if kind == Kind.FOLDER else 1
