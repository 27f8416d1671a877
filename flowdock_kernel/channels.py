"""Client channels for service-to-service calls: message limits set, request id and caller token forwarded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import logs
from flowdock_kernel.mesh import MeshTls, identity_of
from flowdock_kernel.tokens import AdminCheck, KeyCache, KeyMap, SessionCache, keys_from_jwks, principal_var


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def _forwarded_metadata(metadata: Any) -> list[tuple[str, str | bytes]]:
    out = list(metadata or ())
    keys = {k for k, _ in out}
    rid = logs.request_id_var.get()
    if rid and "x-request-id" not in keys:
        out.append(("x-request-id", rid))
    principal = principal_var.get()
    if principal is not None and "authorization" not in keys:
        # Internal calls act on behalf of the end user: the callee re-verifies the same token.
        out.append(("authorization", f"Bearer {principal.token}"))
    return out


class _Forward(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
):
    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=grpc.aio.Metadata(*_forwarded_metadata(details.metadata)),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, it: Any) -> Any:
        return await continuation(self._details(details), it)


def internal_channel(
    address: str, max_message_bytes: int, tls: MeshTls | None = None, peer: str = ""
) -> grpc.aio.Channel:
    """`host:port`, or several replicas as `host:port,host:port` (balanced round-robin by the client).

    With `tls` (the caller's mesh identity) the channel is mutual TLS and the server must prove it is `peer` (its
    mesh identity, e.g. `auth_svc`, checked against the certificate's SAN whatever address it is reached at)."""
    target = f"ipv4:{address}" if "," in address else address
    options = [*channel_options(max_message_bytes), ("grpc.lb_policy_name", "round_robin")]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=[_Forward()])
    options.append(("grpc.ssl_target_name_override", identity_of(peer)))
    credentials = tls.channel_credentials()
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=[_Forward()])  # type: ignore[arg-type]


def remote_signing_keys(auth: grpc.aio.Channel, ttl: float) -> KeyCache:
    """auth_svc's public keys via AuthService.GetJwks, cached, and its session revocation check (CheckSession,
    cached SESSION_CHECK_SECONDS): how every other service verifies tokens."""
    stub = auth_pb2_grpc.AuthServiceStub(auth)

    async def fetch() -> KeyMap:
        body = await stub.GetJwks(auth_pb2.GetJwksRequest(), timeout=5)
        return keys_from_jwks(body.data)

    internal = auth_pb2_grpc.AuthInternalServiceStub(auth)

    async def session_active(sid: str) -> bool:
        answer = await internal.CheckSession(auth_pb2.CheckSessionRequest(session_id=sid), timeout=2)
        return bool(answer.active)

    return KeyCache(fetch, ttl=ttl, sessions=SessionCache(session_active))


def remote_admin_check(auth: grpc.aio.Channel) -> AdminCheck:
    """Admin rights confirmed against auth_svc's record (CheckSession's role), for admin operations in other
    services; the token's claim alone is not enough once an admin is demoted."""
    internal = auth_pb2_grpc.AuthInternalServiceStub(auth)

    async def is_admin_now(sid: str) -> bool:
        answer = await internal.CheckSession(auth_pb2.CheckSessionRequest(session_id=sid), timeout=2)
        return bool(answer.active) and answer.role == auth_pb2.ROLE_ADMIN

    return AdminCheck(is_admin_now)
