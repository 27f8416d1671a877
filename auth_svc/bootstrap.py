"""Composition root of auth_svc: the only place that names concrete classes."""

from __future__ import annotations

from pathlib import Path

import grpc

from auth_svc.adapters import Argon2Hasher, SigningKeyring, SqlUnitOfWork
from auth_svc.config import AuthConfig
from auth_svc.servicer import AuthServicer
from auth_svc.usecases import Accounts
from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import db
from flowdock_kernel.contract import public_methods
from flowdock_kernel.server import Service
from flowdock_kernel.tokens import KeyCache, KeyMap

NAME = "auth"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]


def migrate(config: AuthConfig) -> None:
    db.migrate(db.service_url(config, NAME, driver_async=False), MIGRATIONS)


async def build(config: AuthConfig) -> Service:
    engine = db.make_engine(db.service_url(config, NAME))
    keyring = SigningKeyring(
        engine,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        ttl_seconds=config.auth_access_token_ttl_seconds,
    )
    await keyring.load()
    sessions = db.sessionmaker(engine)
    accounts = Accounts(
        uow=lambda: SqlUnitOfWork(sessions),
        hasher=Argon2Hasher(
            memory_kib=config.auth_argon2_memory_kib,
            time_cost=config.auth_argon2_time_cost,
            parallelism=config.auth_argon2_parallelism,
        ),
        issuer=keyring,
    )
    servicer = AuthServicer(accounts, keyring)

    async def own_keys() -> KeyMap:
        return keyring.public_keys()

    def register(server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    return Service(
        name=NAME,
        service_names=[SERVICE.full_name],
        register=register,
        public_methods=public_methods(SERVICE),
        keys=KeyCache(own_keys, ttl=config.jwks_refresh_seconds),
        on_stop=[engine.dispose],
    )
