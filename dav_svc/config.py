"""dav_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, positive, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class DavConfig(CommonConfig):
    key_prefix: ClassVar[str] = "dav_"

    dav_threads: int = setting(
        16, "Requests the WebDAV server handles at once (each a thread; a big PUT or GET holds one).", check=positive
    )
    dav_chunk_bytes: int = setting(
        8 * 1024 * 1024,
        "Bytes of a PUT body queued for storage_svc's UploadStream at most (what one PUT holds in memory; the body "
        "is read no faster than storage takes it).",
        check=positive,
    )
    dav_finish_wait_seconds: float = setting(
        600.0,
        "How long a PUT waits for storage_svc to verify and scan the upload before answering 504.",
        check=positive,
    )
    dav_call_timeout_seconds: float = setting(
        60.0, "Deadline of each unary call to storage_svc and share_svc.", check=positive
    )
    dav_socket_timeout_seconds: float = setting(
        300.0, "How long the server waits on a silent client connection before closing it.", check=positive
    )
