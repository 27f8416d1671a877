"""Composition root of share_svc: the only place that names concrete classes."""

from __future__ import annotations

from pathlib import Path

import grpc

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock_kernel import db
from flowdock_kernel.channels import internal_channel, remote_signing_keys
from flowdock_kernel.config import ConfigError
from flowdock_kernel.contract import public_methods
from flowdock_kernel.server import Service
from share_svc.adapters import SqlUnitOfWork
from share_svc.config import ShareConfig
from share_svc.servicer import AccessServicer, ShareServicer
from share_svc.usecases import Sharing

NAME = "share"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES = [share_pb2.DESCRIPTOR.services_by_name[n] for n in ("ShareService", "AccessService")]


def migrate(config: ShareConfig) -> None:
    db.migrate(db.service_url(config, NAME, driver_async=False), MIGRATIONS)


async def build(config: ShareConfig) -> Service:
    if not config.auth_address:
        raise ConfigError("FLOWDOCK_AUTH_ADDRESS", "is required by share_svc (host:port)")
    engine = db.make_engine(db.service_url(config, NAME))
    sessions = db.sessionmaker(engine)
    auth = internal_channel(config.auth_address, config.max_message_bytes)
    sharing = Sharing(uow=lambda: SqlUnitOfWork(sessions), page_size=config.share_list_page_size)

    def register(server: grpc.aio.Server) -> None:
        share_pb2_grpc.add_ShareServiceServicer_to_server(ShareServicer(sharing), server)
        share_pb2_grpc.add_AccessServiceServicer_to_server(AccessServicer(sharing), server)

    async def close() -> None:
        await auth.close()
        await engine.dispose()

    return Service(
        name=NAME,
        service_names=[s.full_name for s in SERVICES],
        register=register,
        public_methods=public_methods(*SERVICES),
        keys=remote_signing_keys(auth, config.jwks_refresh_seconds),
        on_stop=[close],
    )
