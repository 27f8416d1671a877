"""Client channels for service-to-service calls: message limits set, request id and caller token forwarded.

Also the one HTTP/2 keepalive policy of the mesh (`Keepalive`): what every client channel sends, what every server
accepts, and what Envoy's upstream clusters send. They used to disagree (channels pinged idle connections every
30 s, servers kept gRPC's 5-minute minimum), so after ~2.5 quiet minutes a server answered GOAWAY too_many_pings
and a call meeting it failed with UNAVAILABLE.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import logs
from flowdock_kernel.mesh import MeshTls, identity_of
from flowdock_kernel.tokens import AdminCheck, KeyCache, KeyMap, SessionCache, keys_from_jwks, principal_var


@dataclass(frozen=True)
class Keepalive:
    """How often an idle connection is pinged, and how often a server lets a peer ping it.

    A server accepts pings `interval / 2` apart: twice the margin gRPC's and Envoy's timer jitter (Envoy: 15 %) needs.
    """

    interval_ms: int = 30_000
    #: How long a ping may go unanswered before the connection is considered dead.
    timeout_ms: int = 10_000
    #: Envoy's upstream pings are jittered by up to this share of the interval (its default).
    envoy_jitter_percent: int = 15

    @classmethod
    def every(cls, seconds: float) -> Keepalive:
        interval = max(int(seconds * 1000), 100)
        return cls(interval_ms=interval, timeout_ms=min(10_000, max(interval, 1000)))

    @property
    def min_accepted_ms(self) -> int:
        return self.interval_ms // 2

    def client_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.keepalive_time_ms", self.interval_ms),
            ("grpc.keepalive_timeout_ms", self.timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            # 0 = no cap on pings while no data flows (the default, 2, silently stops an idle channel's keepalive).
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def server_options(self) -> list[tuple[str, Any]]:
        return [
            # The server's own pings (a dead client is noticed) follow the same interval.
            ("grpc.keepalive_time_ms", self.interval_ms),
            ("grpc.keepalive_timeout_ms", self.timeout_ms),
            # Accept what client_options() and Envoy send: pings without calls, every interval (minus jitter).
            ("grpc.keepalive_permit_without_calls", 1),
            # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS: on a server, the shortest gap between pings it
            # takes without a strike (default 5 minutes); three strikes and it sends GOAWAY too_many_pings.
            ("grpc.http2.min_ping_interval_without_data_ms", self.min_accepted_ms),
            ("grpc.http2.max_ping_strikes", 2),
        ]


DEFAULT_KEEPALIVE = Keepalive()


def channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """Message limits, the same on both ends (keepalive comes from `Keepalive`, which differs per end)."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def server_options(max_message_bytes: int, keepalive: Keepalive = DEFAULT_KEEPALIVE) -> list[tuple[str, Any]]:
    return [*channel_options(max_message_bytes), *keepalive.server_options()]


# Internal calls that may run twice without harm: retried once when they fail UNAVAILABLE (a connection that went
# away under them, e.g. a GOAWAY, or a replica stopping). Others (NotifyUser sends mail, RecordEvents appends)
# are not retried.
IDEMPOTENT_INTERNAL_METHODS: dict[str, tuple[str, ...]] = {
    "flowdock.auth.v1.AuthService": ("GetJwks",),
    "flowdock.auth.v1.AuthInternalService": ("CheckSession", "LookupUser"),
    "flowdock.storage.v1.StorageService": ("GetNode",),
    "flowdock.storage.v1.StorageAdminService": ("GetUserQuota", "SetQuota", "DeleteUserData"),
    "flowdock.share.v1.AccessService": ("CheckAccess", "CheckLinkAccess", "DropShares", "DeleteUserShares"),
}


def retry_service_config() -> str:
    """gRPC service config: one retry, on UNAVAILABLE only, of the idempotent internal methods."""
    names = [{"service": svc, "method": m} for svc, methods in IDEMPOTENT_INTERNAL_METHODS.items() for m in methods]
    policy = {
        "maxAttempts": 2,
        "initialBackoff": "0.05s",
        "maxBackoff": "0.2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": policy}]})


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


# A peer that went away (a crash `flowdock up` or Docker restarts in seconds) is tried again at least every 2 s
# (+/-20 % jitter). gRPC's default backoff grows 1.6x from 1 s to 120 s, so after a longer outage calls kept failing
# for many seconds after the peer was back (tests/unit/test_keepalive.py); a connection attempt on a LAN is cheap.
RECONNECT_BACKOFF = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def internal_channel(
    address: str,
    max_message_bytes: int,
    tls: MeshTls | None = None,
    peer: str = "",
    keepalive: Keepalive = DEFAULT_KEEPALIVE,
) -> grpc.aio.Channel:
    """`host:port`, or several replicas as `host:port,host:port` (balanced round-robin by the client).

    With `tls` (the caller's mesh identity) the channel is mutual TLS and the server must prove it is `peer` (its
    mesh identity, e.g. `auth_svc`, checked against the certificate's SAN whatever address it is reached at).
    Keepalive follows the mesh's one policy; idempotent methods are retried once on UNAVAILABLE."""
    target = f"ipv4:{address}" if "," in address else address
    options = [
        *channel_options(max_message_bytes),
        *keepalive.client_options(),
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry_service_config()),
        *RECONNECT_BACKOFF,
    ]
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
