"""Statuses clients can act on (issue 16, item 3), through the gateway: limits that waiting will not lift are not 429
over REST (413 too large, 403 quota and other reached limits, with the ErrorInfo reason), gRPC keeps its standard
codes with the reason in the details, true rate limits and a held upload say when to try again."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import Native, native_channel
from tests.support.mesh import Running, mesh_fixture
from tests.support.storage_client import Client

KiB = 1024
MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # Small message and inline bounds, so the bodies that cross them stay under the gateway's own JSON bound
    # (json_body_bytes, 1 MiB), which would answer 413 before any service saw them.
    env = {
        "FLOWDOCK_MAX_MESSAGE_BYTES": str(640 * KiB),
        "FLOWDOCK_STORAGE_MAX_CHUNK_BYTES": str(512 * KiB),
        "FLOWDOCK_STORAGE_UPLOAD_CHUNK_BYTES": str(512 * KiB),  # the advice may not exceed the limit (refused at start)
        "FLOWDOCK_STORAGE_CHUNK_BYTES": str(256 * KiB),
        "FLOWDOCK_STORAGE_MAX_FILE_BYTES": str(5 * MiB),
        "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(8 * MiB),
        "FLOWDOCK_STORAGE_INLINE_UPLOAD_BYTES": str(256 * KiB),
    }
    yield from mesh_fixture(request, tmp_path_factory, "statuses", env=env, db_prefix="fdst")


def reason_of(body: dict[str, Any]) -> str:
    return next(d["reason"] for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))


def grpc_reason(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str, float | None]:
    """The code, ErrorInfo reason and RetryInfo delay of a native gRPC error."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    reason, delay = "", None
    for packed in status.details:
        info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if packed.Unpack(info):
            reason = info.reason
        elif packed.Unpack(retry):
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return exc.code(), reason, delay  # type: ignore[attr-defined]


def test_file_and_inline_size_limits_are_413(mesh: Running) -> None:
    c = Client(mesh)
    r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "big", "size": 6 * MiB})
    assert r.status_code == 413, r.text
    assert r.headers["x-flowdock-error-reason"] == "TOO_LARGE"
    assert reason_of(r.json()) == "TOO_LARGE"
    assert "storage_max_file_bytes" in r.json()["message"]
    assert "retry-after" not in r.headers
    inline = os.urandom(300 * KiB)
    body = {"parent_id": "root", "name": "i", "size": len(inline), "content": base64.b64encode(inline).decode()}
    r = c.http.post("/api/v1/uploads", json=body)
    assert r.status_code == 413, r.text
    assert "storage_inline_upload_bytes" in r.json()["message"]
    native = Native(native_channel(mesh.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.CreateUpload(
            S.CreateUploadRequest(parent_id="root", name="big", size=6 * MiB),
            metadata=[("authorization", f"Bearer {c.token}")],
        )
    assert grpc_reason(exc.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE", None)


def test_an_oversized_message_is_413(mesh: Running) -> None:
    c = Client(mesh)
    data = os.urandom(700 * KiB)  # over max_message_bytes (640 KiB): grpc-core refuses it before any handler
    body = {"parent_id": "root", "name": "m", "size": len(data), "content": base64.b64encode(data).decode()}
    r = c.http.post("/api/v1/uploads", json=body)
    assert r.status_code == 413, r.text
    assert "larger than max" in r.json()["message"]


def test_quota_exceeded_is_403_with_its_reason(mesh: Running) -> None:
    c = Client(mesh)
    c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "a", "size": 5 * MiB})
    r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "b", "size": 4 * MiB})
    assert r.status_code == 403, r.text
    assert r.headers["x-flowdock-error-reason"] == "STORAGE_QUOTA_EXCEEDED"
    assert reason_of(r.json()) == "STORAGE_QUOTA_EXCEEDED"
    assert "retry-after" not in r.headers
    native = Native(native_channel(mesh.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.CreateUpload(
            S.CreateUploadRequest(parent_id="root", name="b", size=4 * MiB),
            metadata=[("authorization", f"Bearer {c.token}")],
        )
    assert grpc_reason(exc.value) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_QUOTA_EXCEEDED", None)


def test_a_rate_limit_is_429_with_retry_after(mesh: Running) -> None:
    c = Client(mesh)
    email = c.ok("GET", "/api/v1/me")["email"]
    for _ in range(12):
        r = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": email, "password": "wrong wrong wrong"})
        if r.status_code == 429:
            break
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-flowdock-error-reason"] == "RATE_LIMITED"
    assert reason_of(r.json()) == "RATE_LIMITED"


def test_a_held_upload_says_when_to_try_again(mesh: Running) -> None:
    """A writer holds the upload (a live one here; a dead one's hold lasts until its lease lapses): a resume is
    told to come back later (ABORTED / 409 with the delay), not refused for good (it was FAILED_PRECONDITION)."""
    c = Client(mesh)
    native = Native(native_channel(mesh.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "held", "size": 2 * MiB})
    gate = threading.Event()

    def held():  # type: ignore[no-untyped-def]
        yield S.UploadStreamRequest(upload_id=up["uploadId"], offset=0, data=b"a" * 1000)
        gate.wait(20)

    holder = native.storage.UploadStream(held(), metadata=md)
    try:
        time.sleep(0.5)
        r = c.http.put(f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"b" * 10)
        assert r.status_code == 409, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 5  # a few seconds: the holder may stop any moment
        assert "try again in" in r.json()["message"]
        with pytest.raises(grpc.RpcError) as exc:
            native.storage.WriteUploadChunk(
                S.WriteUploadChunkRequest(upload_id=up["uploadId"], offset=0, data=b"c"), metadata=md
            )
        code, _, delay = grpc_reason(exc.value)
        assert code == grpc.StatusCode.ABORTED
        assert delay is not None and 1 <= delay <= 5
    finally:
        gate.set()
        list(holder)
