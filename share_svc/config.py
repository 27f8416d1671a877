"""share_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, positive, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShareConfig(CommonConfig):
    key_prefix: ClassVar[str] = "share_"

    share_list_page_size: int = setting(100, "Default page size of share listings.", check=positive)
