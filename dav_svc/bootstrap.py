"""Composition root of dav_svc: the only place that names concrete classes; `serve` runs the WebDAV server.

WsgiDAV (protocol) under cheroot (its default WSGI server, a thread per request), behind `web.DavFront`
(health, authentication, metrics). The stubs of storage_svc and share_svc are the only way to the files. Serving
is HTTP/1.1 on loopback, mutual TLS with the mesh identity `dav_svc` when the mesh is on (Envoy presents the
gateway's certificate), like the gRPC services.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import ssl
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from dav_svc.backend import Backend, BasicAuth, channel, upload_stream_method
from dav_svc.config import DavConfig
from dav_svc.provider import FlowDockProvider
from dav_svc.stores import RequestSnapshot, SqlLockStorage, SqlPropertyManager
from dav_svc.web import DavFront
from flowdock.auth.v1 import auth_pb2_grpc
from flowdock.share.v1 import share_pb2_grpc
from flowdock.storage.v1 import storage_pb2_grpc
from flowdock_kernel import db, metrics
from flowdock_kernel.config import ConfigError
from flowdock_kernel.server import StartupError

NAME = "dav"
MIGRATIONS = Path(__file__).parent / "migrations"
#: Where the provider is mounted: Envoy routes this prefix here unchanged.
MOUNT = "/dav"

log = logging.getLogger("flowdock.dav")


def migrate(config: DavConfig) -> None:
    db.migrate(db.service_url(config, NAME, driver_async=False), MIGRATIONS)


def sync_engine(config: DavConfig) -> sa.Engine:
    """The stores' engine: WsgiDAV calls them from its request threads, so a sync one."""
    url = db.service_url(config, NAME, driver_async=False)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            # One connection per request thread at most: a busy server never waits for the pool.
            pool_size=config.dav_threads,
            max_overflow=0,
        )

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=config.dav_threads)


def build_backend(config: DavConfig) -> Backend:
    for key in ("auth_address", "storage_address", "share_address"):
        if not getattr(config, key):
            raise ConfigError(f"FLOWDOCK_{key.upper()}", "is required by dav_svc (host:port)")
    tls = config.mesh(NAME)
    storage = channel(config.storage_address, config.max_message_bytes, tls, "storage")
    share = channel(config.share_address, config.max_message_bytes, tls, "share")
    return Backend(
        storage=storage_pb2_grpc.StorageServiceStub(storage),
        shares=share_pb2_grpc.ShareServiceStub(share),
        timeout=config.dav_call_timeout_seconds,
        chunk_bytes=config.dav_chunk_bytes,
        finish_wait=config.dav_finish_wait_seconds,
        upload_stream=upload_stream_method(storage),
    )


def build_basic_auth(config: DavConfig) -> BasicAuth:
    auth = channel(config.auth_address, config.max_message_bytes, config.mesh(NAME), "auth")
    return BasicAuth(auth_pb2_grpc.AuthInternalServiceStub(auth), config.dav_call_timeout_seconds)


def build_app(config: DavConfig, backend: Backend, engine: sa.Engine, basic: BasicAuth | None = None) -> DavFront:
    snapshot = RequestSnapshot()
    dav = WsgiDAVApp(
        {
            "provider_mapping": {MOUNT: FlowDockProvider()},
            "mount_path": "",
            "lock_storage": SqlLockStorage(engine, snapshot),
            "property_manager": SqlPropertyManager(engine, snapshot),
            # Authentication is DavFront's; no directory browser (a GET on a folder is 405-free but empty).
            "middleware_stack": [ErrorPrinter, RequestResolver],
            # (WsgiDAV's authenticator is not in the stack; off here so it does not warn about Basic without SSL.)
            "http_authenticator": {"domain_controller": None, "accept_basic": False, "accept_digest": False},
            "dir_browser": {"enable": False},
            "verbose": 1,
            "logging": {"enable": False, "enable_loggers": []},
            "add_header_MS_Author_Via": True,
            "suppress_version_info": True,
            "block_size": 1024 * 1024,
        }
    )
    return DavFront(dav, backend, basic, snapshot=snapshot)


class _ClosingGateway(wsgi.Gateway_10):
    """cheroot's WSGI gateway, plus: a response saying `Connection: close` closes the connection. Otherwise cheroot
    reads a refused request's whole body before answering (to keep the connection), so a 507 to a 10 GiB PUT over
    quota would wait for 10 GiB."""

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        write = super().start_response(status, headers, exc_info)
        if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
            self.req.close_connection = True
        return write


def _ssl_adapter(config: DavConfig) -> BuiltinSSLAdapter | None:
    tls = config.mesh(NAME)
    if tls is None:
        return None
    for path in (tls.ca_file, tls.cert_file, tls.key_file):
        if not path.is_file():
            raise StartupError(f"mesh TLS file {path} is missing; `flowdock up` creates it")
    adapter = BuiltinSSLAdapter(str(tls.cert_file), str(tls.key_file))
    adapter.context.load_verify_locations(cafile=str(tls.ca_file))
    adapter.context.verify_mode = ssl.CERT_REQUIRED  # only the gateway (a mesh certificate) may connect
    return adapter


def serve(config: DavConfig) -> None:
    """Run until SIGTERM/SIGINT; in-flight requests get shutdown_grace_seconds."""
    # WsgiDAV logs every request at info; the access log of record is Envoy's (and our request metrics).
    logging.getLogger("wsgidav").setLevel(logging.WARNING)
    engine = sync_engine(config)
    backend = build_backend(config)
    app = build_app(config, backend, engine, build_basic_auth(config))
    server = wsgi.Server(
        (config.listen_host, config.grpc_port),
        app,
        numthreads=config.dav_threads,
        server_name="flowdock-dav",
        timeout=int(config.dav_socket_timeout_seconds),
        shutdown_timeout=int(config.shutdown_grace_seconds),
    )
    server.gateway = _ClosingGateway
    server.ssl_adapter = _ssl_adapter(config)
    try:
        server.prepare()
    except OSError as exc:
        raise StartupError(f"cannot listen on {config.listen_host}:{config.grpc_port}: {exc.strerror}") from exc
    bound = server.bind_addr[1]
    try:
        metrics_port = metrics.serve_metrics(config.listen_host, config.metrics_port)
    except OSError as exc:
        raise StartupError(
            f"cannot serve metrics on {config.listen_host}:{config.metrics_port}: {exc.strerror}"
        ) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    worker = threading.Thread(target=server.serve, name="dav-http", daemon=True)
    worker.start()
    log.info("serving", extra={"http_port": bound, "metrics_port": metrics_port, "pid": os.getpid()})
    if config.ready_file:
        ready = Path(config.ready_file)
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"grpc_port": bound, "http_port": bound, "metrics_port": metrics_port, "pid": os.getpid()})
        )
        tmp.replace(ready)
    while not stop.wait(0.5):
        if not worker.is_alive():
            raise StartupError("the WebDAV server stopped unexpectedly")
    log.info("draining", extra={"grace_seconds": config.shutdown_grace_seconds})
    server.stop()
    worker.join(config.shutdown_grace_seconds + 1)
    engine.dispose()
    log.info("stopped")
