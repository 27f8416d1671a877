"""Composition root of storage_svc: the only place that names concrete classes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import grpc

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from flowdock_kernel import db, metrics
from flowdock_kernel.audit import Outbox, remote_audit_sender
from flowdock_kernel.channels import Keepalive, internal_channel, remote_admin_check, remote_signing_keys
from flowdock_kernel.clock import SystemClock
from flowdock_kernel.config import ConfigError
from flowdock_kernel.contract import internal_callers, public_methods
from flowdock_kernel.incarnation import PROCESS
from flowdock_kernel.server import Service
from flowdock_kernel.wire import add_servicer
from storage_svc import readmodel
from storage_svc.adapters import HmacUrlSigner, ScrubMetrics, ShareAccessPolicy, SqlUnitOfWork, sample_gauges
from storage_svc.blobstores import open_blob_store
from storage_svc.config import StorageConfig
from storage_svc.scanner import ClamdScanner, DisabledScanner
from storage_svc.servicer import PublicLinkServicer, StorageAdminServicer, StorageServicer
from storage_svc.usecases import Access, Downloads, Housekeeping, Limits, PublicLinks, Scrubber, Tree, Uploads

NAME = "storage"
log = logging.getLogger("flowdock.storage")
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = storage_pb2.DESCRIPTOR.services_by_name["StorageService"]
ADMIN_SERVICE = storage_pb2.DESCRIPTOR.services_by_name["StorageAdminService"]
PUBLIC_SERVICE = storage_pb2.DESCRIPTOR.services_by_name["PublicLinkService"]
# Who may call each internal method (mesh identities, checked from the caller's certificate): auth_svc's admin API.
INTERNAL_CALLERS = internal_callers(
    [SERVICE, ADMIN_SERVICE, PUBLIC_SERVICE],
    {
        "StorageAdminService.SetQuota": {"auth_svc"},
        "StorageAdminService.GetUserQuota": {"auth_svc"},
        "StorageAdminService.DeleteUserData": {"auth_svc"},
    },
)


def migrate(config: StorageConfig) -> None:
    db.migrate(db.service_url(config, NAME, driver_async=False), MIGRATIONS)


async def build(config: StorageConfig) -> Service:
    for key in ("auth_address", "share_address"):
        if not getattr(config, key):
            raise ConfigError(f"FLOWDOCK_{key.upper()}", "is required by storage_svc (host:port)")
    if config.storage_max_chunk_bytes + 64 * 1024 > config.max_message_bytes:
        raise ConfigError(
            "FLOWDOCK_STORAGE_MAX_CHUNK_BYTES", "must be at least 64 KiB below FLOWDOCK_MAX_MESSAGE_BYTES"
        )
    if config.storage_upload_chunk_bytes > config.storage_max_chunk_bytes:
        raise ConfigError("FLOWDOCK_STORAGE_UPLOAD_CHUNK_BYTES", "must not exceed FLOWDOCK_STORAGE_MAX_CHUNK_BYTES")
    engine = db.make_engine(db.service_url(config, NAME), sqlite_immediate=True)
    tls = config.mesh(NAME)
    keepalive = Keepalive.every(config.keepalive_seconds)
    auth = internal_channel(config.auth_address, config.max_message_bytes, tls, "auth", keepalive=keepalive)
    share = internal_channel(config.share_address, config.max_message_bytes, tls, "share", keepalive=keepalive)
    sessions = db.connections(engine)
    scanner: ClamdScanner | DisabledScanner
    if config.storage_virus_scan == "off":
        scanner = DisabledScanner()
        log.warning("virus scanning is OFF (storage_virus_scan=off): uploads become visible unscanned")
    else:
        scanner = ClamdScanner(config.storage_clamd_address, stream_max_bytes=config.storage_clamd_stream_max_bytes)
        if not await scanner.ping():
            log.warning(
                "clamd at %s does not answer yet; uploads cannot finish until it does", config.storage_clamd_address
            )
    outbox = Outbox(engine, service=NAME, send=remote_audit_sender(auth))

    def uow(*, read_only: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(sessions, outbox, read_only=read_only)

    blobs = open_blob_store(config)
    log.info("blob store: %s", blobs.description)
    readmodel.PAGES.max_bytes = config.storage_list_cache_bytes  # the process's listing page cache
    clock = SystemClock()
    limits = Limits(
        chunk_bytes=config.storage_chunk_bytes,
        max_chunk_bytes=config.storage_max_chunk_bytes,
        max_file_bytes=config.storage_max_file_bytes,
        link_drop_max_files=config.storage_link_drop_max_files,
        link_drop_max_bytes=config.storage_link_drop_max_bytes,
        upload_chunk_bytes=config.storage_upload_chunk_bytes,
        upload_expiry=timedelta(hours=config.storage_upload_expiry_hours),
        sync_bytes=config.storage_sync_bytes,
        list_page_size=config.storage_list_page_size,
        list_max_page_size=config.storage_list_max_page_size,
        default_quota_bytes=config.storage_default_quota_bytes,
        inline_finish_bytes=config.storage_inline_finish_bytes,
        trash_retention=timedelta(days=config.storage_trash_days),
        versions_kept=config.storage_versions_kept,
        scan_oversize=config.storage_scan_oversize,
        inline_upload_bytes=config.storage_inline_upload_bytes,
        small_upload_bytes=config.storage_small_upload_bytes,
        download_url_lifetime=timedelta(seconds=config.storage_download_url_seconds),
    )
    access = Access(uow=uow, policy=ShareAccessPolicy(share), clock=clock)
    tree = Tree(uow=uow, blobs=blobs, access=access, limits=limits, clock=clock)
    uploads = Uploads(
        uow=uow,
        blobs=blobs,
        access=access,
        tree=tree,
        limits=limits,
        scanner=scanner,
        events=outbox,
        clock=clock,
        holders=PROCESS,  # lease tokens name this process, so a restarted replica takes over its dead leases
    )
    downloads = Downloads(
        uow=uow,
        blobs=blobs,
        access=access,
        events=outbox,
        urls=HmacUrlSigner(config.url_key_path),
        limits=limits,
        clock=clock,
    )
    links = PublicLinks(uow=uow, access=access, events=outbox, limits=limits)
    housekeeper = Housekeeping(uow=uow, blobs=blobs, tree=tree, uploads=uploads, limits=limits, clock=clock)
    scrubber = Scrubber(
        uow=uow,
        blobs=blobs,
        clock=clock,
        holders=PROCESS,  # a replica that died mid-round has its scrub lease taken over at once, as upload leases
        monitor=ScrubMetrics(NAME),
        fraction_per_day=config.storage_scrub_fraction_per_day,
        bytes_per_second=config.storage_scrub_bytes_per_second,
    )

    def register(server: grpc.aio.Server) -> None:
        # add_servicer: as the generated functions register, but the methods marked `wire.serialised` (listings,
        # downloads) send the bytes they return as they are.
        servicer = StorageServicer(tree, uploads, downloads)
        add_servicer(server, storage_pb2_grpc.add_StorageServiceServicer_to_server, servicer)
        add_servicer(
            server,
            storage_pb2_grpc.add_PublicLinkServiceServicer_to_server,
            PublicLinkServicer(links, uploads, servicer),
        )
        add_servicer(
            server,
            storage_pb2_grpc.add_StorageAdminServiceServicer_to_server,
            StorageAdminServicer(tree, remote_admin_check(auth)),
        )

    async def housekeeping() -> None:
        await housekeeper.run(config.storage_housekeeping_seconds)

    async def scrub() -> None:
        await scrubber.run(config.storage_scrub_seconds)

    async def deliver_audit_events() -> None:
        await outbox.adopt(config.data_dir / "outbox" / "audit-storage.db")  # events queued by an earlier version
        outbox.start()
        await asyncio.Event().wait()  # runs until cancelled at shutdown; outbox.stop() flushes in on_stop

    async def close() -> None:
        await outbox.stop()
        await auth.close()
        await share.close()
        await engine.dispose()

    async def sample_storage() -> None:
        await sample_gauges(engine, config.storage_default_quota_bytes)

    metrics.watch_process(NAME, engine, config.data_dir)
    for outcome in metrics.UPLOAD_OUTCOME_VALUES:  # exported at 0 from the start: rate() needs a first sample
        metrics.UPLOAD_OUTCOMES.labels(outcome)
    samples: list[Callable[[], Awaitable[object]]] = [
        metrics.database_probe(NAME, engine),
        metrics.outbox_probe(NAME, outbox.pending),
        sample_storage,
    ]
    if isinstance(scanner, ClamdScanner):
        samples.append(scanner.ping)

    return Service(
        name=NAME,
        service_names=[SERVICE.full_name, ADMIN_SERVICE.full_name, PUBLIC_SERVICE.full_name],
        register=register,
        public_methods=public_methods(SERVICE, ADMIN_SERVICE, PUBLIC_SERVICE),
        internal_callers=INTERNAL_CALLERS,
        keys=remote_signing_keys(auth, config.jwks_refresh_seconds),
        on_stop=[close],
        background=[
            housekeeping,
            deliver_audit_events,
            metrics.sampler(NAME, samples),
            *([scrub] if config.storage_scrub_fraction_per_day > 0 else []),
        ],
    )
