"""The chunk size advised for one request per chunk (issue 15): large enough that the per-request cost stops
dominating, never above what the service accepts in one chunk or what the gateway lets through in one message."""

from __future__ import annotations

import asyncio

import pytest

from flowdock_kernel.config import ConfigError, load
from gateway.config import GatewayConfig
from storage_svc import bootstrap
from storage_svc.config import StorageConfig

MiB = 1024 * 1024
FRAMING = 64 * 1024  # a protobuf message's field headers, a grpc-web frame, a JSON envelope: far below this


def test_the_defaults_fit_together() -> None:
    storage, gateway = load(StorageConfig, {}), load(GatewayConfig, {})
    assert storage.storage_upload_chunk_bytes >= 8 * MiB  # 1 MiB gave a browser a fifth of the disk's rate
    assert storage.storage_chunk_bytes == MiB  # streams keep 1 MiB messages (measured fastest for streams)
    assert storage.storage_upload_chunk_bytes <= storage.storage_max_chunk_bytes
    assert storage.storage_max_chunk_bytes + FRAMING <= storage.max_message_bytes
    assert storage.storage_max_chunk_bytes + FRAMING <= gateway.gateway_upload_body_bytes


def test_advice_above_the_limit_is_refused_at_start() -> None:
    cfg = load(
        StorageConfig,
        {
            "FLOWDOCK_AUTH_ADDRESS": "127.0.0.1:1",
            "FLOWDOCK_SHARE_ADDRESS": "127.0.0.1:2",
            "FLOWDOCK_STORAGE_UPLOAD_CHUNK_BYTES": str(32 * MiB),
            "FLOWDOCK_STORAGE_MAX_CHUNK_BYTES": str(16 * MiB),
        },
    )
    with pytest.raises(ConfigError, match="STORAGE_UPLOAD_CHUNK_BYTES"):
        asyncio.run(bootstrap.build(cfg))
