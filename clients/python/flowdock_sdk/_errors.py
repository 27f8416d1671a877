"""One exception hierarchy, and the one function mapping gRPC statuses onto it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of an INVALID_ARGUMENT answer (google.rpc.BadRequest)."""

    field: str
    description: str


class FlowDockError(Exception):
    """Base of every error the SDK raises; `code` is the gRPC status name (or a local reason)."""

    code: str = "UNKNOWN"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class AuthenticationError(FlowDockError):
    """Not logged in, wrong credentials, or the session expired or was revoked: log in again."""

    code = "UNAUTHENTICATED"


class TotpRequired(AuthenticationError):
    """The account has 2FA on and no TOTP code (or callback) was given."""


class PermissionDenied(FlowDockError):
    """Logged in, but not allowed to do this."""

    code = "PERMISSION_DENIED"


class NotFound(FlowDockError):
    """The file, folder, upload or account does not exist (or is not visible to you)."""

    code = "NOT_FOUND"


class AlreadyExists(FlowDockError):
    """The name is taken."""

    code = "ALREADY_EXISTS"


class QuotaExceeded(FlowDockError):
    """A limit was hit (storage quota, chunk or file size, a link's downloads, a rate limit); `limit` names it and
    `reason` says which kind (ErrorInfo: TOO_LARGE, STORAGE_QUOTA_EXCEEDED, LIMIT_REACHED, RATE_LIMITED, DISK_FULL:
    the server's own disk is full, which an operator must fix; not retried automatically).

    Only a rate limit (`RateLimited`, `retryable`) passes by waiting; the SDK never retries the others."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, limit: str = "", retry_after: float | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.reason == "RATE_LIMITED" or (not self.reason and self.retry_after is not None)


class RateLimited(QuotaExceeded):
    """Too many requests for now: the same call works after `retry_after` seconds (the SDK waits and retries)."""


class InvalidArgument(FlowDockError):
    """The request was refused as malformed; `violations` names the fields."""

    code = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, violations: tuple[FieldViolation, ...] = ()) -> None:
        super().__init__(message)
        self.violations = violations


class FailedPrecondition(FlowDockError):
    """The request does not fit the current state (e.g. email not verified); `reason` is machine-readable."""

    code = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class Unavailable(FlowDockError):
    """The server could not be reached or is shutting down; retrying later may work."""

    code = "UNAVAILABLE"


class IntegrityError(FlowDockError):
    """Bytes did not match their checksum, or the server refused the upload at finish (`failure` says why)."""

    code = "DATA_LOSS"


class TransferInterrupted(FlowDockError):
    """A transfer stopped part way; resume it (its state is saved). `retry_after`: when the server said to (e.g.
    another connection still holds the upload)."""

    code = "ABORTED"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LocalFileError(FlowDockError):
    """A local file or directory is missing, unreadable, or in the way."""

    code = "LOCAL"


class UnsafeName(LocalFileError):
    """A name the server sent cannot be a local file name (`..`, a separator, NUL, an absolute path): nothing was
    written. A hostile or compromised server could otherwise make a download write outside its destination."""

    code = "UNSAFE_NAME"


_BY_CODE: dict[grpc.StatusCode, type[FlowDockError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QuotaExceeded,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.DATA_LOSS: IntegrityError,
    grpc.StatusCode.ABORTED: TransferInterrupted,
}


# What grpc-core (not the server) says when a connection dies under a call.
_TRANSPORT_BROKE = ("RST_STREAM", "Stream removed", "Internal error from Core", "Socket closed", "Connection reset")


REASON_KEY = "x-flowdock-error-reason"


def _plain_metadata(error: grpc.RpcError) -> dict[str, str]:
    trailers: Any = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    return {key: value for key, value in trailers or () if isinstance(value, str)}


def _details(error: grpc.RpcError) -> list[object]:
    trailers: Any = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            found: list[object] = []
            for packed in status.details:
                for kind in (
                    error_details_pb2.BadRequest,
                    error_details_pb2.QuotaFailure,
                    error_details_pb2.RetryInfo,
                    error_details_pb2.ErrorInfo,
                ):
                    if packed.Is(kind.DESCRIPTOR):
                        msg = kind()
                        packed.Unpack(msg)
                        found.append(msg)
            return found
    return []


def from_rpc_error(error: grpc.RpcError) -> FlowDockError:
    """The SDK exception for a failed call: the only place statuses become exceptions."""
    code: grpc.StatusCode = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else "") or code.name.lower().replace("_", " ")
    details = _details(error)
    cls = _BY_CODE.get(code, FlowDockError)
    if code == grpc.StatusCode.INTERNAL and any(m in message for m in _TRANSPORT_BROKE):
        cls = Unavailable  # the transport broke (the peer vanished mid-call): a dropped connection, not a bug
    if cls is InvalidArgument:
        violations = tuple(
            FieldViolation(v.field, v.description)
            for d in details
            if isinstance(d, error_details_pb2.BadRequest)
            for v in d.field_violations
        )
        return InvalidArgument(message, violations=violations)
    retry = next(
        (d.retry_delay.ToNanoseconds() / 1e9 for d in details if isinstance(d, error_details_pb2.RetryInfo)), None
    )
    reason = next((d.reason for d in details if isinstance(d, error_details_pb2.ErrorInfo)), "")
    # The gateway's own answers (its rate limit) carry no details: the same facts come as metadata.
    plain = _plain_metadata(error)
    reason = reason or plain.get(REASON_KEY, "")
    if retry is None and plain.get("retry-after", "").isdigit():
        retry = float(plain["retry-after"])
    if cls is QuotaExceeded:
        limit = next(
            (v.subject for d in details if isinstance(d, error_details_pb2.QuotaFailure) for v in d.violations), ""
        )
        exc = QuotaExceeded(message, limit=limit, retry_after=retry, reason=reason)
        return RateLimited(message, limit=limit, retry_after=retry, reason=reason) if exc.retryable else exc
    if cls is FailedPrecondition:
        return FailedPrecondition(message, reason=reason)
    if cls is TransferInterrupted:
        return TransferInterrupted(message, retry_after=retry)
    if cls is FlowDockError:
        return FlowDockError(message, code=code.name)
    return cls(message)
