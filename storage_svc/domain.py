"""The tree model and its rules. No gRPC, no SQLAlchemy."""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from flowdock_kernel.errors import InvalidArgument

MAX_NAME_BYTES = 255
# Bidirectional overrides and isolates make "evil\u202egpj.exe" display as "evilexe.jpg": refused outright.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Kind(StrEnum):
    FOLDER = "folder"
    FILE = "file"


class UploadState(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


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
    """Keyset position in a folder listing: folders first, then by name key, then id."""

    kind_rank: int
    key: str
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.kind_rank, self.key, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            rank, key, node_id = json.loads(raw)
            if not isinstance(rank, int) or not isinstance(key, str) or not isinstance(node_id, str):
                raise ValueError
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
            raise InvalidArgument("page_token", "is not a token this service issued") from None
        return Cursor(rank, key, node_id)


def kind_rank(kind: Kind) -> int:
    return 0 if kind == Kind.FOLDER else 1
