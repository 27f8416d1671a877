"""Page tokens: opaque to clients, and checked as untrusted input before any of their contents reaches a query.

A token is a listing position a service issued, but a client can send anything: every decoder here refuses what no
service issues (not base64url, not UTF-8, NUL bytes PostgreSQL cannot store, numbers beyond 64 bits, strings
longer than any key) with INVALID_ARGUMENT naming page_token, so no crafted token can become a 500 in a driver.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from typing import Any

from flowdock_kernel.errors import InvalidArgument

__all__ = [
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TOKEN_CHARS",
    "bad_token",
    "decode_json",
    "decode_text",
    "encode_text",
    "int64",
    "text",
    "uuid_text",
]

#: Longer than any token a service issues (a 255-character name key, an id, JSON punctuation, base64's 4/3).
MAX_TOKEN_CHARS = 2048
#: Longest string a token may carry (a name key is at most 255 characters, an email 254).
MAX_TEXT_CHARS = 1024
#: Longest row id (uuid4 text today; 64 is what every service accepts as an id).
MAX_ID_CHARS = 64
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def bad_token() -> InvalidArgument:
    return InvalidArgument("page_token", "is not a token this service issued")


def encode_text(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _raw(token: str) -> bytes:
    if len(token) > MAX_TOKEN_CHARS or not _BASE64URL.fullmatch(token) or len(token) % 4 == 1:
        raise bad_token()
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        raise bad_token() from None


def text(value: Any, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """`value` if it is a string a listing can compare with (no NUL, valid UTF-8, bounded); else bad_token()."""
    if not isinstance(value, str) or len(value) > max_chars or "\x00" in value:
        raise bad_token()
    try:
        value.encode("utf-8")  # lone surrogates (JSON "\ud800") cannot reach a database
    except UnicodeEncodeError:
        raise bad_token() from None
    return value


def int64(value: Any, *, minimum: int = _INT64_MIN, maximum: int = _INT64_MAX) -> int:
    """`value` if it is an integer (not a bool or float) within [minimum, maximum]; else bad_token()."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise bad_token()
    return value


def decode_text(token: str) -> str:
    """The string encode_text() wrapped; "" for no token."""
    if not token:
        return ""
    try:
        return text(_raw(token).decode("utf-8"))
    except UnicodeDecodeError:
        raise bad_token() from None


def decode_json(token: str) -> Any:
    """The JSON value a service encoded (callers check its shape with text() and int64())."""
    try:
        return json.loads(_raw(token).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_token() from None


def uuid_text(token: str) -> str:
    """A token that is a row id in canonical UUID form (share_svc's listings page by id); "" for no token."""
    if not token:
        return ""
    try:
        if len(token) == 36 and str(uuid.UUID(token)) == token:
            return token
    except ValueError:
        pass
    raise bad_token()
