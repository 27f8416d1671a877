"""HTTP Range requests on downloads (issue 18: a download broken by a gateway restart resumes by range): which
headers are served as a range, and where each range lands in the content."""

from __future__ import annotations

import pytest

from storage_svc.domain import RANGE_NOT_SATISFIABLE, ByteRange, RangeNotSatisfiable

ETAG = '"' + "ab" * 32 + '"'


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-", 10, (0, 10)),
        ("bytes=4-", 10, (4, 6)),
        ("bytes=2-5", 10, (2, 4)),
        ("bytes=2-500", 10, (2, 8)),  # clipped to the content
        ("bytes=9-9", 10, (9, 1)),
        ("bytes=-3", 10, (7, 3)),  # the last three bytes
        ("bytes=-30", 10, (0, 10)),
        (" bytes = 4 - ", 10, (4, 6)),
    ],
)
def test_ranges_land_where_rfc_9110_says(header: str, size: int, expected: tuple[int, int]) -> None:
    parsed = ByteRange.parse(header)
    assert parsed is not None
    assert parsed.resolve(size) == expected


@pytest.mark.parametrize(
    "header",
    ["", "bytes=", "bytes=-", "bytes=5-2", "bytes=0-1,4-5", "items=0-1", "bytes=a-", "bytes=1" + "0" * 19 + "-"],
)
def test_what_is_not_one_byte_range_is_served_whole(header: str) -> None:
    assert ByteRange.parse(header) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=11-20", 10), ("bytes=0-", 0), ("bytes=-0", 10)]
)
def test_a_range_beyond_the_content_is_not_satisfiable(header: str, size: int) -> None:
    parsed = ByteRange.parse(header)
    assert parsed is not None
    with pytest.raises(RangeNotSatisfiable) as refused:
        parsed.resolve(size)
    assert refused.value.reason == RANGE_NOT_SATISFIABLE and refused.value.metadata == {"size": str(size)}


def test_if_range_sends_the_range_only_for_the_same_content() -> None:
    assert ByteRange.parse("bytes=5-").applies(ETAG)  # type: ignore[union-attr]
    assert ByteRange.parse("bytes=5-", ETAG).applies(ETAG)  # type: ignore[union-attr]
    assert not ByteRange.parse("bytes=5-", '"' + "cd" * 32 + '"').applies(ETAG)  # type: ignore[union-attr]
    assert not ByteRange.parse("bytes=5-", "Wed, 21 Oct 2015 07:28:00 GMT").applies(ETAG)  # type: ignore[union-attr]
