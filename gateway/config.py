"""The gateway's settings that `flowdock up` reads (env var / TOML, like every service's): TLS at the edge and the
proxies trusted in front of it. `python -m gateway serve` takes the same as command-line options."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, non_negative, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayConfig(CommonConfig):
    key_prefix: ClassVar[str] = "gateway_"

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
