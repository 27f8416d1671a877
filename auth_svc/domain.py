"""The account model and its rules. No gRPC, no SQLAlchemy."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from flowdock_kernel.errors import InvalidArgument

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_EMAIL = 254
MAX_DISPLAY_NAME = 100
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass
class User:
    id: str
    email: str
    display_name: str
    role: Role
    password_hash: str
    created_at: datetime
    disabled: bool = False


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    device_name: str
    created_at: datetime


def normalise_email(raw: str) -> str:
    """Trim and lower-case; addresses compare case-insensitively in practice (and for uniqueness here)."""
    email = unicodedata.normalize("NFC", raw.strip()).lower()
    if not email:
        raise InvalidArgument("email", "is required")
    if len(email) > MAX_EMAIL or not _EMAIL.match(email) or any(unicodedata.category(c)[0] == "C" for c in email):
        raise InvalidArgument("email", "is not a valid email address")
    return email


def check_password(password: str) -> None:
    """Length only (ASVS 6.2): no composition rules. Checked exactly as typed."""
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidArgument("password", f"must be at most {MAX_PASSWORD} characters")


def clean_display_name(raw: str, email: str) -> str:
    name = unicodedata.normalize("NFC", raw.strip())
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidArgument("display_name", f"must be at most {MAX_DISPLAY_NAME} characters")
    if any(unicodedata.category(c)[0] == "C" for c in name):
        raise InvalidArgument("display_name", "must not contain control characters")
    return name or email.split("@", 1)[0]
