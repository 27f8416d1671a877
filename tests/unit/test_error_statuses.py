"""Domain errors -> gRPC status, details and the metadata the gateway turns into a REST status (issue 16 item 3);
docs/http-status.md names every error kind."""

from __future__ import annotations

import inspect
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2

from flowdock_kernel import errors, grpc_errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "http-status.md"


def metadata(exc: errors.DomainError) -> tuple[grpc.StatusCode, dict[str, str], list[object]]:
    status = grpc_errors.to_status(exc)
    md = dict(status.trailing_metadata)
    details = status_pb2.Status.FromString(md.pop("grpc-status-details-bin"))
    found: list[object] = []
    for packed in details.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo, error_details_pb2.QuotaFailure):
            msg = kind()
            if packed.Unpack(msg):
                found.append(msg)
    return status.code, {k: str(v) for k, v in md.items()}, found


def test_limits_name_their_kind_and_rest_status() -> None:
    cases = [
        (errors.TooLarge("x", limit="storage_max_file_bytes"), "TOO_LARGE", 413),
        (errors.QuotaExceeded("x", limit="storage_quota_bytes"), "STORAGE_QUOTA_EXCEEDED", 403),
        (errors.ResourceExhausted("x", limit="link_max_downloads"), "LIMIT_REACHED", 403),
    ]
    for exc, reason, rest in cases:
        code, md, details = metadata(exc)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert md[grpc_errors.ERROR_REASON_HEADER] == reason
        assert grpc_errors.REST_STATUS_BY_REASON[reason] == rest
        assert "retry-after" not in md
        info = next(d for d in details if isinstance(d, error_details_pb2.ErrorInfo))
        assert (info.reason, info.metadata["limit"]) == (reason, exc.limit)


def test_rate_limits_and_held_uploads_say_when() -> None:
    code, md, details = metadata(errors.ResourceExhausted("x", limit="auth.login", retry_after_seconds=2.5))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert md[grpc_errors.ERROR_REASON_HEADER] == "RATE_LIMITED"
    assert "RATE_LIMITED" not in grpc_errors.REST_STATUS_BY_REASON  # stays 429
    assert md["retry-after"] == "3"
    assert any(isinstance(d, error_details_pb2.RetryInfo) for d in details)
    code, md, details = metadata(errors.Aborted("held", retry_after_seconds=4))
    assert code == grpc.StatusCode.ABORTED and md["retry-after"] == "4"


def test_an_unsatisfiable_range_names_the_content_length_as_rfc_9110_asks() -> None:
    """A 416 carries `Content-Range: bytes */size` (the gateway passes the metadata on as the header)."""
    refused = errors.FailedPrecondition("x", reason="RANGE_NOT_SATISFIABLE", metadata={"size": "10"})
    code, md, _ = metadata(refused)
    assert (
        code == grpc.StatusCode.FAILED_PRECONDITION
        and grpc_errors.REST_STATUS_BY_REASON[md[grpc_errors.ERROR_REASON_HEADER]] == 416
    )
    assert md["content-range"] == "bytes */10"
    _, other, _ = metadata(errors.FailedPrecondition("x", reason="OTHER", metadata={"size": "10"}))
    assert "content-range" not in other


def test_the_doc_names_every_error_kind() -> None:
    doc = DOC.read_text()
    kinds = [n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, errors.DomainError)]
    for name in kinds:
        if name != "DomainError":
            assert f"`{name}`" in doc, name
    for reason in [*grpc_errors.REST_STATUS_BY_REASON, "RATE_LIMITED"]:
        assert reason in doc, reason


def test_a_full_disk_is_its_own_kind_not_a_rate_limit_nor_the_quota() -> None:
    code, md, details = metadata(errors.DiskFull("/srv/flowdock/storage"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert md[grpc_errors.ERROR_REASON_HEADER] == "DISK_FULL"
    assert grpc_errors.REST_STATUS_BY_REASON["DISK_FULL"] == 507
    assert md["retry-after"] == "30"  # waiting helps once space is freed
    info = next(d for d in details if isinstance(d, error_details_pb2.ErrorInfo))
    assert (info.reason, info.metadata["limit"]) == ("DISK_FULL", "data_disk")


def test_disk_full_errors_are_recognised_through_the_drivers() -> None:
    import errno
    import sqlite3

    import sqlalchemy as sa

    from flowdock_kernel.db import disk_full_error

    assert disk_full_error(OSError(errno.ENOSPC, "No space left on device", "/data/x")) is not None
    assert disk_full_error(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert disk_full_error(OSError(errno.EIO, "I/O error")) is None
    full = sqlite3.OperationalError("database or disk is full")
    wrapped = sa.exc.OperationalError("COMMIT", {}, full)
    found = disk_full_error(wrapped, "/data")
    assert found is not None and "/data" in found.message and "not your storage quota" in found.message
    assert disk_full_error(sa.exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked"))) is None


def test_a_database_that_went_away_is_unavailable_not_internal() -> None:
    """PostgreSQL restarting, killed, or not yet accepting connections: UNAVAILABLE with a retry delay (REST 503 with
    Retry-After), found through SQLAlchemy's wrapping; other database errors stay what they were."""
    import psycopg
    import sqlalchemy as sa

    from flowdock_kernel.db import database_unavailable_error

    refused = psycopg.OperationalError("connection failed: Connection refused")  # no SQLSTATE: no server answered
    assert database_unavailable_error(sa.exc.OperationalError("SELECT 1", {}, refused)) is not None
    starting = psycopg.errors.CannotConnectNow("the database system is starting up")
    assert database_unavailable_error(sa.exc.OperationalError("x", {}, starting)) is not None
    terminated = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    assert database_unavailable_error(sa.exc.OperationalError("x", {}, terminated)) is not None
    invalidated = sa.exc.DBAPIError("x", {}, Exception("server closed the connection"), connection_invalidated=True)
    found = database_unavailable_error(invalidated)
    assert found is not None and "database" in found.message
    assert database_unavailable_error(sa.exc.OperationalError("x", {}, psycopg.errors.LockNotAvailable("x"))) is None
    assert database_unavailable_error(sa.exc.IntegrityError("x", {}, psycopg.errors.UniqueViolation("x"))) is None
    assert database_unavailable_error(ValueError("a bug")) is None
    code, md, details = metadata(found)
    assert code == grpc.StatusCode.UNAVAILABLE and md["retry-after"] == "1"
    assert any(isinstance(d, error_details_pb2.RetryInfo) for d in details)
