"""The interceptor's mesh rules on a real grpc.aio server with mutual TLS over loopback (certificates from a real
mesh CA in a temp folder): internal methods answer only their declared identities, and a forwarded client address
counts only from the gateway. The same rules through `flowdock up`: tests/e2e/test_mesh_identity.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from flowdock_kernel import logs, mesh
from flowdock_kernel.interceptors import CallInterceptor
from flowdock_kernel.tokens import KeyCache

INTERNAL = "/t.Internal/Record"
PUBLIC = "/t.Internal/Where"


def _ident(b: bytes) -> bytes:
    return b


async def _record(request: bytes, context: Any) -> bytes:
    return b"recorded"


async def _where(request: bytes, context: Any) -> bytes:
    return logs.client_var.get().ip.encode()


HANDLERS = grpc.method_handlers_generic_handler(
    "t.Internal",
    {
        "Record": grpc.unary_unary_rpc_method_handler(_record, _ident, _ident),
        "Where": grpc.unary_unary_rpc_method_handler(_where, _ident, _ident),
    },
)

Call = Callable[[str, str, list[tuple[str, str]]], Awaitable[tuple[grpc.StatusCode, bytes]]]


@pytest.fixture
async def call_as(tmp_path: Path) -> AsyncIterator[Call]:
    folder = tmp_path / "mesh"
    mesh.ensure_mesh(folder, ["auth_svc", "storage_svc", "gateway", "scanner"])

    async def no_keys() -> Any:
        return {}

    server = grpc.aio.server(
        interceptors=[
            CallInterceptor(
                "auth",
                [INTERNAL, PUBLIC],
                KeyCache(no_keys, ttl=60),
                issuer="flowdock",
                audience="flowdock",
                internal_callers={INTERNAL: {"storage_svc"}},
                mesh=True,
            )
        ]
    )
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_secure_port(
        "127.0.0.1:0",
        mesh.MeshTls.in_folder(folder, "auth_svc").server_credentials(),  # type: ignore[arg-type]
    )
    await server.start()

    async def call(identity: str, method: str, metadata: list[tuple[str, str]]) -> tuple[grpc.StatusCode, bytes]:
        credentials = mesh.MeshTls.in_folder(folder, identity).channel_credentials()
        options = [("grpc.ssl_target_name_override", "auth_svc")]
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as ch:  # type: ignore[arg-type]
            try:
                return grpc.StatusCode.OK, await ch.unary_unary(method)(b"", metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), b""

    yield call
    await server.stop(None)


async def test_internal_method_answers_only_its_declared_identities(call_as: Call) -> None:
    assert await call_as("storage_svc", INTERNAL, []) == (grpc.StatusCode.OK, b"recorded")
    for stranger in ("scanner", "gateway", "auth_svc"):
        code, _ = await call_as(stranger, INTERNAL, [])
        assert code == grpc.StatusCode.PERMISSION_DENIED, stranger
    # A method with no allowlist answers any mesh identity.
    assert (await call_as("scanner", PUBLIC, []))[0] == grpc.StatusCode.OK


async def test_forwarded_address_counts_only_from_the_gateway(call_as: Call) -> None:
    forged = [("x-forwarded-for", "203.0.113.7"), (logs.CLIENT_IP_HEADER, "203.0.113.8")]
    for caller in ("scanner", "storage_svc"):
        assert await call_as(caller, PUBLIC, forged) == (grpc.StatusCode.OK, b"127.0.0.1"), caller
    assert await call_as("gateway", PUBLIC, forged) == (grpc.StatusCode.OK, b"203.0.113.8")
    assert await call_as("gateway", PUBLIC, forged[:1]) == (grpc.StatusCode.OK, b"203.0.113.7")
