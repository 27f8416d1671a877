"""Base64 as the suites write it into tokens and bodies by hand."""

from __future__ import annotations

import base64


def b64(data: bytes) -> str:
    """Standard base64 with padding (JSON `bytes` fields, grpc-web text)."""
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    """URL-safe base64 without padding (JWT parts, page tokens)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
