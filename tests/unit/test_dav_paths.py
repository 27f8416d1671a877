"""dav_svc's path rules (dav_svc/domain.py) and its one gRPC -> HTTP status mapping (dav_svc/statuses.py)."""

from __future__ import annotations

import grpc
import pytest

from dav_svc import domain, statuses


def test_paths_split_into_checked_segments() -> None:
    p = domain.parse("/Docs/2024/report.pdf")
    assert p.segments == ("Docs", "2024", "report.pdf")
    assert str(p) == "/Docs/2024/report.pdf"
    assert domain.parse("/").is_root
    assert domain.parse("/Shared with me/x").in_shared
    assert not domain.parse("/Shared with meX").in_shared
    assert domain.parse("/a/").contains(domain.parse("/a/b/c"))
    assert not domain.parse("/a/b").contains(domain.parse("/a/bc"))


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/a/../b", "not allowed"),
        ("/./b", "not allowed"),
        ("/nul\x00.txt", "NUL"),
        ("/bad\ufffd.txt", "UTF-8"),
        ("/surrogate\udcff", "UTF-8"),
        ("/" + "x" * 256, "at most 255"),
    ],
)
def test_unacceptable_names_are_refused_not_resolved(path: str, why: str) -> None:
    with pytest.raises(domain.BadPath, match=why):
        domain.parse(path)


def test_a_segment_may_not_hide_a_slash() -> None:
    with pytest.raises(domain.BadPath, match="slash"):
        domain.check_name("a/b")
    with pytest.raises(domain.BadPath, match="slash"):
        domain.check_name("a\\b")


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._code, self._metadata = code, metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "why"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


@pytest.mark.parametrize(
    ("code", "metadata", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, (), 404),
        (grpc.StatusCode.PERMISSION_DENIED, (), 403),
        (grpc.StatusCode.UNAUTHENTICATED, (), 401),
        (grpc.StatusCode.ALREADY_EXISTS, (), 412),
        (grpc.StatusCode.INVALID_ARGUMENT, (), 400),
        (grpc.StatusCode.FAILED_PRECONDITION, (), 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, (("x-flowdock-error-reason", "STORAGE_QUOTA_EXCEEDED"),), 507),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, (("x-flowdock-error-reason", "DISK_FULL"),), 507),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, (("x-flowdock-error-reason", "TOO_LARGE"),), 413),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, (("x-flowdock-error-reason", "RATE_LIMITED"), ("retry-after", "3")), 429),
        (grpc.StatusCode.UNAVAILABLE, (), 503),
        (grpc.StatusCode.INTERNAL, (), 502),
    ],
)
def test_grpc_statuses_map_to_the_rfc_statuses(
    code: grpc.StatusCode, metadata: tuple[tuple[str, str], ...], status: int
) -> None:
    got, headers = statuses.http_status(_Failed(code, metadata))
    assert got == status
    if status == 429:
        assert headers == {"Retry-After": "3"}
    error = statuses.to_dav_error(_Failed(code, metadata))
    assert error.value == status
