"""The S3 blob store's settings: picked by name, the bucket required, and the secret key never shown."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import ClassVar

import pytest

from flowdock_kernel.config import CommonConfig, ConfigError, as_env, load, setting
from storage_svc.blobstore import EncryptedBlobStore
from storage_svc.blobstores import open_blob_store
from storage_svc.config import StorageConfig

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def s3_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "FLOWDOCK_DATA_DIR": str(tmp_path),
        "FLOWDOCK_STORAGE_BLOB_BACKEND": "s3",
        "FLOWDOCK_STORAGE_S3_ENDPOINT": "http://127.0.0.1:9",
        "FLOWDOCK_STORAGE_S3_BUCKET": "blobs",
        "FLOWDOCK_STORAGE_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "FLOWDOCK_STORAGE_S3_SECRET_ACCESS_KEY": SECRET,
        **extra,
    }


def test_secret_is_read_but_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load(StorageConfig, s3_env(tmp_path))
    assert config.storage_s3_secret_access_key == SECRET
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert as_env(config)["FLOWDOCK_STORAGE_S3_SECRET_ACCESS_KEY"] == SECRET  # child processes still get it
    with caplog.at_level(logging.DEBUG):
        store = open_blob_store(config)
        logging.getLogger("flowdock.storage").info("blob store: %s", store.description)
        logging.getLogger("flowdock.storage").info("config: %s", config)
    assert type(store).__name__ == "S3BlobStore"
    for shown in (repr(store), store.description, repr(store.settings), caplog.text):
        assert SECRET not in shown
    assert "blobs" in repr(store)


def test_an_invalid_secret_is_not_echoed() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WithSecret(CommonConfig):
        key_prefix: ClassVar[str] = "x_"
        x_token: str = setting(
            "", "a credential", check=lambda v: "must be 8 characters" if len(v) != 8 else None, secret=True
        )

    with pytest.raises(ConfigError) as raised:
        load(WithSecret, {"FLOWDOCK_X_TOKEN": SECRET})
    assert SECRET not in str(raised.value)
    assert "FLOWDOCK_X_TOKEN" in str(raised.value) and "must be 8 characters" in str(raised.value)


def test_backends_by_name(tmp_path: Path) -> None:
    local = open_blob_store(load(StorageConfig, {"FLOWDOCK_DATA_DIR": str(tmp_path)}))
    assert isinstance(local, EncryptedBlobStore)
    with pytest.raises(ConfigError) as raised:
        open_blob_store(load(StorageConfig, s3_env(tmp_path, FLOWDOCK_STORAGE_S3_BUCKET="")))
    assert raised.value.key == "FLOWDOCK_STORAGE_S3_BUCKET"
    with pytest.raises(ConfigError) as bad:
        load(StorageConfig, s3_env(tmp_path, FLOWDOCK_STORAGE_BLOB_BACKEND="ftp"))
    assert bad.value.key == "FLOWDOCK_STORAGE_BLOB_BACKEND"
