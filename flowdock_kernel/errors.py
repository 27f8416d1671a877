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
    """A named limit stops the call; the message says which and its value.

    `reason` (a google.rpc.ErrorInfo reason) tells clients whether waiting helps: RATE_LIMITED (a retry delay is
    given) does; the others (subclasses below, LIMIT_REACHED for the rest) do not. grpc_errors maps each reason to
    a REST status (docs/http-status.md).
    """

    default_reason = "LIMIT_REACHED"

    def __init__(self, message: str, *, limit: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds

    @property
    def reason(self) -> str:
        return "RATE_LIMITED" if self.retry_after_seconds is not None else self.default_reason


class TooLarge(ResourceExhausted):
    """A request, file or chunk is over a size limit: send less (REST 413)."""

    default_reason = "TOO_LARGE"


class QuotaExceeded(ResourceExhausted):
    """The owner's storage quota has no room: free space or get a larger quota (REST 403)."""

    default_reason = "STORAGE_QUOTA_EXCEEDED"


class DiskFull(ResourceExhausted):
    """The server's own disk (the data folder or the database's) has no room: nothing of the call was kept, and it
    succeeds again once an operator frees space — not the caller's quota (REST 507 Insufficient Storage)."""

    default_reason = "DISK_FULL"
    RETRY_SECONDS = 30.0

    def __init__(self, path: str, detail: str = "No space left on device") -> None:
        super().__init__(
            f"the server's data disk is full ({path}: {detail}); nothing of this request was kept. This is not "
            "your storage quota: retry once the server's operator has freed space (uploads resume at their "
            "committed size)",
            limit="data_disk",
            retry_after_seconds=self.RETRY_SECONDS,
        )
        self.path = path

    @property
    def reason(self) -> str:
        return self.default_reason  # waiting helps, but only once space is freed: not a rate limit


class FailedPrecondition(DomainError):
    """The system is not in a state that allows this; the message says what to do."""

    def __init__(self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata or {}


class Aborted(DomainError):
    """A concurrent change won, or another holds what the call needs; retrying may succeed (after
    `retry_after_seconds` when given)."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DataLoss(DomainError):
    """Stored bytes are damaged; nothing of them is returned."""


class Unavailable(DomainError):
    """A dependency is down; the call may be retried."""


class DatabaseUnavailable(Unavailable):
    """The service's database cannot be reached (restarting, crashed, the network to it down): retryable, and the
    connection pool reconnects by itself once it answers again."""

    retry_after_seconds: float | None = 1.0
