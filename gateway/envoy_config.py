"""Build Envoy's bootstrap for the FlowDock gateway from the API contract.

One listener serves native gRPC (h2c), grpc-web (+CORS) and REST (grpc_json_transcoder). The whole
bootstrap is built from envoy-data-plane's typed messages, so a misspelt field fails in Python
instead of in Envoy, and serialised with snake_case keys; `envoy --mode validate` remains the
judge of Envoy's own constraints (envoy-data-plane does not check them).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import betterproto2
from envoy_data_plane.envoy.config.accesslog.v3 import (
    AccessLog,
    AccessLogFilter,
    AndFilter,
    ComparisonFilter,
    ComparisonFilterOp,
    HeaderFilter,
    OrFilter,
    StatusCodeFilter,
)
from envoy_data_plane.envoy.config.bootstrap.v3 import (
    Admin,
    Bootstrap,
    BootstrapStaticResources,
    LayeredRuntime,
    RuntimeLayer,
    RuntimeLayerAdminLayer,
)
from envoy_data_plane.envoy.config.cluster.v3 import (
    CircuitBreakers,
    CircuitBreakersThresholds,
    Cluster,
    ClusterDiscoveryType,
)
from envoy_data_plane.envoy.config.core.v3 import (
    Address,
    DataSource,
    HeaderValue,
    HeaderValueOption,
    HeaderValueOptionHeaderAppendAction,
    HealthCheck,
    HealthCheckGrpcHealthCheck,
    HealthCheckHttpHealthCheck,
    Http1ProtocolOptions,
    Http2ProtocolOptions,
    HttpUri,
    KeepaliveSettings,
    Node,
    RuntimeFractionalPercent,
    RuntimeUInt32,
    SocketAddress,
    SubstitutionFormatString,
    TransportSocket,
    TypedExtensionConfig,
)
from envoy_data_plane.envoy.config.endpoint.v3 import (
    ClusterLoadAssignment,
    Endpoint,
    LbEndpoint,
    LocalityLbEndpoints,
)
from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, Listener
from envoy_data_plane.envoy.config.overload.v3 import (
    OverloadAction,
    OverloadManager,
    ResourceMonitor,
    ThresholdTrigger,
    Trigger,
)
from envoy_data_plane.envoy.config.route.v3 import (
    DirectResponseAction,
    FilterConfig,
    HeaderMatcher,
    QueryParameterMatcher,
    RateLimit,
    RateLimitAction,
    RateLimitActionMetaData,
    RateLimitActionMetaDataSource,
    RateLimitActionRemoteAddress,
    RetryPolicy,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    VirtualCluster,
    VirtualHost,
)
from envoy_data_plane.envoy.extensions.access_loggers.stream.v3 import StdoutAccessLog
from envoy_data_plane.envoy.extensions.common.ratelimit.v3 import LocalRateLimitDescriptor, RateLimitDescriptorEntry
from envoy_data_plane.envoy.extensions.compression.brotli.compressor.v3 import Brotli
from envoy_data_plane.envoy.extensions.compression.gzip.compressor.v3 import Gzip
from envoy_data_plane.envoy.extensions.filters.http.compressor.v3 import (
    Compressor,
    CompressorCommonDirectionConfig,
    CompressorOverrides,
    CompressorPerRoute,
    CompressorResponseDirectionConfig,
    ResponseDirectionOverrides,
)
from envoy_data_plane.envoy.extensions.filters.http.cors.v3 import Cors, CorsPolicy
from envoy_data_plane.envoy.extensions.filters.http.grpc_json_transcoder.v3 import (
    GrpcJsonTranscoder,
    GrpcJsonTranscoderPrintOptions,
    GrpcJsonTranscoderRequestValidationOptions,
)
from envoy_data_plane.envoy.extensions.filters.http.grpc_web.v3 import GrpcWeb
from envoy_data_plane.envoy.extensions.filters.http.jwt_authn.v3 import (
    JwksAsyncFetch,
    JwtAuthentication,
    JwtHeader,
    JwtProvider,
    JwtRequirement,
    JwtRequirementOrList,
    RemoteJwks,
    RequirementRule,
)
from envoy_data_plane.envoy.extensions.filters.http.local_ratelimit.v3 import LocalRateLimit
from envoy_data_plane.envoy.extensions.filters.http.lua.v3 import Lua
from envoy_data_plane.envoy.extensions.filters.http.router.v3 import Router
from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
    HttpConnectionManager,
    HttpFilter,
    LocalReplyConfig,
    ResponseMapper,
)
from envoy_data_plane.envoy.extensions.resource_monitors.fixed_heap.v3 import FixedHeapConfig
from envoy_data_plane.envoy.extensions.transport_sockets.tls.v3 import (
    CertificateValidationContext,
    CommonTlsContext,
    DownstreamTlsContext,
    SubjectAltNameMatcher,
    SubjectAltNameMatcherSanType,
    TlsCertificate,
    UpstreamTlsContext,
)
from envoy_data_plane.envoy.extensions.upstreams.http.v3 import (
    HttpProtocolOptions,
    HttpProtocolOptionsExplicitHttpConfig,
)
from envoy_data_plane.envoy.type.matcher.v3 import RegexMatcher, StringMatcher
from envoy_data_plane.envoy.type.metadata.v3 import MetadataKey, MetadataKeyPathSegment
from envoy_data_plane.envoy.type.v3 import FractionalPercent, Percent, TokenBucket
from envoy_data_plane.google.protobuf import Any as PbAny
from envoy_data_plane.google.protobuf import Empty, Struct

from flowdock_kernel.channels import DEFAULT_KEEPALIVE, Keepalive
from flowdock_kernel.grpc_errors import ERROR_REASON_HEADER, REST_STATUS_BY_REASON
from gateway import json_fields
from gateway.descriptor import RoutedService, load_services
from gateway.openapi import OPENAPI_PATH
from gateway.webapp import APP_SECURITY_HEADERS, BUILD_HINT, NO_CACHE, AppFile, scan

__all__ = [
    "CLIENT_IP_HEADER",
    "DEFAULT_CORS_ORIGINS",
    "IDENTITY_HEADERS",
    "PUBLIC_PREFIX",
    "EdgeTls",
    "GatewaySpec",
    "MeshFiles",
    "build_bootstrap",
]

_log = logging.getLogger(__name__)

MiB = 1024 * 1024

#: Browsers on the developer's machine (any port, http or https).
DEFAULT_CORS_ORIGINS: tuple[str, ...] = (
    r"https?://localhost(:[0-9]+)?",
    r"https?://127\.0\.0\.1(:[0-9]+)?",
)
#: Headers that claim an identity; only a verified hop may set them, so clients' copies are dropped.
IDENTITY_HEADERS: tuple[str, ...] = (
    "x-jwt-payload",
    "x-user-id",
    "x-user-role",
    "x-flowdock-user",
    "x-forwarded-user",
)
#: The client address as Envoy determined it (the TCP peer, or with xff_num_trusted_hops the address that many
#: proxies back in X-Forwarded-For); always overwritten, so a client's own copy never reaches a service.
CLIENT_IP_HEADER = "x-flowdock-client-ip"
#: Future public-link routes (no account) live under this REST prefix.
PUBLIC_PREFIX = "/api/v1/public/"
JWT_PROVIDER = "flowdock"
SELF_CLUSTER = "gateway_self"
JWKS_SERVICE = "flowdock.auth.v1.AuthService"
PREFLIGHT_CLUSTER = "gateway_preflight"
ADMIN_CLUSTER = "gateway_admin"
JWKS_PATH = "/.well-known/jwks.json"
OPENAPI_MAX_BYTES = 4 * MiB

_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_ALLOW_HEADERS = (
    "authorization, content-type, x-grpc-web, x-user-agent, grpc-timeout, x-request-id, x-link-session"
)
_CORS_EXPOSE_HEADERS = (
    "grpc-status, grpc-message, grpc-status-details-bin, content-disposition, content-length, content-range, "
    "accept-ranges, etag, x-request-id"
)
# HTTP status of a local reply -> gRPC code put in the REST error body (google.rpc.Code numbers).
_LOCAL_REPLY_CODES: tuple[tuple[int, int], ...] = (
    (400, 3),  # INVALID_ARGUMENT
    (401, 16),  # UNAUTHENTICATED
    (403, 7),  # PERMISSION_DENIED
    (404, 5),  # NOT_FOUND
    (413, 8),  # RESOURCE_EXHAUSTED (a size limit)
    (429, 8),  # RESOURCE_EXHAUSTED (rate limit)
    (500, 13),  # INTERNAL
    (502, 14),  # UNAVAILABLE
    (503, 14),  # UNAVAILABLE
    (504, 4),  # DEADLINE_EXCEEDED
)
_ACCESS_LOG_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "method": "%REQ(:METHOD)%",
    "original_method": "%REQ(X-ENVOY-ORIGINAL-METHOD)%",
    # The path as the client sent it, without its query string (link sessions, page tokens); paths that carry a
    # credential are logged by _redacted_access_logs instead.
    "path": "%PATH(NQ:ORIG_OR_PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS(NUMBER)%",
    "response_flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "upstream_host": "%UPSTREAM_HOST%",
    "user_agent": "%REQ(USER-AGENT)%",
}


@dataclass(frozen=True, kw_only=True)
class GatewaySpec:
    """Everything that varies between deployments of the gateway; the rest comes from the contract.

    Example: ``GatewaySpec(descriptor_path=Path("gen/python/flowdock/descriptor.binpb"),
    upstreams={"auth": [("127.0.0.1", 50051)], "storage": [...], "share": [...]})``
    """

    listen_host: str = "127.0.0.1"
    port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    descriptor_path: Path
    #: cluster name ("auth", "storage", "share") -> endpoints; several endpoints are replicas.
    upstreams: dict[str, list[tuple[str, int]]]
    jwt_issuer: str = "flowdock"
    jwt_audience: str = "flowdock"
    jwks_cache_seconds: int = 30
    #: RE2 regexes matched against the whole Origin header.
    cors_allowed_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    #: Per client: each remote address, and each signed-in user (the token's `sub`), has its own bucket.
    rate_limit_per_second: int = 200
    rate_limit_burst: int = 400
    #: The last layer, shared by all clients: generous, so one client never reaches it alone.
    global_rate_limit_per_second: int = 2000
    global_rate_limit_burst: int = 4000
    #: Per-client buckets kept at most (least recently used dropped first), so spoofed values cannot grow memory.
    rate_limit_max_clients: int = 10000
    #: Per message, for the transcoder on upload routes and for every response (Envoy's 1 MiB default broke 5 MB
    #: calls and 1 MiB download chunks).
    max_body_bytes: int = 64 * MiB
    #: JSON request bodies of public routes (login, register, reset, link open): kilobytes.
    public_body_bytes: int = 16 * 1024
    #: JSON request bodies of every other REST route (uploads excepted).
    json_body_bytes: int = 1 * MiB
    #: Deadline of unary calls (streaming calls have none: uploads and downloads last as long as they need).
    unary_timeout: timedelta = field(default=timedelta(seconds=60))
    #: Envoy's heap bound for the overload manager (0 = no overload manager).
    max_heap_bytes: int = 1024 * MiB
    #: Per downstream connection, the watermark above which Envoy stops reading the upstream. Envoy's 1 MiB default
    #: is less than one download message (storage_chunk_bytes, 1 MiB, plus framing) that the transcoder holds whole:
    #: it paused storage_svc's stream about once per message (~1,300 pauses per GiB); 2 MiB: ~30.
    connection_buffer_bytes: int = 2 * MiB
    #: HTTP/2 flow-control windows offered to clients (native gRPC). Envoy's defaults (256 MiB per stream and per
    #: connection) let each client push up to 256 MiB that Envoy must hold while storage_svc is busy: 32 native
    #: uploads at once reached the heap bound and were refused "envoy overloaded" (issue 15's bench). Envoy's
    #: edge guidance is 64 KiB / 1 MiB; 4 MiB per stream keeps a 1 MiB-message upload streaming on loopback and a
    #: LAN while bounding what 32 uploads can park in Envoy to 128 MiB.
    downstream_stream_window_bytes: int = 4 * MiB
    downstream_connection_window_bytes: int = 16 * MiB
    access_log: bool = True
    #: The OpenAPI document served at /api/v1/openapi.json; None: openapi.json beside the descriptor set, if there.
    openapi_path: Path | None = None
    health_check_interval: timedelta = field(default=timedelta(seconds=2))
    #: The mesh's one keepalive policy: Envoy pings its upstreams as the services' own channels do.
    keepalive: Keepalive = DEFAULT_KEEPALIVE
    #: The browser app's build (Vite's dist: index.html + assets/); None or a folder without index.html serves
    #: the "not built yet" page on the app's routes instead. Read when the config is built.
    web_dir: Path | None = None
    #: The gateway's mesh identity (mutual TLS to the services; flowdock_kernel.mesh). None: plaintext h2c upstreams.
    mesh: MeshFiles | None = None
    #: TLS on the public listener (certificate chain and key, PEM). None: plaintext.
    edge_tls: EdgeTls | None = None
    #: Proxies in front of Envoy whose X-Forwarded-For entries are trusted (a load balancer: 1). 0: the TCP peer.
    xff_num_trusted_hops: int = 0
    #: A listener (on listen_host) serving only GET /stats/prometheus from the admin interface, so Prometheus can
    #: scrape while the admin interface itself stays on loopback. 0: none.
    stats_port: int = 0


@dataclass(frozen=True)
class MeshFiles:
    """CA, certificate and key of the gateway's mesh identity."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class EdgeTls:
    """The public listener's certificate chain and key; HSTS max-age sent with every response over it."""

    cert_file: Path
    key_file: Path
    hsts_max_age: int = 31536000


# --------------------------------------------------------------------------------------------- helpers


def _any(message: betterproto2.Message) -> PbAny:
    """Pack a typed message (its module registered it in the message pool on import)."""
    return PbAny.pack(message)


def _address(host: str, port: int) -> Address:
    return Address(socket_address=SocketAddress(address=host, port_value=port))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _loopback_for(host: str) -> str:
    """The address Envoy uses to reach its own listener (a wildcard bind is reached via loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _percent(value: int, key: str) -> RuntimeFractionalPercent:
    return RuntimeFractionalPercent(default_value=FractionalPercent(numerator=value), runtime_key=key)


def _regex(pattern: str) -> StringMatcher:
    return StringMatcher(safe_regex=RegexMatcher(regex=pattern))


def _method_is(verb: str) -> HeaderMatcher:
    return HeaderMatcher(name=":method", string_match=StringMatcher(exact=verb))


def _header(key: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(
        header=HeaderValue(key=key, value=value),
        append_action=HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _grpc_request() -> HeaderMatcher:
    """gRPC and grpc-web requests (content-type application/grpc*)."""
    return HeaderMatcher(name="content-type", string_match=StringMatcher(prefix="application/grpc"))


def _not_grpc_request() -> HeaderMatcher:
    """Matches REST/plain HTTP requests: content-type absent or not application/grpc*.

    grpc-web requests count as gRPC too (application/grpc-web*), and the grpc_web filter rewrites
    their content-type to application/grpc before later filters run.
    """
    return HeaderMatcher(
        name="content-type",
        string_match=StringMatcher(prefix="application/grpc"),
        invert_match=True,
        treat_missing_header_as_empty=True,
    )


def _rest_request() -> AccessLogFilter:
    """Local-reply filter for REST callers: plain HTTP, or transcoded (content-type is gRPC by then).

    Envoy decides whether a local reply is gRPC-shaped from the request as it arrived, so a
    transcoded REST call gets a plain reply that must be rewritten; the transcoder marks those
    requests with x-envoy-original-method.
    """
    return AccessLogFilter(
        or_filter=OrFilter(
            filters=[
                AccessLogFilter(header_filter=HeaderFilter(header=_not_grpc_request())),
                AccessLogFilter(
                    header_filter=HeaderFilter(header=HeaderMatcher(name="x-envoy-original-method", present_match=True))
                ),
            ]
        )
    )


def _json_error(code: int, message: str) -> Struct:
    return cast(Struct, Struct.from_dict({"code": code, "message": message}))


# ----------------------------------------------------------------------------------------- jwt_authn


def _jwt_rules(services: list[RoutedService]) -> list[RequirementRule]:
    """First-match rules: public routes first, then protected ones, then "token optional".

    Unknown paths end on the last rule (a token is verified if sent, not demanded) so they get
    the transcoder's / route table's 404 rather than a misleading 401; they reach no upstream.
    """
    needs_token = JwtRequirement(provider_name=JWT_PROVIDER)
    public: list[RequirementRule] = []
    protected: list[RequirementRule] = []
    for svc in services:
        for method in svc.methods:
            if not method.public:
                continue
            public.append(RequirementRule(match=RouteMatch(path=method.grpc_path)))
            for binding in method.http:
                match = (
                    RouteMatch(path=binding.template, headers=[_method_is(binding.verb)])
                    if binding.is_literal
                    else RouteMatch(
                        safe_regex=RegexMatcher(regex=binding.path_regex),
                        headers=[_method_is(binding.verb)],
                    )
                )
                public.append(RequirementRule(match=match))
    public.append(RequirementRule(match=RouteMatch(prefix=PUBLIC_PREFIX)))
    seen: set[str] = set()
    for svc in services:
        protected.append(RequirementRule(match=RouteMatch(prefix=f"/{svc.full_name}/"), requires=needs_token))
        for method in svc.methods:
            if method.public:
                continue
            for binding in method.http:
                # Any verb on a protected template needs a token: no method can slip past the rule.
                if binding.path_regex in seen:
                    continue
                seen.add(binding.path_regex)
                protected.append(
                    RequirementRule(
                        match=RouteMatch(safe_regex=RegexMatcher(regex=binding.path_regex)),
                        requires=needs_token,
                    )
                )
    fallback = RequirementRule(
        match=RouteMatch(prefix="/"),
        requires=JwtRequirement(
            requires_any=JwtRequirementOrList(requirements=[needs_token, JwtRequirement(allow_missing=Empty())])
        ),
    )
    return [*public, *protected, fallback]


def _jwt_filter(spec: GatewaySpec, services: list[RoutedService]) -> JwtAuthentication:
    return JwtAuthentication(
        providers={
            JWT_PROVIDER: JwtProvider(
                issuer=spec.jwt_issuer,
                audiences=[spec.jwt_audience],
                # Services verify the token again themselves (defence in depth), so pass it on.
                forward=True,
                # Only the Authorization header: tokens in query strings end up in logs.
                from_headers=[JwtHeader(name="authorization", value_prefix="Bearer ")],
                # Per-user rate limiting reads the verified `sub` from here.
                payload_in_metadata=JWT_PAYLOAD_METADATA,
                remote_jwks=RemoteJwks(
                    http_uri=HttpUri(
                        uri=f"http://{_uri_host(spec.listen_host)}:{spec.port}{JWKS_PATH}",
                        cluster=SELF_CLUSTER,
                        timeout=timedelta(seconds=5),
                    ),
                    cache_duration=timedelta(seconds=spec.jwks_cache_seconds),
                    # Fetched in the background and shared by every worker thread, refreshed each cache_duration,
                    # and kept while a refresh fails (retried every second): an auth_svc outage then leaves token
                    # checks to the services, which answer UNAVAILABLE (retryable) instead of the gateway's 401
                    # "Jwks remote fetch is failed", which logs clients out (tests/e2e/test_faults.py). Without it
                    # each worker fetched on demand once its copy was 30 s old, and failed while auth_svc was down.
                    # fast_listener: the first fetch goes through this very listener, so it must not wait for it
                    # (`flowdock up` is ready once a fetch succeeded: flowdock_runtime/supervisor.py _jwks_fetched).
                    async_fetch=JwksAsyncFetch(fast_listener=True, failed_refetch_duration=timedelta(seconds=1)),
                ),
            )
        },
        rules=_jwt_rules(services),
        bypass_cors_preflight=True,
    )


def _uri_host(host: str) -> str:
    loop = _loopback_for(host)
    return f"[{loop}]" if ":" in loop else loop


# ------------------------------------------------------------------------- per-client limits and sizes

#: jwt_authn's dynamic metadata key holding the verified token's claims (rate limiting reads `sub` from it: a
#: client cannot forge metadata the way it could a header).
JWT_PAYLOAD_METADATA = "jwt_payload"
_JWT_METADATA_NAMESPACE = "envoy.filters.http.jwt_authn"


def _transcoder(
    spec: GatewaySpec, services: list[RoutedService], max_request_bytes: int, *, sparse: bool = False
) -> GrpcJsonTranscoder:
    """The transcoder with one request-body bound (per message); responses keep the large bound for downloads.

    Answers print every field without presence (`"size": "0"`, `"sha256": ""`: what clients parse), except `sparse`
    ones (a sparse_json method asked `compact=true`: listings, where those were ~13 % of a folder entry's JSON),
    which print set fields only, as the proto3 JSON mapping does by default."""
    return GrpcJsonTranscoder(
        proto_descriptor=str(Path(spec.descriptor_path).resolve()),
        services=[svc.full_name for svc in services],
        print_options=GrpcJsonTranscoderPrintOptions(always_print_primitive_fields=not sparse),
        convert_grpc_status=True,
        request_validation_options=GrpcJsonTranscoderRequestValidationOptions(
            reject_unknown_method=True, reject_unknown_query_parameters=True
        ),
        max_request_body_size=max_request_bytes,
        max_response_body_size=spec.max_body_bytes,
    )


def _client_rate_limit(spec: GatewaySpec) -> LocalRateLimit:
    """Token buckets per remote address and per signed-in user, then one shared bucket as the last layer.

    A descriptor entry with an empty value is a wildcard: Envoy keeps one bucket per distinct value (at most
    rate_limit_max_clients, least recently used evicted). The `user` descriptor comes from the verified token's
    `sub` in jwt_authn's metadata, so it exists only for requests with a valid token. A refused request gets
    429 + Retry-After over REST and RESOURCE_EXHAUSTED over gRPC (UNAVAILABLE would be retried by clients).
    """
    per_client = TokenBucket(
        max_tokens=spec.rate_limit_burst,
        tokens_per_fill=spec.rate_limit_per_second,
        fill_interval=timedelta(seconds=1),
    )
    return LocalRateLimit(
        stat_prefix="gateway_rate_limit",
        token_bucket=TokenBucket(
            max_tokens=spec.global_rate_limit_burst,
            tokens_per_fill=spec.global_rate_limit_per_second,
            fill_interval=timedelta(seconds=1),
        ),
        filter_enabled=_percent(100, "gateway.rate_limit.enabled"),
        filter_enforced=_percent(100, "gateway.rate_limit.enforced"),
        rate_limited_as_resource_exhausted=True,
        rate_limits=[
            RateLimit(actions=[RateLimitAction(remote_address=RateLimitActionRemoteAddress())]),
            RateLimit(
                actions=[
                    RateLimitAction(
                        metadata=RateLimitActionMetaData(
                            descriptor_key="user",
                            metadata_key=MetadataKey(
                                key=_JWT_METADATA_NAMESPACE,
                                path=[
                                    MetadataKeyPathSegment(key=JWT_PAYLOAD_METADATA),
                                    MetadataKeyPathSegment(key="sub"),
                                ],
                            ),
                            source=RateLimitActionMetaDataSource.DYNAMIC,
                            skip_if_absent=True,
                        )
                    )
                ]
            ),
        ],
        descriptors=[
            LocalRateLimitDescriptor(entries=[RateLimitDescriptorEntry(key="remote_address")], token_bucket=per_client),
            LocalRateLimitDescriptor(entries=[RateLimitDescriptorEntry(key="user")], token_bucket=per_client),
        ],
        max_dynamic_descriptors=spec.rate_limit_max_clients,
        # Every request also takes a token from the shared bucket (the global ceiling).
        always_consume_default_token_bucket=True,
        response_headers_to_add=_rate_limited_headers(),
    )


#: The query parameter that asks a sparse_json method for its compact answer (options.proto).
_COMPACT_ASKED = QueryParameterMatcher(name="compact", string_match=StringMatcher(exact="true"))


def _body_limit_routes(spec: GatewaySpec, services: list[RoutedService]) -> list[Route]:
    """REST routes whose request bodies get another bound than the default (json_body_bytes), or whose answers
    are printed sparse (sparse_json methods).

    The transcoder reads its per-route settings from the route the REST request matched (before it rewrites the
    path to the gRPC method and the route is matched again), so these routes exist only to carry that setting:
    public routes (login, register, reset, link open) take kilobytes, raw-body uploads the large per-message
    bound; sparse_json methods asked `compact=true` print set fields only. One route per (bound, sparse, verb), so
    the descriptor set is loaded only a few times.
    """
    groups: dict[tuple[str, bool, str], list[str]] = {}
    for svc in services:
        for method in svc.methods:
            tier = "upload" if method.client_streaming else "public" if method.public else "json"
            kinds = ([False] if tier != "json" else []) + ([True] if method.sparse_json else [])
            for sparse in kinds:
                for binding in method.http:
                    regexes = groups.setdefault((tier, sparse, binding.verb), [])
                    if binding.path_regex not in regexes:
                        regexes.append(binding.path_regex)
    sizes = {"upload": spec.max_body_bytes, "public": spec.public_body_bytes, "json": spec.json_body_bytes}
    routes: list[Route] = []
    # Sparse routes first: they match the same paths as a plain route of their tier, with `compact=true` besides.
    for (tier, sparse, verb), regexes in sorted(groups.items(), key=lambda group: (not group[0][1], group[0])):
        routes.append(
            Route(
                name=f"rest_body_{tier}{'_sparse' if sparse else ''}_{verb.lower()}",
                match=RouteMatch(
                    safe_regex=RegexMatcher(regex="|".join(f"(?:{r})" for r in regexes)),
                    headers=[_method_is(verb), _not_grpc_request()],
                    # Sparse only when asked: a plain request keeps the full print its clients parse.
                    query_parameters=[_COMPACT_ASKED] if sparse else [],
                ),
                # Never reached: the transcoder answers every request on these paths or rewrites it to a gRPC
                # method, matched again against the service routes.
                route=RouteAction(cluster=PREFLIGHT_CLUSTER),
                typed_per_filter_config={
                    "envoy.filters.http.grpc_json_transcoder": _any(
                        _transcoder(spec, services, sizes[tier], sparse=sparse)
                    )
                },
            )
        )
    return routes


def _service_routes(spec: GatewaySpec, services: list[RoutedService]) -> list[Route]:
    """gRPC-path routes: streaming methods one by one with no deadline, then each service with the unary one."""
    # Safe for any call: retried only when the request never reached a replica.
    retry = RetryPolicy(retry_on="connect-failure,refused-stream", num_retries=2)
    routes: list[Route] = []
    for svc in services:
        for method in svc.methods:
            if method.client_streaming or method.server_streaming:
                routes.append(
                    Route(
                        name=method.grpc_path.lstrip("/"),
                        match=RouteMatch(path=method.grpc_path),
                        # 0 = no deadline: uploads and downloads stream for as long as they need.
                        route=RouteAction(cluster=svc.cluster, timeout=timedelta(0), retry_policy=retry),
                    )
                )
        routes.append(
            Route(
                name=svc.full_name,
                match=RouteMatch(prefix=f"/{svc.full_name}/"),
                route=RouteAction(cluster=svc.cluster, timeout=spec.unary_timeout, retry_policy=retry),
            )
        )
    return routes


def _overload_manager(spec: GatewaySpec) -> OverloadManager | None:
    """Bound Envoy's heap: past 95 % it returns freed memory to the OS, past 98 % it refuses new requests (503)
    instead of growing until the kernel kills it."""
    if spec.max_heap_bytes <= 0:
        return None
    return OverloadManager(
        refresh_interval=timedelta(milliseconds=250),
        resource_monitors=[
            ResourceMonitor(
                name="envoy.resource_monitors.fixed_heap",
                typed_config=_any(FixedHeapConfig(max_heap_size_bytes=spec.max_heap_bytes)),
            )
        ],
        actions=[
            OverloadAction(
                name="envoy.overload_actions.shrink_heap",
                triggers=[Trigger(name="envoy.resource_monitors.fixed_heap", threshold=ThresholdTrigger(value=0.95))],
            ),
            OverloadAction(
                name="envoy.overload_actions.stop_accepting_requests",
                triggers=[Trigger(name="envoy.resource_monitors.fixed_heap", threshold=ThresholdTrigger(value=0.98))],
            ),
        ],
    )


def _hardening_headers() -> list[HeaderValueOption]:
    """On every response: browsers must not sniff a type other than the one sent. A download of user content
    (REST file content, download URLs, link files) is served as its stored Content-Type; without nosniff a browser
    could render an uploaded text file as HTML or script."""
    return [_header("x-content-type-options", "nosniff")]


def _runtime() -> LayeredRuntime:
    """Envoy's runtime: the body-limit routes match many REST templates in one RE2 regex, above RE2's default
    program-size threshold (100); the admin layer keeps `/runtime_modify` working."""
    return LayeredRuntime(
        layers=[
            RuntimeLayer(
                name="static",
                static_layer=cast(Struct, Struct.from_dict({"re2.max_program_size.error_level": 4096})),
            ),
            RuntimeLayer(name="admin", admin_layer=RuntimeLayerAdminLayer()),
        ]
    )


# ----------------------------------------------------------------------------------------- HCM parts


# REST downloads are transcoded streams (chunked on HTTP/1.1). storage_svc announces the body length in its initial
# metadata as x-content-length; for non-gRPC responses this turns it into a real Content-Length, so clients (and
# curl) detect a truncated body instead of mistaking it for a complete 200. A download answering a Range request
# (a client resuming a broken transfer) also sends x-content-range: for REST that makes it a 206 Partial Content
# with that Content-Range. It runs last on the response path.
_CONTENT_LENGTH_LUA = """
function envoy_on_response(handle)
  local headers = handle:headers()
  local length = headers:get("x-content-length")
  if length == nil then return end
  local ctype = headers:get("content-type") or ""
  local range = headers:get("x-content-range")
  if string.sub(ctype, 1, 16) ~= "application/grpc" then
    headers:replace("content-length", length)
    if range ~= nil and headers:get(":status") == "200" then
      headers:replace(":status", "206")
      headers:replace("content-range", range)
    end
  end
  headers:remove("x-content-length")
  headers:remove("x-content-range")
end
"""


# REST statuses the transcoder's gRPC code -> HTTP mapping gets wrong for clients: RESOURCE_EXHAUSTED is 429, which
# HTTP clients and proxies retry, also for limits that waiting will not lift. Services name the kind of error in
# x-flowdock-error-reason metadata (flowdock_kernel.grpc_errors, the one place of the mapping); for REST responses
# this puts the status of that reason. gRPC's own "message larger than max" (no reason: grpc-core answers before
# any handler runs) becomes 413. Every REST 429 (Envoy's rate limit too) carries Retry-After (services send their
# delay as retry-after metadata). gRPC and grpc-web responses keep their status untouched.
_REST_STATUS_LUA = """
local BY_REASON = {%(table)s}
function envoy_on_response(handle)
  local headers = handle:headers()
  local ctype = headers:get("content-type") or ""
  if string.sub(ctype, 1, 16) == "application/grpc" then return end
  local reason = headers:get("%(header)s")
  local status = reason and BY_REASON[reason]
  if status == nil and reason == nil and headers:get(":status") == "429" then
    local body = handle:body()  -- a short JSON error (only 429s without a reason are read)
    local text = body and body:getBytes(0, body:length()) or ""
    if string.find(text, "Received message larger than max", 1, true) then status = "413" end
    headers = handle:headers()  -- the header object of before body() is out of scope
  end
  if status ~= nil then headers:replace(":status", status) end
  if headers:get(":status") == "429" and headers:get("retry-after") == nil then
    headers:replace("retry-after", "1")
  end
end
"""


# A browser that navigates to a public link's download (a plain GET with Accept: text/html) and is refused (the
# link is gone, used up, or needs its password again) is sent to the app's page for the link, /s/<token>, which
# says why in words, instead of getting the API's JSON error. Scripts (curl: Accept */*) keep the JSON error, and so
# does a request with Range: a download manager resuming (a navigation never sends one) would store the page's HTML
# as the rest of the file, and needs its 416 (with Content-Range) as it is.
_LINK_PAGE_LUA = """
local CONTENT = "^/api/v1/public/links/([^/?#]+)/files/[^/?#]+/content"
function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":method") ~= "GET" or headers:get("range") ~= nil then return end
  local accept = headers:get("accept") or ""
  if not string.find(accept, "text/html", 1, true) then return end
  local token = string.match(headers:get(":path") or "", CONTENT)
  if token then handle:streamInfo():dynamicMetadata():set("flowdock.link_page", "token", token) end
end
function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("flowdock.link_page")
  if meta == nil or meta["token"] == nil then return end
  local status = tonumber(handle:headers():get(":status") or "")
  if status == nil or status < 400 then return end
  local body = handle:body()  -- a short JSON error: replaced by the redirect
  local headers = handle:headers()  -- the header object of before body() is out of scope
  headers:replace(":status", "303")
  headers:replace("location", "/s/" .. meta["token"] .. "?refused=" .. status)
  headers:replace("content-type", "text/plain; charset=utf-8")
  headers:replace("cache-control", "no-store")
  if body then body:setBytes("") end
end
"""


def _link_page_filter() -> HttpFilter:
    """Refused public-link downloads in a browser: to the app's link page (see _LINK_PAGE_LUA)."""
    return HttpFilter(
        name="flowdock.link_page",
        typed_config=_any(Lua(default_source_code=DataSource(inline_string=_LINK_PAGE_LUA))),
    )


# HTTP allows header names and values that gRPC metadata does not (`foo^`, a `-bin` value that is not base64, a
# malformed grpc-timeout): the upstream's gRPC core refused such a request with INTERNAL, a 500 for a client's
# typo. The services read none of them, so they are dropped here, before any filter turns headers into metadata.
_GRPC_SAFE_HEADERS_LUA = """
function envoy_on_request(handle)
  local headers = handle:headers()
  local drop = {}
  for key, value in pairs(headers) do
    if string.sub(key, 1, 1) ~= ":" then
      if string.find(key, "[^0-9a-z_.%-]") then
        drop[#drop + 1] = key
      elseif string.sub(key, -4) == "-bin" then
        if not string.find(value, "^[A-Za-z0-9+/]*=?=?$") or #value % 4 == 1 then drop[#drop + 1] = key end
      elseif key == "grpc-timeout" then
        if #value > 9 or not string.find(value, "^%d+[HMSmun]$") then drop[#drop + 1] = key end
      end
    end
  end
  for _, key in ipairs(drop) do
    headers:remove(key)
  end
end
"""


def _unknown_fields_filter(spec: GatewaySpec) -> HttpFilter:
    """REST bodies with fields their message does not have: 400 naming the field (gateway/json_fields.py), before
    the transcoder, which would drop them silently. After jwt_authn: an anonymous body is never read."""
    source = json_fields.lua_source(Path(spec.descriptor_path))
    return HttpFilter(
        name="envoy.filters.http.lua.unknown_fields",
        typed_config=_any(Lua(default_source_code=DataSource(inline_string=source))),
    )


def _rate_limited_headers() -> list[HeaderValueOption]:
    """On the gateway's own rate-limit answers: when to come back, and the reason services give for theirs (native
    gRPC clients read both as metadata; they get no status details from Envoy)."""
    return [_header("retry-after", "1"), _header(ERROR_REASON_HEADER, "RATE_LIMITED")]


def _rest_status_filter() -> HttpFilter:
    """Response-side REST status for error kinds the gRPC code alone maps badly (see _REST_STATUS_LUA)."""
    table = ", ".join(f'{reason} = "{status}"' for reason, status in sorted(REST_STATUS_BY_REASON.items()))
    source = _REST_STATUS_LUA % {"table": table, "header": ERROR_REASON_HEADER}
    return HttpFilter(
        name="envoy.filters.http.lua.rest_status",
        typed_config=_any(Lua(default_source_code=DataSource(inline_string=source))),
    )


def _grpc_safe_headers_filter() -> HttpFilter:
    """Drops request headers gRPC metadata cannot carry (see _GRPC_SAFE_HEADERS_LUA); first in the chain."""
    return HttpFilter(
        name="flowdock.grpc_safe_headers",
        typed_config=_any(Lua(default_source_code=DataSource(inline_string=_GRPC_SAFE_HEADERS_LUA))),
    )


#: Compressed on the app's routes only (the filters are off elsewhere): API responses keep their bytes and their
#: Content-Length (see _CONTENT_LENGTH_LUA), and a streamed download is never buffered through a compressor.
_COMPRESSIBLE_TYPES = [
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "image/svg+xml",
    "text/plain",
    "font/ttf",
    "image/x-icon",
    "application/wasm",
]
COMPRESSORS = ("envoy.filters.http.compressor.brotli", "envoy.filters.http.compressor.gzip")


def _compressor(name: str, library: betterproto2.Message) -> HttpFilter:
    config = Compressor(
        response_direction_config=CompressorResponseDirectionConfig(
            common_config=CompressorCommonDirectionConfig(min_content_length=256, content_type=_COMPRESSIBLE_TYPES)
        ),
        compressor_library=TypedExtensionConfig(name=name, typed_config=_any(library)),
    )
    return HttpFilter(name=name, typed_config=_any(config), disabled=True)


def _http_filters(spec: GatewaySpec, services: list[RoutedService]) -> list[HttpFilter]:
    """grpc-safe headers (lua) -> link page (lua: refused link downloads in a browser) -> lua (response:
    Content-Length) -> compressors (app routes only) -> cors -> grpc_web -> jwt_authn -> grpc_json_transcoder ->
    local_ratelimit -> router."""
    return [
        _grpc_safe_headers_filter(),
        _link_page_filter(),
        HttpFilter(
            name="envoy.filters.http.lua",
            typed_config=_any(Lua(default_source_code=DataSource(inline_string=_CONTENT_LENGTH_LUA))),
        ),
        _rest_status_filter(),
        # Brotli first: with both accepted at equal weight, Envoy's compressors pick the first in the chain.
        # Envoy's gzip defaults (4 KiB window, memory level 5) sent the app's 510 KB bundle as 177 KB; a 32 KiB
        # window: 157 KB (what Vite reports). Brotli quality 5 (default 3): 147 KB.
        _compressor(COMPRESSORS[0], Brotli(quality=5)),
        _compressor(COMPRESSORS[1], Gzip(window_bits=15, memory_level=9)),
        HttpFilter(name="envoy.filters.http.cors", typed_config=_any(Cors())),
        HttpFilter(name="envoy.filters.http.grpc_web", typed_config=_any(GrpcWeb())),
        HttpFilter(name="envoy.filters.http.jwt_authn", typed_config=_any(_jwt_filter(spec, services))),
        _unknown_fields_filter(spec),
        HttpFilter(
            name="envoy.filters.http.grpc_json_transcoder",
            typed_config=_any(_transcoder(spec, services, spec.json_body_bytes)),
        ),
        HttpFilter(name="envoy.filters.http.local_ratelimit", typed_config=_any(_client_rate_limit(spec))),
        HttpFilter(name="envoy.filters.http.router", typed_config=_any(Router())),
    ]


def _cors_policy(spec: GatewaySpec) -> CorsPolicy:
    return CorsPolicy(
        allow_origin_string_match=[_regex(origin) for origin in spec.cors_allowed_origins],
        allow_methods=_CORS_METHODS,
        allow_headers=_CORS_ALLOW_HEADERS,
        expose_headers=_CORS_EXPOSE_HEADERS,
        max_age="600",
        forward_not_matching_preflights=False,
        # Never let another origin send credentials (the browser app's refresh cookie): the app is same-origin and
        # needs no CORS, and x-flowdock-cookie-session is deliberately absent from allow_headers (docs/auth.md).
        allow_credentials=False,
    )


def _openapi_routes(spec: GatewaySpec) -> list[Route]:
    """GET /api/v1/openapi.json: the generated document (gateway/openapi.py), answered by Envoy itself, public.

    Read once when Envoy loads its configuration, so the document always matches the descriptor set it transcodes.
    """
    path = spec.openapi_path or Path(spec.descriptor_path).with_name("openapi.json")
    if not path.is_file():
        _log.warning("no OpenAPI document at %s: %s is not served", path, OPENAPI_PATH)
        return []
    if path.stat().st_size > OPENAPI_MAX_BYTES:
        raise ValueError(f"{path} is over {OPENAPI_MAX_BYTES} bytes, the gateway's direct-response limit")
    return [
        Route(
            name="openapi",
            match=RouteMatch(path=OPENAPI_PATH, headers=[_method_is("GET")]),
            direct_response=DirectResponseAction(status=200, body=DataSource(filename=str(path.resolve()))),
            response_headers_to_add=[
                _header("content-type", "application/json"),
                _header("cache-control", "no-cache"),
            ],
            # The transcoder would answer 404 first (reject_unknown_method): no gRPC method is bound to this path.
            typed_per_filter_config={"envoy.filters.http.grpc_json_transcoder": _any(FilterConfig(disabled=True))},
        )
    ]


def _route_config(spec: GatewaySpec, services: list[RoutedService]) -> RouteConfiguration:
    """One prefix route per routed service, then a JSON 404 for plain HTTP requests.

    The final route also gives REST paths a route, which the CORS filter needs to answer a
    preflight; gRPC requests that match nothing get the router's gRPC-shaped UNIMPLEMENTED instead.
    """
    # The JWKS is what jwt_authn itself fetches (through this listener): it must never be starved by the rate
    # limit, or every token check fails once the cached keys expire. A cheap public document, so it is exempt.
    auth = next((svc for svc in services if svc.full_name == JWKS_SERVICE), None)
    exempt = (
        [
            Route(
                name="jwks",
                match=RouteMatch(path=f"/{JWKS_SERVICE}/GetJwks"),
                route=RouteAction(cluster=auth.cluster, timeout=timedelta(seconds=10)),
                typed_per_filter_config={
                    # Envoy wants a bucket even here; filter_enabled left at 0 % switches the limit off.
                    "envoy.filters.http.local_ratelimit": _any(
                        LocalRateLimit(
                            stat_prefix="gateway_rate_limit_jwks",
                            token_bucket=TokenBucket(
                                max_tokens=1, tokens_per_fill=1, fill_interval=timedelta(seconds=1)
                            ),
                        )
                    )
                },
            )
        ]
        if auth is not None
        else []
    )
    routes = exempt + _dav_routes(spec) + _body_limit_routes(spec, services) + _service_routes(spec, services)
    routes.extend(_openapi_routes(spec))
    # The CORS filter only answers preflights on routes with a route action (not direct_response).
    # It answers every preflight itself (forward_not_matching_preflights=false), so this empty
    # cluster is never reached.
    routes.append(
        Route(
            name="cors_preflight",
            match=RouteMatch(prefix="/", headers=[_method_is("OPTIONS")]),
            route=RouteAction(cluster=PREFLIGHT_CLUSTER),
        )
    )
    # gRPC and grpc-web callers of an unknown service get a trailers-only UNIMPLEMENTED, which the
    # router's own 404 is not for grpc-web (it carries no grpc-status).
    routes.append(
        Route(
            name="grpc_unimplemented",
            match=RouteMatch(prefix="/", headers=[_grpc_request()]),
            direct_response=DirectResponseAction(status=200),
            response_headers_to_add=[
                _header("content-type", "application/grpc"),
                _header("grpc-status", "12"),
                _header("grpc-message", "unknown service"),
            ],
        )
    )
    app_routes, largest = _app_routes(spec)
    routes += app_routes
    routes.append(_not_found("not_found", RouteMatch(prefix="/", headers=[_not_grpc_request()])))
    return RouteConfiguration(
        name="flowdock",
        # Envoy's default (4 KiB) is below any real bundle and the OpenAPI document; the largest file sets it.
        max_direct_response_body_size_bytes=max(4096, largest, OPENAPI_MAX_BYTES),
        virtual_hosts=[
            VirtualHost(
                name="flowdock",
                domains=["*"],
                routes=routes,
                request_headers_to_remove=list(IDENTITY_HEADERS),
                response_headers_to_add=_hardening_headers(),
                typed_per_filter_config={"envoy.filters.http.cors": _any(_cors_policy(spec))},
                virtual_clusters=_protocol_clusters(),
            )
        ],
        request_headers_to_add=[_client_ip_header()],
        response_headers_to_add=_hsts_headers(spec),
    )


#: The `envoy_virtual_cluster` label values of the gateway's per-protocol request stats (docs/operations.md).
PROTOCOL_CLUSTERS = ("rest", "grpc_web", "grpc")


def _protocol_clusters() -> list[VirtualCluster]:
    """Request counts by status and latency histograms per protocol (vhost.flowdock.vcluster.<name>.*): Envoy
    picks the first that matches the headers as the router sees them. REST calls carry the transcoder's
    x-envoy-original-method; grpc-web calls the x-grpc-web header their clients send (the grpc_web filter has made
    their content-type application/grpc by then); native gRPC is what is left with a gRPC content-type.
    Everything else forwarded upstream lands in Envoy's implicit "other"."""
    return [
        VirtualCluster(name="rest", headers=[HeaderMatcher(name="x-envoy-original-method", present_match=True)]),
        VirtualCluster(name="grpc_web", headers=[HeaderMatcher(name="x-grpc-web", present_match=True)]),
        VirtualCluster(name="grpc", headers=[_grpc_request()]),
    ]


def _not_found(name: str, match: RouteMatch) -> Route:
    """The REST-shaped 404 of a path nobody serves."""
    return Route(
        name=name,
        match=match,
        direct_response=DirectResponseAction(
            status=404,
            body=DataSource(inline_string='{"code":5,"message":"no route for this path"}'),
        ),
        response_headers_to_add=[_header("content-type", "application/json")],
    )


def _get_or_head() -> HeaderMatcher:
    return HeaderMatcher(name=":method", string_match=StringMatcher(safe_regex=RegexMatcher(regex="GET|HEAD")))


def _accepts_html() -> HeaderMatcher:
    """A browser navigating (Accept: text/html,...), not fetch() or curl's */*."""
    return HeaderMatcher(name="accept", string_match=StringMatcher(contains="text/html"))


#: Paths the API owns even when a browser navigates to them: they keep the JSON 404 and never get the app.
#: The second one is the shape of a gRPC method path (/<package>.<Service>/<Method>).
API_PATH_REGEX = r"/(api|\.well-known)(/.*)?|/[^/]*\.[^/]*/.*"


def _app_route(name: str, match: RouteMatch, body: DataSource, content_type: str, cache_control: str) -> Route:
    """A file of the app: from memory, transcoder off (it would claim the path), compressors on."""
    headers = [_header("content-type", content_type), _header("cache-control", cache_control)]
    headers += [_header(key, value) for key, value in APP_SECURITY_HEADERS]
    per_filter: dict[str, PbAny] = {"envoy.filters.http.grpc_json_transcoder": _any(FilterConfig(disabled=True))}
    # Any per-route config switches a filter that is disabled by default on; Envoy refuses an empty one.
    enable = CompressorPerRoute(overrides=CompressorOverrides(response_direction_config=ResponseDirectionOverrides()))
    per_filter.update({name: _any(enable) for name in COMPRESSORS})
    return Route(
        name=name,
        match=match,
        direct_response=DirectResponseAction(status=200, body=body),
        response_headers_to_add=headers,
        typed_per_filter_config=per_filter,
    )


def _app_routes(spec: GatewaySpec) -> tuple[list[Route], int]:
    """The browser app's routes (GET/HEAD only; other methods keep today's answers) and the largest body.

    Order: API-owned paths keep their JSON 404; each built file at its exact path; a missing /assets/ file is a
    404 (never index.html, which a browser would try to run as a script); `/` and any other navigation
    (Accept: text/html) get index.html, so client routes like /files/... and /s/<token> load the app.
    """
    files = scan(spec.web_dir) if spec.web_dir is not None else None
    api = _not_found(
        "api_paths",
        RouteMatch(safe_regex=RegexMatcher(regex=API_PATH_REGEX), headers=[_not_grpc_request()]),
    )
    if files is None:
        hint = DataSource(inline_string=BUILD_HINT + "\n")
        plain = "text/plain; charset=utf-8"
        routes = [
            api,
            _app_route("app_not_built", RouteMatch(path="/", headers=[_get_or_head()]), hint, plain, NO_CACHE),
            _app_route(
                "app_not_built_fallback",
                RouteMatch(prefix="/", headers=[_get_or_head(), _accepts_html()]),
                hint,
                plain,
                NO_CACHE,
            ),
        ]
        return routes, len(BUILD_HINT) + 1
    index: AppFile = next(f for f in files if f.url == "/index.html")
    index_body = DataSource(filename=str(index.path))
    routes = [api]
    routes += [
        _app_route(
            f"app_file:{f.url}",
            RouteMatch(path=f.url, headers=[_get_or_head()]),
            DataSource(filename=str(f.path)),
            f.content_type,
            f.cache_control,
        )
        for f in files
    ]
    routes.append(_not_found("app_assets_missing", RouteMatch(prefix="/assets/")))
    routes.append(
        _app_route("app_root", RouteMatch(path="/", headers=[_get_or_head()]), index_body, index.content_type, NO_CACHE)
    )
    routes.append(
        _app_route(
            "app_fallback",
            RouteMatch(prefix="/", headers=[_get_or_head(), _accepts_html()]),
            index_body,
            index.content_type,
            NO_CACHE,
        )
    )
    return routes, max(f.size for f in files)


def _local_reply_config() -> LocalReplyConfig:
    """Envoy's own error replies (401, 404, 429, ...) as the REST error JSON.

    Only plain HTTP requests are rewritten: gRPC and grpc-web callers keep Envoy's gRPC-shaped
    reply (grpc-status in headers/trailers).
    """
    body = "%LOCAL_REPLY_BODY%"
    mappers = [
        ResponseMapper(
            filter=AccessLogFilter(
                and_filter=AndFilter(
                    filters=[
                        AccessLogFilter(
                            status_code_filter=StatusCodeFilter(
                                comparison=ComparisonFilter(
                                    op=ComparisonFilterOp.EQ,
                                    value=RuntimeUInt32(
                                        default_value=status, runtime_key=f"gateway.local_reply.{status}"
                                    ),
                                )
                            )
                        ),
                        _rest_request(),
                    ]
                )
            ),
            body_format_override=SubstitutionFormatString(
                json_format=_json_error(code, body), content_type="application/json"
            ),
        )
        for status, code in _LOCAL_REPLY_CODES
    ]
    mappers.append(
        ResponseMapper(
            filter=AccessLogFilter(
                and_filter=AndFilter(
                    filters=[
                        AccessLogFilter(
                            status_code_filter=StatusCodeFilter(
                                comparison=ComparisonFilter(
                                    op=ComparisonFilterOp.GE,
                                    value=RuntimeUInt32(default_value=400, runtime_key="gateway.local_reply.other"),
                                )
                            )
                        ),
                        _rest_request(),
                    ]
                )
            ),
            body_format_override=SubstitutionFormatString(
                json_format=_json_error(2, body), content_type="application/json"
            ),
        )
    )
    return LocalReplyConfig(mappers=mappers)


#: Path prefixes whose next segment is a credential: public-link tokens, download-URL tokens, the web app's
#: short link pages. Their requests are logged with the prefix and a placeholder, never the path as sent.
SECRET_PATH_PREFIXES: tuple[str, ...] = ("/api/v1/public/links/", "/api/v1/download/", "/s/")


def _path_prefix_filter(prefix: str, *, invert: bool = False) -> list[AccessLogFilter]:
    """Header filters on the path as sent (x-envoy-original-path once the transcoder rewrote :path) and :path."""
    return [
        AccessLogFilter(
            header_filter=HeaderFilter(
                header=HeaderMatcher(
                    name=name,
                    string_match=StringMatcher(prefix=prefix),
                    invert_match=invert,
                    treat_missing_header_as_empty=True,
                )
            )
        )
        for name in ("x-envoy-original-path", ":path")
    ]


def _stdout_log(path_format: str, log_filter: AccessLogFilter) -> AccessLog:
    fmt = {**_ACCESS_LOG_FORMAT, "path": path_format}
    return AccessLog(
        name="envoy.access_loggers.stdout",
        filter=log_filter,
        typed_config=_any(StdoutAccessLog(log_format=SubstitutionFormatString(json_format=Struct.from_dict(fmt)))),
    )


def _access_logs() -> list[AccessLog]:
    """One JSON line per request, with no credential: query strings are dropped everywhere, and requests under a
    SECRET_PATH_PREFIXES prefix are logged by their own logger with the token replaced (regex-free: each logger's
    filter matches path prefixes; every request matches exactly one logger)."""
    logs = [
        _stdout_log(
            f"{prefix}{{redacted}}",
            AccessLogFilter(or_filter=OrFilter(filters=_path_prefix_filter(prefix))),
        )
        for prefix in SECRET_PATH_PREFIXES
    ]
    others = [f for prefix in SECRET_PATH_PREFIXES for f in _path_prefix_filter(prefix, invert=True)]
    logs.append(_stdout_log(_ACCESS_LOG_FORMAT["path"], AccessLogFilter(and_filter=AndFilter(filters=others))))
    return logs


def _listener(spec: GatewaySpec, services: list[RoutedService]) -> Listener:
    hcm = HttpConnectionManager(
        stat_prefix="ingress",
        # codec_type AUTO is the proto default (0): HTTP/1.1 for REST/grpc-web, h2c for native gRPC.
        route_config=_route_config(spec, services),
        http_filters=_http_filters(spec, services),
        http_protocol_options=Http1ProtocolOptions(enable_trailers=True),
        http2_protocol_options=Http2ProtocolOptions(
            initial_stream_window_size=spec.downstream_stream_window_bytes,
            initial_connection_window_size=spec.downstream_connection_window_bytes,
        ),
        stream_idle_timeout=timedelta(seconds=300),
        request_timeout=timedelta(0),
        generate_request_id=True,
        always_set_request_id_in_response=True,
        use_remote_address=True,
        xff_num_trusted_hops=spec.xff_num_trusted_hops,
        normalize_path=True,
        merge_slashes=True,
        local_reply_config=_local_reply_config(),
        access_log=_access_logs() if spec.access_log else [],
    )
    return Listener(
        name="flowdock_gateway",
        per_connection_buffer_limit_bytes=spec.connection_buffer_bytes,
        address=_address(spec.listen_host, spec.port),
        filter_chains=[
            FilterChain(
                filters=[Filter(name="envoy.filters.network.http_connection_manager", typed_config=_any(hcm))],
                transport_socket=_edge_tls_socket(spec),
            )
        ],
    )


# -------------------------------------------------------------------------- TLS: edge and mesh upstreams


def _tls_socket(context: betterproto2.Message) -> TransportSocket:
    return TransportSocket(name="envoy.transport_sockets.tls", typed_config=_any(context))


def _edge_tls_socket(spec: GatewaySpec) -> TransportSocket | None:
    """TLS on the public listener: HTTP/2 (native gRPC) and HTTP/1.1 (REST, grpc-web) chosen by ALPN."""
    if spec.edge_tls is None:
        return None
    return _tls_socket(
        DownstreamTlsContext(
            common_tls_context=CommonTlsContext(
                tls_certificates=[
                    TlsCertificate(
                        certificate_chain=DataSource(filename=str(spec.edge_tls.cert_file)),
                        private_key=DataSource(filename=str(spec.edge_tls.key_file)),
                    )
                ],
                alpn_protocols=["h2", "http/1.1"],
            )
        )
    )


def _hsts_headers(spec: GatewaySpec) -> list[HeaderValueOption]:
    """Strict-Transport-Security only over TLS (RFC 6797 forbids it on plain HTTP)."""
    if spec.edge_tls is None:
        return []
    return [_header("strict-transport-security", f"max-age={spec.edge_tls.hsts_max_age}; includeSubDomains")]


def _client_ip_header() -> HeaderValueOption:
    """The downstream address after xff_num_trusted_hops, for the services' audit trail (trusted from the gateway's
    mesh identity only)."""
    return HeaderValueOption(
        header=HeaderValue(key=CLIENT_IP_HEADER, value="%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
        append_action=HeaderValueOptionHeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def _mesh_upstream_socket(spec: GatewaySpec, cluster: str, *, alpn: str = "h2") -> TransportSocket | None:
    """Mutual TLS to a service: the gateway's mesh certificate, the mesh CA, and the service's identity (SAN
    `<cluster>_svc`) required of the server; ALPN h2 keeps gRPC on HTTP/2 (health checks included)."""
    if spec.mesh is None:
        return None
    return _tls_socket(
        UpstreamTlsContext(
            common_tls_context=CommonTlsContext(
                tls_certificates=[
                    TlsCertificate(
                        certificate_chain=DataSource(filename=str(spec.mesh.cert_file)),
                        private_key=DataSource(filename=str(spec.mesh.key_file)),
                    )
                ],
                validation_context=CertificateValidationContext(
                    trusted_ca=DataSource(filename=str(spec.mesh.ca_file)),
                    match_typed_subject_alt_names=[
                        SubjectAltNameMatcher(
                            san_type=SubjectAltNameMatcherSanType.DNS, matcher=StringMatcher(exact=f"{cluster}_svc")
                        )
                    ],
                ),
                alpn_protocols=[alpn],
            )
        )
    )


def _stats_listener(spec: GatewaySpec) -> Listener:
    """Prometheus' view of the admin interface: /stats/prometheus only (no /quitquitquit, /config_dump, ...)."""
    hcm = HttpConnectionManager(
        stat_prefix="stats",
        route_config=RouteConfiguration(
            name="stats",
            virtual_hosts=[
                VirtualHost(
                    name="stats",
                    domains=["*"],
                    routes=[
                        Route(
                            match=RouteMatch(path="/stats/prometheus", headers=[_method_is("GET")]),
                            route=RouteAction(cluster=ADMIN_CLUSTER, timeout=timedelta(seconds=10)),
                        ),
                        Route(
                            match=RouteMatch(prefix="/"),
                            direct_response=DirectResponseAction(status=404),
                        ),
                    ],
                )
            ],
        ),
        http_filters=[HttpFilter(name="envoy.filters.http.router", typed_config=_any(Router()))],
    )
    return Listener(
        name="stats",
        address=_address(spec.listen_host, spec.stats_port),
        filter_chains=[
            FilterChain(filters=[Filter(name="envoy.filters.network.http_connection_manager", typed_config=_any(hcm))])
        ],
    )


def _admin_cluster(spec: GatewaySpec) -> Cluster:
    host = _loopback_for(spec.admin_host)
    return Cluster(
        name=ADMIN_CLUSTER,
        type=_discovery_type([host]),
        connect_timeout=timedelta(seconds=1),
        load_assignment=_load_assignment(ADMIN_CLUSTER, [(host, spec.admin_port)]),
    )


def _self_tls_socket(spec: GatewaySpec) -> TransportSocket | None:
    """Envoy fetching the JWKS from its own TLS listener over loopback: encrypted, not verified (the edge
    certificate names the public host, not the loopback address, and the peer is this very process)."""
    if spec.edge_tls is None:
        return None
    return _tls_socket(UpstreamTlsContext(common_tls_context=CommonTlsContext(alpn_protocols=["http/1.1"])))


# -------------------------------------------------------------------------------------------- clusters


def _discovery_type(hosts: list[str]) -> ClusterDiscoveryType:
    """STATIC for IP literals, STRICT_DNS (every address of every name) otherwise."""
    return ClusterDiscoveryType.STATIC if all(_is_ip(h) for h in hosts) else ClusterDiscoveryType.STRICT_DNS


def _load_assignment(name: str, endpoints: list[tuple[str, int]]) -> ClusterLoadAssignment:
    return ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            LocalityLbEndpoints(
                lb_endpoints=[LbEndpoint(endpoint=Endpoint(address=_address(h, p))) for h, p in endpoints]
            )
        ],
    )


def _upstream_keepalive(spec: GatewaySpec) -> KeepaliveSettings:
    """HTTP/2 pings to the services, within what their servers accept (Keepalive.server_options)."""
    k = spec.keepalive
    return KeepaliveSettings(
        interval=timedelta(milliseconds=k.interval_ms),
        timeout=timedelta(milliseconds=k.timeout_ms),
        interval_jitter=Percent(value=float(k.envoy_jitter_percent)),
    )


def _upstream_cluster(spec: GatewaySpec, name: str, endpoints: list[tuple[str, int]]) -> Cluster:
    """An h2c cluster of replicas, round robin, gRPC health checked so a dead replica drops out."""
    interval = spec.health_check_interval
    limits = CircuitBreakersThresholds(
        max_connections=10000, max_pending_requests=10000, max_requests=10000, max_retries=100
    )
    return Cluster(
        name=name,
        type=_discovery_type([h for h, _ in endpoints]),
        connect_timeout=timedelta(seconds=2),
        # lb_policy ROUND_ROBIN is the proto default.
        load_assignment=_load_assignment(name, endpoints),
        typed_extension_protocol_options={
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _any(
                HttpProtocolOptions(
                    explicit_http_config=HttpProtocolOptionsExplicitHttpConfig(
                        http2_protocol_options=Http2ProtocolOptions(connection_keepalive=_upstream_keepalive(spec))
                    )
                )
            )
        },
        health_checks=[
            HealthCheck(
                timeout=timedelta(seconds=1),
                interval=interval,
                # Without this an idle cluster is probed only once a minute.
                no_traffic_interval=interval,
                unhealthy_threshold=2,
                healthy_threshold=1,
                grpc_health_check=HealthCheckGrpcHealthCheck(),
            )
        ],
        circuit_breakers=CircuitBreakers(thresholds=[limits]),
        transport_socket=_mesh_upstream_socket(spec, name),
    )


#: The WebDAV service's cluster (dav_svc: HTTP/1.1, not gRPC) and where the gateway mounts it.
DAV_CLUSTER = "dav"
DAV_PREFIX = "/dav"
#: dav_svc's health endpoint (answered without credentials, reachable only from the gateway: no route leads there).
DAV_HEALTH_PATH = "/healthz"

#: Filters that have no business with WebDAV traffic: the transcoder and the Lua filters for gRPC/REST (some read
#: bodies; none may buffer a PUT or GET), and the compressors (a download streams as it is).
_DAV_DISABLED_FILTERS = (
    "flowdock.grpc_safe_headers",
    "flowdock.link_page",
    "envoy.filters.http.lua",
    "envoy.filters.http.lua.rest_status",
    "envoy.filters.http.lua.unknown_fields",
    "envoy.filters.http.grpc_json_transcoder",
)


def _dav_upstream_socket(spec: GatewaySpec) -> TransportSocket | None:
    """Mutual TLS to dav_svc (SAN `dav_svc`), HTTP/1.1 inside."""
    return _mesh_upstream_socket(spec, "dav", alpn="http/1.1")


def _dav_cluster(spec: GatewaySpec, endpoints: list[tuple[str, int]]) -> Cluster:
    """dav_svc's replicas: HTTP/1.1 (WsgiDAV under cheroot), round robin, HTTP health checked on /healthz."""
    interval = spec.health_check_interval
    limits = CircuitBreakersThresholds(
        max_connections=10000, max_pending_requests=10000, max_requests=10000, max_retries=100
    )
    return Cluster(
        name=DAV_CLUSTER,
        type=_discovery_type([h for h, _ in endpoints]),
        connect_timeout=timedelta(seconds=2),
        load_assignment=_load_assignment(DAV_CLUSTER, endpoints),
        health_checks=[
            HealthCheck(
                timeout=timedelta(seconds=1),
                interval=interval,
                no_traffic_interval=interval,
                unhealthy_threshold=2,
                healthy_threshold=1,
                http_health_check=HealthCheckHttpHealthCheck(path=DAV_HEALTH_PATH),
            )
        ],
        circuit_breakers=CircuitBreakers(thresholds=[limits]),
        transport_socket=_dav_upstream_socket(spec),
    )


def _dav_routes(spec: GatewaySpec) -> list[Route]:
    """`/dav` and everything below it, any method (PROPFIND, MKCOL, COPY, MOVE, LOCK, ...), to dav_svc: no deadline
    (a big PUT or GET lasts as long as it needs), bodies streamed. jwt_authn's last rule lets requests without a
    Bearer token through (Basic credentials are dav_svc's to check); the per-client rate limits apply as anywhere."""
    if DAV_CLUSTER not in spec.upstreams:
        return []
    disabled = {name: _any(FilterConfig(disabled=True)) for name in _DAV_DISABLED_FILTERS}
    action = RouteAction(cluster=DAV_CLUSTER, timeout=timedelta(0))
    return [
        Route(name="dav", match=RouteMatch(path=DAV_PREFIX), route=action, typed_per_filter_config=disabled),
        Route(
            name="dav_tree", match=RouteMatch(prefix=DAV_PREFIX + "/"), route=action, typed_per_filter_config=disabled
        ),
    ]


def _self_cluster(spec: GatewaySpec) -> Cluster:
    """Envoy's own listener, so jwt_authn fetches the JWKS through the REST route to auth_svc."""
    host = _loopback_for(spec.listen_host)
    return Cluster(
        name=SELF_CLUSTER,
        type=_discovery_type([host]),
        connect_timeout=timedelta(seconds=2),
        load_assignment=_load_assignment(SELF_CLUSTER, [(host, spec.port)]),
        transport_socket=_self_tls_socket(spec),
    )


# ---------------------------------------------------------------------------------------------- public


def build_bootstrap(spec: GatewaySpec) -> dict[str, Any]:
    """Return Envoy's bootstrap (snake_case JSON-ready dict) for `spec`.

    Raises ValueError when a routed service has no upstream, since Envoy would reject the routes.
    """
    services = load_services(spec.descriptor_path)
    missing = sorted({svc.cluster for svc in services} - set(spec.upstreams))
    if missing:
        raise ValueError(f"no upstream given for cluster(s) {', '.join(missing)} (use --upstream NAME=HOST:PORT)")
    empty = sorted(name for name, eps in spec.upstreams.items() if not eps)
    if empty:
        raise ValueError(f"upstream(s) {', '.join(empty)} have no endpoint")
    reserved = sorted({SELF_CLUSTER, PREFLIGHT_CLUSTER, ADMIN_CLUSTER} & set(spec.upstreams))
    if reserved:
        raise ValueError(f"upstream name(s) {', '.join(reserved)} are reserved for the gateway itself")
    clusters = [
        _dav_cluster(spec, eps) if name == DAV_CLUSTER else _upstream_cluster(spec, name, eps)
        for name, eps in sorted(spec.upstreams.items())
    ]
    clusters.append(_self_cluster(spec))
    clusters.append(Cluster(name=PREFLIGHT_CLUSTER, connect_timeout=timedelta(seconds=1)))
    listeners = [_listener(spec, services)]
    if spec.stats_port:
        listeners.append(_stats_listener(spec))
        clusters.append(_admin_cluster(spec))
    bootstrap = Bootstrap(
        node=Node(id="flowdock-gateway", cluster="flowdock"),
        admin=Admin(address=_address(spec.admin_host, spec.admin_port)),
        static_resources=BootstrapStaticResources(listeners=listeners, clusters=clusters),
        overload_manager=_overload_manager(spec),
        layered_runtime=_runtime(),
    )
    return bootstrap.to_dict(casing=betterproto2.Casing.SNAKE)
