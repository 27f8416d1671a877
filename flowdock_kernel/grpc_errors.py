"""The one place where domain errors become gRPC statuses (with google.rpc details the REST gateway forwards)."""

from __future__ import annotations

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
        if exc.retry_after_seconds is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(exc.retry_after_seconds * 1e9))
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    elif isinstance(exc, errors.FailedPrecondition) and exc.reason:
        details.append(_pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain="flowdock", metadata=exc.metadata)))
    status = status_pb2.Status(code=code.value[0], message=exc.message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def internal_status() -> grpc.Status:
    """What a client sees for a bug: generic, no traceback (it is logged with the request id instead)."""
    status = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the server log")
    converted: grpc.Status = rpc_status.to_status(status)
    return converted
