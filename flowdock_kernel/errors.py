"""Domain errors: what went wrong in the product's terms. Pure Python; `grpc_errors` maps them to statuses."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """A field of the request is malformed."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class NotFound(DomainError):
    """The object does not exist, or the caller may not know it does."""


class AlreadyExists(DomainError):
    """The object would collide with an existing one."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class Unauthenticated(DomainError):
    """No valid credential came with the call."""


class ResourceExhausted(DomainError):
    """A named limit stops the call; the message says which and its value."""

    def __init__(self, message: str, *, limit: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds


class FailedPrecondition(DomainError):
    """The system is not in a state that allows this; the message says what to do."""

    def __init__(self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata or {}


class Aborted(DomainError):
    """A concurrent change won; retrying may succeed."""


class DataLoss(DomainError):
    """Stored bytes are damaged; nothing of them is returned."""


class Unavailable(DomainError):
    """A dependency is down; the call may be retried."""
