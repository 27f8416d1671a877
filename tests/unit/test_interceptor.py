"""The kernel's one server interceptor on a real grpc.aio server: authentication, error mapping, call context and
metrics, for unary and streaming calls (services' e2e suites cover the same through Envoy)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import DecodeError

from flowdock_kernel import errors, logs, metrics
from flowdock_kernel.interceptors import CallInterceptor
from flowdock_kernel.tokens import KeyCache, SessionCache, principal_var

KEY = Ed25519PrivateKey.generate()
SERVICE = "unittest"
PUBLIC = ["/t.T/Public"]
ENDED = {"s-ended"}


def token(sid: str = "s1") -> str:
    now = int(time.time())
    claims = {"iss": "flowdock", "aud": "flowdock", "sub": "u1", "sid": sid, "role": "user",
              "iat": now, "nbf": now, "exp": now + 60}  # fmt: skip
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})


def ident(b: bytes) -> bytes:
    return b


def undecodable(b: bytes) -> bytes:
    if b == b"bad":
        raise DecodeError("truncated")
    return b


async def whoami(request: bytes, context: Any) -> bytes:
    principal = principal_var.get()
    return (principal.user_id if principal else "-").encode()


async def public(request: bytes, context: Any) -> bytes:
    return f"{logs.request_id_var.get()}|{logs.client_var.get().ip}".encode()


async def domain(request: bytes, context: Any) -> bytes:
    raise errors.NotFound("no such file")


async def boom(request: bytes, context: Any) -> bytes:
    raise RuntimeError("secret internals")


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    yield b"two"
    if request == b"fail":
        raise errors.PermissionDenied("not yours any more")


HANDLERS = grpc.method_handlers_generic_handler(
    "t.T",
    {
        "Whoami": grpc.unary_unary_rpc_method_handler(whoami, ident, ident),
        "Public": grpc.unary_unary_rpc_method_handler(public, undecodable, ident),
        "Domain": grpc.unary_unary_rpc_method_handler(domain, ident, ident),
        "Boom": grpc.unary_unary_rpc_method_handler(boom, ident, ident),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, ident, ident),
    },
)


@pytest.fixture(scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    async def fetch() -> Any:
        return {"k1": KEY.public_key()}

    async def alive(sid: str) -> bool:
        return sid not in ENDED

    keys = KeyCache(fetch, ttl=3600, sessions=SessionCache(alive, ttl=3600))
    server = grpc.aio.server(
        interceptors=[CallInterceptor(SERVICE, PUBLIC, keys, issuer="flowdock", audience="flowdock")]
    )
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    await server.stop(None)


def count(method: str, code: str) -> float:
    return metrics.REQUESTS.labels(SERVICE, f"/t.T/{method}", code)._value.get()  # type: ignore[no-any-return]


async def counted(method: str, code: str, expected: float) -> float:
    """The count once it reaches `expected` (or after 5 s): the server records a call as its handler ends, which
    may be just after the client has the status it sent."""
    for _ in range(500):
        if count(method, code) >= expected:
            break
        await asyncio.sleep(0.01)
    return count(method, code)


def auth(sid: str = "s1") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token(sid)}"),)


async def test_token_checked_and_principal_set(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/t.T/Whoami")
    assert await call(b"", metadata=auth()) == b"u1"
    for md in [(), (("authorization", "Basic abc"),), (("authorization", "Bearer not-a-jwt"),), auth("s-ended")]:
        before = count("Whoami", "UNAUTHENTICATED")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call(b"", metadata=md)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED, md
        assert await counted("Whoami", "UNAUTHENTICATED", before + 1) == before + 1


async def test_public_method_needs_no_token_and_keeps_the_callers_request_id(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary("/t.T/Public")
    md = (("x-request-id", "rid-123"), ("x-forwarded-for", "203.0.113.9, 198.51.100.7"))
    assert await call(b"", metadata=md) == b"rid-123|198.51.100.7"
    rid, _ = (await call(b"")).decode().split("|")
    assert len(rid) == 32 and int(rid, 16) >= 0  # one made up per call


async def test_undecodable_request_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await channel.unary_unary("/t.T/Public")(b"bad")
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request" in (exc.value.details() or "")


async def test_domain_error_mapped_and_counted(channel: grpc.aio.Channel) -> None:
    before = count("Domain", "NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await channel.unary_unary("/t.T/Domain")(b"", metadata=auth())
    assert (exc.value.code(), exc.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such file")
    assert await counted("Domain", "NOT_FOUND", before + 1) == before + 1


async def test_unexpected_error_is_generic_internal(channel: grpc.aio.Channel) -> None:
    before = count("Boom", "INTERNAL")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await channel.unary_unary("/t.T/Boom")(b"", metadata=auth())
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (exc.value.details() or "") and "RuntimeError" not in (exc.value.details() or "")
    assert await counted("Boom", "INTERNAL", before + 1) == before + 1


async def test_stream_authenticated_before_the_handler_and_mapped_midway(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream("/t.T/Stream")
    assert [m async for m in call(b"ok", metadata=auth())] == [b"one", b"two"]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        _ = [m async for m in call(b"ok")]
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    got: list[bytes] = []

    async def read_all() -> None:
        async for m in call(b"fail", metadata=auth()):
            got.append(m)

    before = count("Stream", "PERMISSION_DENIED")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await read_all()
    assert got == [b"one", b"two"]
    assert (exc.value.code(), exc.value.details()) == (grpc.StatusCode.PERMISSION_DENIED, "not yours any more")
    assert await counted("Stream", "PERMISSION_DENIED", before + 1) == before + 1
    gauge = metrics.STREAMS_IN_FLIGHT.labels(SERVICE, "/t.T/Stream")._value.get()
    assert gauge == 0
