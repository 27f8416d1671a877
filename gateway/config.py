"""Gateway settings read from the environment / TOML file like the services' (docs/configuration.md)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayConfig(CommonConfig):
    key_prefix: ClassVar[str] = "gateway_"

    gateway_web_dir: str = setting(
        "",
        "Folder of the built browser app (index.html + assets/) that the gateway serves at /. Empty: clients/web/dist "
        "of the source tree FlowDock runs from. `flowdock up --web-dir` sets it. Read at start: restart after a build.",
    )
