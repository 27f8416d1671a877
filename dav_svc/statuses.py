"""The one place where gRPC statuses of storage_svc and share_svc become WebDAV (HTTP) statuses.

RFC 4918 and RFC 7231 choose: NOT_FOUND 404, PERMISSION_DENIED 403, ALREADY_EXISTS 412 (COPY/MOVE onto a taken
name; MKCOL's 405 is decided before the call), INVALID_ARGUMENT 400, FAILED_PRECONDITION 409, RESOURCE_EXHAUSTED
507 Insufficient Storage for the quota and the server's disk, 413 for a body too large, 429 for throttling
(with Retry-After), UNAUTHENTICATED 401 (the auth middleware adds the Basic challenge), UNAVAILABLE 503. Anything
else is a 502: the dav service's neighbour failed, never a 500 with a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from wsgidav.dav_error import DAVError

#: Metadata storage_svc and share_svc put the google.rpc.ErrorInfo reason in (flowdock_kernel.grpc_errors).
ERROR_REASON_HEADER = "x-flowdock-error-reason"

_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.ALREADY_EXISTS: 412,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 416,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

#: RESOURCE_EXHAUSTED by its ErrorInfo reason.
_BY_REASON: dict[str, int] = {
    "STORAGE_QUOTA_EXCEEDED": 507,
    "DISK_FULL": 507,
    "LIMIT_REACHED": 507,
    "TOO_LARGE": 413,
    "RATE_LIMITED": 429,
}


def _metadata(exc: grpc.RpcError) -> dict[str, str]:
    trailing = getattr(exc, "trailing_metadata", None)
    items = trailing() if callable(trailing) else None
    return {str(k): v if isinstance(v, str) else "" for k, v in (items or ())}


def http_status(exc: grpc.RpcError) -> tuple[int, dict[str, str]]:
    """The HTTP status for a failed call, and headers to add (Retry-After when the callee gave a delay)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    meta = _metadata(exc)
    headers = {"Retry-After": meta["retry-after"]} if meta.get("retry-after") else {}
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        reason = meta.get(ERROR_REASON_HEADER, "")
        return _BY_REASON.get(reason, 429 if "retry-after" in meta else 507), headers
    return _BY_CODE.get(code, 502), headers


def to_dav_error(exc: grpc.RpcError) -> DAVError:
    status, headers = http_status(exc)
    details = exc.details() if callable(getattr(exc, "details", None)) else ""
    return DAVError(status, context_info=details or None, add_headers=list(headers.items()) or None)


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """Run calls to storage_svc/share_svc; a failed call leaves as the DAVError its status maps to."""
    try:
        yield
    except grpc.RpcError as exc:
        raise to_dav_error(exc) from None
