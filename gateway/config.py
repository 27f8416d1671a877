"""Gateway settings (FLOWDOCK_GATEWAY_*): the per-client limits, body bounds, deadlines and memory bound of Envoy.

`python -m gateway` reads them from the environment / TOML file like the services do; `flowdock up` passes its
environment on. Command-line options, where they exist, win.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, non_negative, positive, setting

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayConfig(CommonConfig):
    key_prefix: ClassVar[str] = "gateway_"

    gateway_web_dir: str = setting(
        "",
        "Folder of the built browser app (index.html + assets/) that the gateway serves at /. Empty: clients/web/dist "
        "of the source tree FlowDock runs from. `flowdock up --web-dir` sets it. Read at start: restart after a build.",
    )
    gateway_rate_limit_per_second: int = setting(
        200,
        "Requests per second each client may make: each remote address, and each signed-in user, has its own bucket.",
        check=positive,
    )
    gateway_rate_limit_burst: int = setting(400, "Per-client bucket size (a burst above the rate).", check=positive)
    gateway_global_rate_limit_per_second: int = setting(
        2000, "Requests per second of all clients together (the last layer, above any one client).", check=positive
    )
    gateway_global_rate_limit_burst: int = setting(4000, "Size of the shared bucket.", check=positive)
    gateway_rate_limit_max_clients: int = setting(
        10000,
        "Per-client buckets kept at most (least recently used dropped), so many addresses cannot grow memory.",
        check=positive,
    )
    gateway_public_body_bytes: int = setting(
        16 * 1024,
        "Largest JSON request body of a public REST route (register, login, password reset, link open); larger: 413.",
        check=positive,
    )
    gateway_json_body_bytes: int = setting(
        1 * MiB, "Largest JSON request body of any other REST route (uploads excepted); larger: 413.", check=positive
    )
    gateway_upload_body_bytes: int = setting(
        64 * MiB, "Largest message of a REST upload and of any REST response (per message).", check=positive
    )
    gateway_unary_timeout_seconds: float = setting(
        60.0, "Deadline of a unary call through the gateway (streaming calls have none).", check=positive
    )
    gateway_jwks_cache_seconds: int = setting(
        30,
        "How often Envoy refreshes the signing keys (JWKS) it checks tokens with, in the background. Keep it below "
        "auth_signing_key_publish_seconds, or tokens of a newly rotated key are refused until the next refresh.",
        check=positive,
    )
    gateway_max_heap_bytes: int = setting(
        1024 * MiB,
        "Envoy's heap bound: above 95 % it releases free memory, above 98 % it refuses new requests (0 = no bound).",
        check=non_negative,
    )
    gateway_tls_cert: str = setting(
        "", "Certificate chain (PEM) for TLS on the public listener; with gateway_tls_key. Empty: plain HTTP."
    )
    gateway_tls_key: str = setting("", "Private key (PEM) of gateway_tls_cert.")
    gateway_hsts_max_age: int = setting(
        31536000, "Strict-Transport-Security max-age (seconds), sent only over TLS.", check=non_negative
    )
    gateway_xff_trusted_hops: int = setting(
        0,
        "Proxies (load balancers) in front of the gateway whose X-Forwarded-For entries are trusted: rate limits "
        "and the audit trail then see the client behind them. 0: the TCP peer is the client.",
        check=non_negative,
    )
