"""share_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, non_negative, positive, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShareConfig(CommonConfig):
    key_prefix: ClassVar[str] = "share_"

    share_list_page_size: int = setting(100, "Default page size of share listings.", check=positive)
    share_link_session_seconds: int = setting(
        3600,
        "Lifetime of a link session (after opening a public link; never beyond the link's expiry).",
        check=positive,
    )
    share_link_password_window_seconds: int = setting(
        300, "Window over which wrong public-link passwords are counted.", check=positive
    )
    share_link_password_failures_per_link: int = setting(
        10, "Wrong passwords per link within the window before the link refuses attempts.", check=positive
    )
    share_link_password_failures_per_ip: int = setting(
        20, "Wrong link passwords per client IP within the window before that IP is refused.", check=positive
    )
    share_hash_workers: int = setting(
        1, "Threads hashing and verifying link passwords (off the event loop).", check=positive
    )
    share_hash_queue: int = setting(
        16,
        "Link-password hashings that may wait for a worker; beyond that a call is refused at once with "
        "RESOURCE_EXHAUSTED and a retry delay.",
        check=non_negative,
    )
    share_hash_per_client: int = setting(
        2, "Link-password hashings one client IP may have running or waiting at once (0 = no cap).", check=non_negative
    )
    share_public_url: str = setting(
        "http://127.0.0.1:8080",
        'Base URL of the gateway, used in the "shared with you" email. `flowdock up` sets it to the address it '
        "serves unless the environment or the file sets it.",
    )
