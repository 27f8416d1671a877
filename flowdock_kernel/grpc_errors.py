"""The one place where domain errors become gRPC statuses (with google.rpc details the REST gateway forwards).

REST statuses follow from the gRPC code (Envoy's transcoder: google.rpc.Code -> HTTP), except where the code alone
would mislead an HTTP client: RESOURCE_EXHAUSTED is 429 "Too Many Requests" there, which clients and proxies retry,
so an error whose ErrorInfo reason is in REST_STATUS_BY_REASON carries it in the ERROR_REASON_HEADER metadata and
the gateway answers that REST status instead (gateway/envoy_config.py). A retry delay is also sent as `retry-after`
metadata (whole seconds), which REST clients get as the Retry-After header; a 416 (a Range beyond the content)
carries `content-range: bytes */<size>` the same way. docs/http-status.md has the table.
"""

from __future__ import annotations

import collections
import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from flowdock_kernel import errors

_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


#: Metadata carrying the ErrorInfo reason, for the gateway (and any client that cannot parse status details).
ERROR_REASON_HEADER = "x-flowdock-error-reason"

#: ErrorInfo reason -> REST status, where the transcoder's default for the gRPC code would say "retry".
REST_STATUS_BY_REASON: dict[str, int] = {
    "TOO_LARGE": 413,  # Content Too Large: send less
    "STORAGE_QUOTA_EXCEEDED": 403,  # as Google Drive's storageQuotaExceeded: free space or get more quota
    "LIMIT_REACHED": 403,  # e.g. a link's download limit: waiting will not lift it
    "DISK_FULL": 507,  # Insufficient Storage: the server's disk, not the caller's quota; retry after space is freed
    "RANGE_NOT_SATISFIABLE": 416,  # a download's Range starts beyond the content (storage_svc.domain.ByteRange)
}


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def _pack(msg: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)  # type: ignore[arg-type]
    return packed


def to_status(exc: errors.DomainError) -> grpc.Status:
    code = grpc.StatusCode.UNKNOWN
    for cls in type(exc).__mro__:
        if cls in _CODES:
            code = _CODES[cls]
            break
    details: list[any_pb2.Any] = []
    if isinstance(exc, errors.InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.description)
                    ]
                )
            )
        )
    elif isinstance(exc, errors.ResourceExhausted):
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[error_details_pb2.QuotaFailure.Violation(subject=exc.limit, description=exc.message)]
                )
            )
        )
        details.append(
            _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain="flowdock", metadata={"limit": exc.limit}))
        )
    elif isinstance(exc, errors.FailedPrecondition) and exc.reason:
        details.append(_pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain="flowdock", metadata=exc.metadata)))
    retry_after: float | None = getattr(exc, "retry_after_seconds", None)
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=code.value[0], message=exc.message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    extra: list[tuple[str, str]] = []
    reason = getattr(exc, "reason", "")
    if reason:
        extra.append((ERROR_REASON_HEADER, reason))
    if retry_after is not None:
        extra.append(("retry-after", str(max(1, math.ceil(retry_after)))))
    size = getattr(exc, "metadata", {}).get("size") if reason == "RANGE_NOT_SATISFIABLE" else None
    if size is not None:
        # RFC 9110 15.5.17: a 416 names the content's length, which a client resuming a finished download needs.
        extra.append(("content-range", f"bytes */{size}"))
    return _Status(converted.code, converted.details, (*converted.trailing_metadata, *extra))


def internal_status() -> grpc.Status:
    """What a client sees for a bug: generic, no traceback (it is logged with the request id instead)."""
    status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the server log")
    converted: grpc.Status = rpc_status.to_status(status)
    return converted
