"""Composition root of share_svc: the only place that names concrete classes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import grpc

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock_kernel import db, metrics
from flowdock_kernel.audit import Outbox, remote_audit_sender
from flowdock_kernel.channels import Keepalive, internal_channel, remote_admin_check, remote_signing_keys
from flowdock_kernel.clock import SystemClock
from flowdock_kernel.config import ConfigError
from flowdock_kernel.contract import internal_callers, public_methods
from flowdock_kernel.server import Service
from flowdock_kernel.workers import BoundedPool
from share_svc.adapters import (
    Argon2Hasher,
    AuthAccounts,
    HmacSessionSigner,
    SqlUnitOfWork,
    StorageNodes,
    session_key,
)
from share_svc.config import ShareConfig
from share_svc.servicer import AccessServicer, ShareServicer
from share_svc.usecases import LinkPolicy, Sharing

NAME = "share"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES = [share_pb2.DESCRIPTOR.services_by_name[n] for n in ("ShareService", "AccessService")]
# Who may call each internal method (mesh identities, checked from the caller's certificate).
INTERNAL_CALLERS = internal_callers(
    SERVICES,
    {
        "AccessService.CheckAccess": {"storage_svc"},
        "AccessService.CheckLinkAccess": {"storage_svc"},
        "AccessService.DropShares": {"storage_svc"},
        "AccessService.DeleteUserShares": {"auth_svc"},
    },
)


def migrate(config: ShareConfig) -> None:
    db.migrate(db.service_url(config, NAME, driver_async=False), MIGRATIONS)


async def build(config: ShareConfig) -> Service:
    for key in ("auth_address", "storage_address"):
        if not getattr(config, key):
            raise ConfigError(f"FLOWDOCK_{key.upper()}", "is required by share_svc (host:port)")
    clock = SystemClock()  # the one clock of the service: use cases and entrypoints read the time from it
    engine = db.make_engine(db.service_url(config, NAME))
    sessions = db.connections(engine)
    tls = config.mesh(NAME)
    keepalive = Keepalive.every(config.keepalive_seconds)
    auth = internal_channel(config.auth_address, config.max_message_bytes, tls, "auth", keepalive=keepalive)
    # Used lazily (share_svc starts before storage_svc): only when a user creates shares or lists them.
    storage = internal_channel(config.storage_address, config.max_message_bytes, tls, "storage", keepalive=keepalive)
    outbox = Outbox(engine, service=NAME, send=remote_audit_sender(auth), clock=clock)
    hasher = Argon2Hasher(
        BoundedPool(
            "share.link_password_hashing",
            workers=config.share_hash_workers,
            queue=config.share_hash_queue,
            per_key=config.share_hash_per_client,
        )
    )
    sharing = Sharing(
        uow=lambda: SqlUnitOfWork(sessions, outbox),
        page_size=config.share_list_page_size,
        nodes=StorageNodes(storage),
        accounts=AuthAccounts(auth),
        events=outbox,
        hasher=hasher,
        sessions=HmacSessionSigner(await session_key(sessions)),
        policy=LinkPolicy(
            session_seconds=config.share_link_session_seconds,
            failure_window=timedelta(seconds=config.share_link_password_window_seconds),
            failures_per_link=config.share_link_password_failures_per_link,
            failures_per_ip=config.share_link_password_failures_per_ip,
        ),
        public_url=config.share_public_url.rstrip("/"),
        clock=clock,
    )

    def register(server: grpc.aio.Server) -> None:
        share_pb2_grpc.add_ShareServiceServicer_to_server(ShareServicer(sharing, clock), server)
        share_pb2_grpc.add_AccessServiceServicer_to_server(AccessServicer(sharing, remote_admin_check(auth)), server)

    async def deliver_audit_events() -> None:
        await outbox.adopt(config.data_dir / "outbox" / "audit-share.db")  # events queued by an earlier version
        outbox.start()
        await asyncio.Event().wait()  # runs until cancelled at shutdown; outbox.stop() flushes in on_stop

    async def close() -> None:
        await outbox.stop()
        await auth.close()
        await storage.close()
        hasher.close()
        await engine.dispose()

    metrics.watch_process(NAME, engine, config.data_dir)

    return Service(
        name=NAME,
        service_names=[s.full_name for s in SERVICES],
        register=register,
        public_methods=public_methods(*SERVICES),
        internal_callers=INTERNAL_CALLERS,
        keys=remote_signing_keys(auth, config.jwks_refresh_seconds),
        on_stop=[close],
        background=[
            deliver_audit_events,
            metrics.sampler(NAME, [metrics.database_probe(NAME, engine), metrics.outbox_probe(NAME, outbox.pending)]),
        ],
    )
