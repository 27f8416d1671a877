"""Composition root of auth_svc: the only place that names concrete classes."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from auth_svc.adapters.hashing import Argon2Hasher, common_passwords
from auth_svc.adapters.mail import OutboxMailer, SmtpMailer
from auth_svc.adapters.oidc import HttpOidcClient
from auth_svc.adapters.peers import GrpcShareAdmin, GrpcStorageAdmin
from auth_svc.adapters.ratelimit import RedisRateLimiter, SqlRateLimiter
from auth_svc.adapters.signing import SigningKeyring
from auth_svc.adapters.sql import SqlAuditLog, SqlHousekeeping, SqlUnitOfWork, seal_legacy_rows
from auth_svc.adapters.totp import PyOtpTotp
from auth_svc.config import AuthConfig
from auth_svc.domain import OidcProvider
from auth_svc.ports import Mailer
from auth_svc.secretbox import SecretBox
from auth_svc.servicer import AuthInternalServicer, AuthServicer, RefreshCookie
from auth_svc.usecases import Accounts, Limit, Limits, Policy
from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import db, metrics
from flowdock_kernel.channels import Keepalive, internal_channel
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.config import ConfigError
from flowdock_kernel.contract import internal_callers, public_methods
from flowdock_kernel.server import Service, every
from flowdock_kernel.tokens import KeyCache, KeyMap, SessionCache
from flowdock_kernel.workers import BoundedPool

log = logging.getLogger("flowdock.auth")

NAME = "auth"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES = [auth_pb2.DESCRIPTOR.services_by_name[n] for n in ("AuthService", "AuthInternalService")]
# Who may call each internal method (mesh identities, checked from the caller's certificate).
INTERNAL_CALLERS = internal_callers(
    SERVICES,
    {
        "AuthInternalService.CheckSession": {"storage_svc", "share_svc"},
        "AuthInternalService.RecordEvents": {"storage_svc", "share_svc"},
        "AuthInternalService.LookupUser": {"share_svc"},
        "AuthInternalService.NotifyUser": {"share_svc"},
        # The WebDAV service checks HTTP Basic credentials (email + app password) on every request.
        "AuthInternalService.AuthenticateBasic": {"dav_svc"},
    },
)


def migrate(config: AuthConfig) -> None:
    db.migrate(db.service_url(config, NAME, driver_async=False), MIGRATIONS)


def make_engine(config: AuthConfig) -> AsyncEngine:
    """SQLite: every transaction takes the write lock at BEGIN, so two use cases that read then write one account
    queue instead of one failing ("database is locked"); no use case writes on a second connection (audit, rate
    limits) while its own transaction is open."""
    return db.make_engine(db.service_url(config, NAME), sqlite_immediate=True)


def make_hasher(config: AuthConfig) -> Argon2Hasher:
    return Argon2Hasher(
        memory_kib=config.auth_argon2_memory_kib,
        time_cost=config.auth_argon2_time_cost,
        parallelism=config.auth_argon2_parallelism,
        pool=BoundedPool(
            "auth.password_hashing",
            workers=config.auth_hash_workers,
            queue=config.auth_hash_queue,
            per_key=config.auth_hash_per_client,
        ),
    )


def make_mailer(config: AuthConfig, clock: Clock | None = None) -> Mailer:
    if not config.auth_smtp_host:
        return OutboxMailer(config.data_dir / "outbox", config.auth_mail_from, clock)
    return SmtpMailer(
        host=config.auth_smtp_host,
        port=config.auth_smtp_port,
        security=config.auth_smtp_security,
        username=config.auth_smtp_username,
        password=config.auth_smtp_password,
        sender=config.auth_mail_from,
        timeout=config.auth_smtp_timeout_seconds,
        ca_file=config.auth_smtp_ca_file,
    )


def make_limits(c: AuthConfig) -> Limits:
    return Limits(
        window_seconds=c.auth_rate_window_seconds,
        login=Limit(c.auth_rate_login_per_account, c.auth_rate_login_per_ip),
        register=Limit(c.auth_rate_register_per_address, c.auth_rate_register_per_ip),
        recovery=Limit(c.auth_rate_recovery_per_account, c.auth_rate_recovery_per_ip),
        totp=Limit(c.auth_rate_totp_per_account, c.auth_rate_totp_per_ip),
        resend=Limit(c.auth_rate_resend_per_account, c.auth_rate_resend_per_ip),
        reset=Limit(0, c.auth_rate_reset_per_ip),
        password=Limit(c.auth_rate_password_per_account, c.auth_rate_password_per_ip),
    )


def oidc_providers(config: AuthConfig) -> list[OidcProvider]:
    key = "FLOWDOCK_AUTH_OIDC_PROVIDERS"
    if not config.auth_oidc_providers.strip():
        return []
    try:
        entries = json.loads(config.auth_oidc_providers)
        assert isinstance(entries, list)
        providers = [
            OidcProvider(
                name=str(e["name"]),
                issuer=str(e["issuer"]),
                client_id=str(e["client_id"]),
                client_secret=str(e.get("client_secret", "")),
                scopes=str(e.get("scopes", "openid email profile")),
                link_verified_email=e.get("link_verified_email", False) is True,
            )
            for e in entries
        ]
    except (ValueError, AssertionError, KeyError, TypeError, AttributeError):
        raise ConfigError(key, "must be a JSON list of {name, issuer, client_id, client_secret, ...}") from None
    names = [p.name for p in providers]
    if len(set(names)) != len(names) or not all(n and n.replace("-", "").isalnum() for n in names):
        raise ConfigError(key, "provider names must be unique and made of letters, digits and '-'")
    return providers


def redirect_uris(config: AuthConfig) -> tuple[str, ...]:
    listed = tuple(u.strip() for u in config.auth_oidc_redirect_uris.split(",") if u.strip())
    return listed or (config.auth_public_url.rstrip("/") + "/oauth/callback",)


async def build(config: AuthConfig) -> Service:
    clock = SystemClock()  # the one clock of the service: everything below reads the time from it
    providers = oidc_providers(config)
    engine = make_engine(config)
    # Admin calls to storage_svc (quota, deleting a user's files) carry the admin's forwarded token.
    box = SecretBox.from_file(config.secrets_key_path)
    sealed = await seal_legacy_rows(engine, box)
    if sealed:
        log.info("sealed %d plaintext secret(s) written before encryption at rest", sealed)
    tls = config.mesh(NAME)
    keepalive = Keepalive.every(config.keepalive_seconds)
    storage = (
        internal_channel(config.storage_address, config.max_message_bytes, tls, "storage", keepalive=keepalive)
        if config.storage_address
        else None
    )
    share = (
        internal_channel(config.share_address, config.max_message_bytes, tls, "share", keepalive=keepalive)
        if config.share_address
        else None
    )
    keyring = SigningKeyring(
        engine,
        box=box,
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        ttl_seconds=config.auth_access_token_ttl_seconds,
        reload_seconds=config.auth_signing_key_reload_seconds,
        clock=clock,
    )
    await keyring.load()
    sessions = db.connections(engine)
    limiter: RedisRateLimiter | SqlRateLimiter = (
        RedisRateLimiter(config.auth_redis_url, clock) if config.auth_redis_url else SqlRateLimiter(engine, clock)
    )
    hasher = make_hasher(config)
    accounts = Accounts(
        uow=lambda: SqlUnitOfWork(sessions, box),
        reader=lambda: SqlUnitOfWork(sessions, box, read_only=True),
        hasher=hasher,
        issuer=keyring,
        mailer=make_mailer(config, clock),
        totp=PyOtpTotp(config.auth_totp_issuer, clock),
        limiter=limiter,
        audit=SqlAuditLog(engine),
        policy=Policy(
            session_max_age=timedelta(seconds=config.auth_session_max_age_seconds),
            session_idle=timedelta(seconds=config.auth_session_idle_seconds),
            require_verified_email=config.auth_require_verified_email,
            verify_ttl=timedelta(hours=config.auth_verify_token_hours),
            reset_ttl=timedelta(minutes=config.auth_reset_token_minutes),
            mfa_ttl=timedelta(seconds=config.auth_mfa_token_seconds),
            public_url=config.auth_public_url,
            oidc_redirect_uris=redirect_uris(config),
            reauth_window=timedelta(seconds=config.auth_reauth_seconds),
            basic_account_password=config.auth_basic_allow_account_password,
            app_passwords_per_account=config.auth_app_passwords_per_account,
        ),
        limits=make_limits(config),
        common_passwords=common_passwords(config.auth_common_passwords),
        oidc=HttpOidcClient(providers, clock=clock) if providers else None,
        user_data=GrpcStorageAdmin(storage) if storage is not None else None,
        user_shares=GrpcShareAdmin(share) if share is not None else None,
        clock=clock,
    )
    cookie = RefreshCookie(
        max_age_seconds=config.auth_session_max_age_seconds,
        secure=config.auth_cookie_secure or config.auth_public_url.lower().startswith("https://"),
    )
    servicer = AuthServicer(accounts, keyring, cookie)
    internal = AuthInternalServicer(accounts, clock)
    housekeeping = SqlHousekeeping(engine, clock=clock)

    async def own_keys() -> KeyMap:
        await keyring.refresh()
        return keyring.public_keys()

    def register(server: grpc.aio.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
        auth_pb2_grpc.add_AuthInternalServiceServicer_to_server(internal, server)

    async def close() -> None:
        await accounts.drain()
        for channel in (storage, share):
            if channel is not None:
                await channel.close()
        if isinstance(limiter, RedisRateLimiter):
            await limiter.close()
        hasher.close()
        await engine.dispose()

    metrics.watch_process(NAME, engine, config.data_dir)

    return Service(
        name=NAME,
        service_names=[s.full_name for s in SERVICES],
        register=register,
        public_methods=public_methods(*SERVICES),
        internal_callers=INTERNAL_CALLERS,
        keys=KeyCache(
            own_keys,
            ttl=config.auth_signing_key_reload_seconds,
            min_refetch=1.0,
            sessions=SessionCache(accounts.session_active),
        ),
        on_stop=[close],
        # Key reloads (a rotation reaches every replica without a restart) and hourly housekeeping.
        background=[
            every(config.auth_signing_key_reload_seconds, keyring.refresh),
            every(3600, housekeeping.run),
            metrics.sampler(NAME, [metrics.database_probe(NAME, engine)]),
        ],
    )
