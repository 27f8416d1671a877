"""The UploadStream requests dav_svc serialises by hand are the messages the generated class would make."""

from __future__ import annotations

import pytest

from dav_svc.backend import upload_stream_message
from flowdock.storage.v1 import storage_pb2


@pytest.mark.parametrize(
    ("upload_id", "offset", "size"),
    [("u-1f3a", 0, 1), ("", 1 << 20, 1 << 20), ("", 127, 128), ("x" * 200, 0, 0), ("", (1 << 40) + 3, 16_384)],
)
def test_hand_serialised_request_equals_the_generated_one(upload_id: str, offset: int, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    made = upload_stream_message(upload_id, offset, data)
    expected = storage_pb2.UploadStreamRequest(upload_id=upload_id, offset=offset, data=data)
    assert made == expected.SerializeToString()
    parsed = storage_pb2.UploadStreamRequest.FromString(made)
    assert (parsed.upload_id, parsed.offset, parsed.data) == (upload_id, offset, data)
