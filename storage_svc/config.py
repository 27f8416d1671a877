"""storage_svc settings (on top of the common ones)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from flowdock_kernel.config import CommonConfig, non_negative, one_of, positive, setting

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class StorageConfig(CommonConfig):
    @property
    def url_key_path(self) -> Path:
        return Path(self.storage_url_key_file) if self.storage_url_key_file else self.data_dir / "storage" / "url.key"

    key_prefix: ClassVar[str] = "storage_"

    storage_chunk_bytes: int = setting(
        MiB,
        "Message size of streams: suggested for UploadStream messages (stream_chunk_size) and used for download "
        "messages (1 MiB measured fastest for streams).",
        check=positive,
    )
    storage_upload_chunk_bytes: int = setting(
        16 * MiB,
        "Chunk size suggested to clients that send one request per chunk (unary WriteUploadChunk, REST PUT; the "
        "Upload's chunk_size): each request has a fixed cost in the gateway and the mesh, so larger chunks go "
        "faster (a browser measured 0.19x the disk's rate at 1 MiB, 0.41x at 8 MiB). At most "
        "storage_max_chunk_bytes, and below the gateway's gateway_upload_body_bytes.",
        check=positive,
    )
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
    storage_default_quota_bytes: int = setting(
        10 * 1024 * MiB, "Quota of a user without one set by an admin (files, trash and versions).", check=positive
    )
    storage_inline_finish_bytes: int = setting(
        64 * MiB,
        "Uploads up to this size are verified and scanned inside FinishUpload; larger ones finish in the "
        "background (state FINISHING, poll GetUpload) so no request waits on a multi-GB re-read.",
        check=non_negative,
    )
    storage_inline_upload_bytes: int = setting(
        4 * MiB,
        "Largest file CreateUpload accepts with its content inline (one call instead of create, write, finish).",
        check=non_negative,
    )
    storage_small_upload_bytes: int = setting(
        MiB,
        "Uploads declared at most this large take the small-file path of create + write + finish: CreateUpload "
        "writes nothing to disk, and a chunk carrying the whole file at offset 0 is written as its final blob and "
        "completes the upload in the same short transaction that records it (FinishUpload then only reads). "
        "Partial chunks take the resumable path as larger files do. 0: off.",
        check=non_negative,
    )
    storage_list_cache_bytes: int = setting(
        32 * MiB,
        "Memory for listing pages served again while their folder is unchanged (keyed by a per-folder revision the "
        "database bumps on every change to a child, so replicas never serve a stale page). 0: off.",
        check=non_negative,
    )
    storage_download_url_seconds: int = setting(
        60,
        "Lifetime of a download URL made by CreateDownloadUrl (at most 60 s).",
        check=lambda v: None if 1 <= v <= 60 else "must be between 1 and 60",
    )
    storage_trash_days: float = setting(
        30.0, "Trashed entries older than this are purged automatically.", check=positive
    )
    storage_versions_kept: int = setting(
        10, "How many versions of a file are kept (the current one included); older ones are deleted.", check=positive
    )
    storage_virus_scan: str = setting(
        "clamd",
        "clamd: every upload is scanned before it becomes visible (fail closed when clamd is down); off: no "
        "scanning (logged loudly at start).",
        check=one_of("clamd", "off"),
    )
    storage_clamd_address: str = setting("127.0.0.1:3310", "clamd address: host:port or a unix socket path.")
    storage_link_drop_max_files: int = setting(
        1000,
        "Files one file-drop link may take in total (every upload started through it counts); then RESOURCE_EXHAUSTED.",
        check=positive,
    )
    storage_link_drop_max_bytes: int = setting(
        1024**3,
        "Bytes one file-drop link may take in total (declared sizes), so a public link cannot fill the owner's quota.",
        check=positive,
    )
    storage_clamd_wait_seconds: float = setting(
        30.0,
        "`flowdock up` waits this long for clamd to answer at start (scanning on); then it stops with what to do.",
        check=non_negative,
    )
    storage_clamd_stream_max_bytes: int = setting(
        100 * MiB,
        "Largest content sent to clamd; must equal clamd's StreamMaxLength (set its MaxScanSize/MaxFileSize ~4x).",
        check=positive,
    )
    storage_scan_oversize: str = setting(
        "refuse",
        "Files larger than storage_clamd_stream_max_bytes: refuse, or allow-unscanned (stored without a scan).",
        check=one_of("refuse", "allow-unscanned"),
    )
    storage_housekeeping_seconds: float = setting(
        300.0, "How often expired uploads, stalled finishes and old trash are cleaned up.", check=positive
    )
    storage_scrub_fraction_per_day: float = setting(
        1 / 30,
        "Share of the stored blobs the scrub authenticates per day (every segment decrypted, in the background): "
        "1/30 checks every blob about monthly; 0 switches the scrub off. Damage is counted in "
        "flowdock_scrub_damaged_blobs_total, logged as DATA_LOSS and recorded in the owner's activity.",
        check=non_negative,
    )
    storage_scrub_bytes_per_second: int = setting(
        16 * MiB,
        "Read budget of the scrub in stored bytes per second (one replica scrubs at a time): it sleeps after each "
        "read so it never takes the disk from users.",
        check=positive,
    )
    storage_scrub_seconds: float = setting(
        60.0,
        "How often the scrub wakes up to verify the blobs its share per day has come to since its last round.",
        check=positive,
    )
    storage_keyring_path: str = setting(
        "",
        "JSON file of the key-encryption keys that wrap every file's data key (mode 0600). Empty: "
        "<data_dir>/storage/keyring.json, created on first start. Keep a backup apart from the blobs.",
    )
    storage_url_key_file: str = setting(
        "",
        "32-byte key signing short-lived download URLs (mode 0600; created on first start if missing). Empty: "
        "<data_dir>/storage/url.key. Replicas must share it: a URL one signs, another checks.",
    )
    storage_segment_bytes: int = setting(
        64 * 1024,
        "Plaintext bytes per AES-256-GCM segment of new blobs (each blob records its own; 4 KiB..16 MiB).",
        check=lambda v: None if 4096 <= v <= 16 * MiB else "must be between 4096 and 16777216",
    )
    storage_blob_backend: str = setting(
        "local",
        "Where blob bytes live: local (data_dir/storage on this machine's disk) or s3 (an S3-compatible object "
        "store: AWS S3, OpenStack Swift's s3api, MinIO; the storage_s3_* settings). Encrypted the same way either "
        "way; s3 lets several storage_svc replicas share the blobs and resume each other's uploads (docs/scaling.md).",
        check=one_of("local", "s3"),
    )
    storage_s3_endpoint: str = setting(
        "", "S3 endpoint URL, e.g. http://127.0.0.1:18080 (path-style requests). Empty: AWS S3 for the region."
    )
    storage_s3_region: str = setting("us-east-1", "S3 region (request signing).")
    storage_s3_bucket: str = setting("", "S3 bucket holding the blobs (made by the operator beforehand).")
    storage_s3_prefix: str = setting("", "Key prefix inside the bucket (several installations may share one).")
    storage_s3_access_key_id: str = setting("", "S3 access key id. Empty: the environment's AWS credentials.")
    storage_s3_secret_access_key: str = setting(
        "", "S3 secret access key (never logged or shown; prefer the environment to a file).", secret=True
    )
    storage_s3_part_bytes: int = setting(
        8 * MiB,
        "An upload's full segments are stored as one object once this many bytes are held in memory (and at every "
        "sync): larger objects cost fewer requests, more memory per upload in progress.",
        check=lambda v: None if MiB <= v <= 256 * MiB else "must be between 1048576 and 268435456",
    )
