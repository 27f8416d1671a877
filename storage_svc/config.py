"""storage_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, positive, setting

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class StorageConfig(CommonConfig):
    key_prefix: ClassVar[str] = "storage_"

    storage_chunk_bytes: int = setting(MiB, "Chunk size suggested to clients (1 MiB measured fastest).", check=positive)
    storage_max_chunk_bytes: int = setting(
        16 * MiB, "Largest chunk one message may carry; larger ones are refused naming this limit.", check=positive
    )
    storage_max_file_bytes: int = setting(100 * 1024 * MiB, "Largest file one upload may declare.", check=positive)
    storage_upload_expiry_hours: float = setting(
        24.0, "An upload untouched this long expires and its bytes are deleted.", check=positive
    )
    storage_sync_bytes: int = setting(
        8 * MiB,
        "A streaming upload makes its bytes durable (fsync) and acknowledges the offset at least this often.",
        check=positive,
    )
    storage_list_page_size: int = setting(100, "Default page size of folder listings.", check=positive)
    storage_list_max_page_size: int = setting(1000, "Largest page size a listing may ask for.", check=positive)
