"""The SDK acts on what a limit says (issue 16, item 3): limits that waiting will not lift (quota, too large) are
raised at once with their reason; rate limits are waited out and retried; a held upload is resumed when the
server says it is free."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from flowdock.storage.v1 import storage_pb2 as S
from flowdock_kernel import errors, grpc_errors
from flowdock_sdk import Client, Node, QuotaExceeded, RateLimited, TransferInterrupted, _transfer
from flowdock_sdk._errors import from_rpc_error
from flowdock_sdk._session import RpcSession
from tests.e2e.protocols import Native, native_channel
from tests.support.accounts import PASSWORD
from tests.support.mesh import SCAN_OFF, Running, flowdock_up

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    env = {
        **SCAN_OFF,
        "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(6 * MiB),
        "FLOWDOCK_STORAGE_MAX_FILE_BYTES": str(4 * MiB),
    }
    with flowdock_up(tmp_path_factory.mktemp("sdk-limits"), env=env) as running:
        yield running


def rpc_error(exc: errors.DomainError) -> grpc.aio.AioRpcError:
    """The error a client gets for `exc`, built by the servers' own mapping."""
    status = grpc_errors.to_status(exc)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


def test_errors_say_whether_waiting_helps() -> None:
    quota = from_rpc_error(rpc_error(errors.QuotaExceeded("quota full", limit="storage_quota_bytes")))
    assert type(quota) is QuotaExceeded and not quota.retryable
    assert (quota.reason, quota.limit) == ("STORAGE_QUOTA_EXCEEDED", "storage_quota_bytes")
    large = from_rpc_error(rpc_error(errors.TooLarge("too big", limit="storage_max_file_bytes")))
    assert type(large) is QuotaExceeded and large.reason == "TOO_LARGE" and not large.retryable
    rate = from_rpc_error(rpc_error(errors.ResourceExhausted("slow down", limit="auth.login", retry_after_seconds=3)))
    assert isinstance(rate, RateLimited) and rate.retryable and rate.retry_after == 3
    held = from_rpc_error(rpc_error(errors.Aborted("held", retry_after_seconds=12)))
    assert isinstance(held, TransferInterrupted) and held.retry_after == 12


class FakeUnary:
    """A unary method that fails with `errors_first` and then answers."""

    def __init__(self, *errors_first: grpc.aio.AioRpcError) -> None:
        self.errors = list(errors_first)
        self.calls = 0

    async def __call__(self, request: Any, **_: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def call_with(method: FakeUnary) -> tuple[str | BaseException, int, float]:
    session = RpcSession("http://127.0.0.1:9", retries=3)
    session.tokens.access, session.tokens.access_until = "token", time.monotonic() + 3600
    start = time.monotonic()
    try:
        outcome: str | BaseException = await session.call(method, S.GetQuotaRequest())  # type: ignore[arg-type]
    except QuotaExceeded as exc:
        outcome = exc
    finally:
        await session.close()
    return outcome, method.calls, time.monotonic() - start


def test_a_rate_limit_is_waited_out_and_retried() -> None:
    limited = rpc_error(errors.ResourceExhausted("slow down", limit="gateway", retry_after_seconds=0.2))
    outcome, calls, took = asyncio.run(call_with(FakeUnary(limited, limited)))
    assert (outcome, calls) == ("done", 3)
    assert took >= 0.4


def test_limits_that_waiting_will_not_lift_are_never_retried() -> None:
    for exc in (
        errors.QuotaExceeded("quota full", limit="storage_quota_bytes"),
        errors.TooLarge("too big", limit="storage_max_file_bytes"),
        errors.ResourceExhausted("link used up", limit="link_max_downloads"),
    ):
        outcome, calls, _ = asyncio.run(call_with(FakeUnary(rpc_error(exc), rpc_error(exc))))
        assert isinstance(outcome, QuotaExceeded) and not isinstance(outcome, RateLimited)
        assert calls == 1


def test_a_long_rate_limit_is_reported_not_slept_through() -> None:
    limited = rpc_error(errors.ResourceExhausted("come back later", limit="auth.login", retry_after_seconds=600))
    outcome, calls, took = asyncio.run(call_with(FakeUnary(limited)))
    assert isinstance(outcome, RateLimited) and calls == 1 and took < 5


def register(server: Running) -> str:
    email = f"lim{uuid.uuid4().hex[:10]}@example.org"
    with Client(server.url) as anonymous:
        anonymous.register(email, PASSWORD)
    return email


def test_upload_over_quota_or_size_fails_at_once_with_the_reason(small: Running, tmp_path: Path) -> None:
    with Client(small.url, email=register(small), password=PASSWORD) as fd:
        (tmp_path / "big.bin").write_bytes(os.urandom(5 * MiB))
        start = time.monotonic()
        with pytest.raises(QuotaExceeded) as caught:
            fd.upload(tmp_path / "big.bin", "/")
        assert caught.value.reason == "TOO_LARGE" and caught.value.limit == "storage_max_file_bytes"
        (tmp_path / "a.bin").write_bytes(os.urandom(4 * MiB))
        (tmp_path / "b.bin").write_bytes(os.urandom(3 * MiB))
        fd.upload(tmp_path / "a.bin", "/")
        with pytest.raises(QuotaExceeded) as caught:
            fd.upload(tmp_path / "b.bin", "/")
        assert caught.value.reason == "STORAGE_QUOTA_EXCEEDED" and not isinstance(caught.value, RateLimited)
        assert time.monotonic() - start < 10  # nothing waited for a limit that does not pass


def test_a_held_upload_is_resumed_once_released(small: Running, tmp_path: Path) -> None:
    email = register(small)
    data = os.urandom(MiB)
    path = tmp_path / "held.bin"
    path.write_bytes(data)

    async def run() -> S.Upload:
        session = RpcSession(small.url, email=email, password=PASSWORD)
        try:
            root = Node.from_pb(await session.call(session.storage.GetNode, S.GetNodeRequest(node_id="root")))
            up = await session.call(
                session.storage.CreateUpload,
                S.CreateUploadRequest(parent_id=root.id, name="held.bin", size=len(data)),
            )
            token = await session.token()
            gate = threading.Event()

            def hold() -> None:
                native = Native(native_channel(small.host_port))

                def held():  # type: ignore[no-untyped-def]
                    yield S.UploadStreamRequest(upload_id=up.upload_id, offset=0, data=data[:1000])
                    gate.wait(3)  # another connection writes for 3 s

                list(native.storage.UploadStream(held(), metadata=[("authorization", f"Bearer {token}")]))

            holder = threading.Thread(target=hold)
            holder.start()
            await asyncio.sleep(0.5)
            state = _transfer.UploadState(None)
            uploader = _transfer.Uploader(
                session, state, root.id, overwrite=False, resume=True, progress=lambda _p: None
            )
            try:
                return await uploader.drive(up, path, "held.bin", 0)
            finally:
                gate.set()
                holder.join()
        finally:
            await session.close()

    start = time.monotonic()
    done = asyncio.run(run())
    assert done.state == S.UPLOAD_STATE_COMPLETED
    assert time.monotonic() - start < 20  # told "try again in a few seconds", not the whole 60 s lease
