"""The blob store backends by name (`storage_blob_backend`), as reva picks storage drivers: an explicit table, no
import side effects. Both keep the same encrypted format (storage_svc.envelope); they differ only in where the
bytes go: `local` (storage_svc.blobstore, files under data_dir/storage) or `s3` (storage_svc.s3store, objects in
an S3-compatible bucket shared by every replica)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from flowdock_kernel.config import ConfigError
from storage_svc.blobstore import EncryptedBlobStore, keyring_path
from storage_svc.config import StorageConfig
from storage_svc.keyring import Keyring

if TYPE_CHECKING:
    from storage_svc.s3store import S3BlobStore

    AnyBlobStore: TypeAlias = EncryptedBlobStore | S3BlobStore
else:
    AnyBlobStore = object


def _local(config: StorageConfig, keyring: Keyring) -> AnyBlobStore:
    return EncryptedBlobStore(config.data_dir / "storage", keyring, segment_size=config.storage_segment_bytes)


def _s3(config: StorageConfig, keyring: Keyring) -> AnyBlobStore:
    if not config.storage_s3_bucket:
        raise ConfigError("FLOWDOCK_STORAGE_S3_BUCKET", "is required when storage_blob_backend is s3")
    from storage_svc.s3store import S3BlobStore  # obstore is loaded only by installations that use it

    return S3BlobStore.from_config(config, keyring)


BACKENDS: dict[str, Callable[[StorageConfig, Keyring], AnyBlobStore]] = {"local": _local, "s3": _s3}


def open_blob_store(config: StorageConfig, *, keyring: Keyring | None = None) -> AnyBlobStore:
    """The configured backend with the configured keyring (created on first use unless `keyring` is given)."""
    return BACKENDS[config.storage_blob_backend](
        config, keyring if keyring is not None else Keyring(keyring_path(config))
    )
