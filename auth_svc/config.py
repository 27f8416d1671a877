"""auth_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, positive, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuthConfig(CommonConfig):
    key_prefix: ClassVar[str] = "auth_"

    auth_access_token_ttl_seconds: int = setting(300, "Lifetime of an access token.", check=positive)
    auth_argon2_memory_kib: int = setting(19456, "Argon2id memory cost (OWASP minimum 19 MiB).", check=positive)
    auth_argon2_time_cost: int = setting(2, "Argon2id iterations.", check=positive)
    auth_argon2_parallelism: int = setting(1, "Argon2id lanes.", check=positive)
