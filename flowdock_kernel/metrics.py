"""Prometheus metrics every service exports on its own /metrics port.

Label cardinality is bounded by construction, never by the data: `service` (3 values), `method` (the RPCs the
protos declare, ~120), `code` (the 17 gRPC status codes), `direction`, `outcome`, `state`, `result` and `bucket`
(fixed sets below). No label ever carries a user, file, upload, share or request id, an address or a path; at most
~3 x 120 x 17 request-counter series per replica, in practice the few codes each method returns
(docs/operations.md states the bound).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("flowdock.metrics")

REQUESTS = Counter(
    "flowdock_grpc_requests_total", "gRPC calls handled, by final status code.", ["service", "method", "code"]
)
LATENCY = Histogram(
    "flowdock_grpc_request_seconds",
    "gRPC call duration (streams: until the last message).",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
STREAMS_IN_FLIGHT = Gauge("flowdock_grpc_streams_in_flight", "Streaming calls now open.", ["service", "method"])
BYTES_STREAMED = Counter(
    "flowdock_bytes_streamed_total", "File bytes moved by streaming calls.", ["service", "direction"]
)

# -- storage_svc: uploads, scanning, quotas

#: Values of `outcome` (fixed): how an upload session ended.
UPLOAD_OUTCOME_VALUES = ("completed", "failed_checksum", "infected", "refused", "expired")
UPLOAD_OUTCOMES = Counter(
    "flowdock_upload_outcomes_total",
    "Upload sessions ended, by outcome (counted when the outcome is written).",
    ["outcome"],
)
UPLOADS_ACTIVE = Gauge(
    "flowdock_uploads_active", "Upload sessions not yet ended, by state (open, finishing; sampled).", ["state"]
)
SCAN_SECONDS = Histogram(
    "flowdock_scan_seconds",
    "Virus scan duration, from connecting to clamd to its verdict, by result (clean, infected, error).",
    ["result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
#: Labelled (service="storage") so that it exists only once a scanner has been asked: with scanning off there is
#: no series, rather than a 0 that would read as "clamd down".
CLAMD_UP = Gauge(
    "flowdock_clamd_up",
    "1 when clamd answered its last PING or scan, 0 when it did not (uploads fail closed).",
    ["service"],
)
#: Values of `bucket` (fixed): the share of their quota accounts use.
QUOTA_BUCKETS = ("lt50", "50to80", "80to95", "95to100", "full")
QUOTA_ACCOUNTS = Gauge(
    "flowdock_quota_accounts", "Accounts by the share of their quota used (used + reserved; sampled).", ["bucket"]
)

# -- storage_svc: scrubbing (labelled service="storage", so only storage exports them; at 0 from the start)

SCRUB_BLOBS = Counter(
    "flowdock_scrub_blobs_verified_total", "Blobs the background scrub authenticated (every segment).", ["service"]
)
SCRUB_BYTES = Counter(
    "flowdock_scrub_bytes_verified_total", "Stored bytes the background scrub read and authenticated.", ["service"]
)
SCRUB_DAMAGED = Counter(
    "flowdock_scrub_damaged_blobs_total",
    "Blobs the background scrub found damaged or missing (DATA_LOSS), counted each time one is found.",
    ["service"],
)
SCRUB_LAST_PASS = Gauge(
    "flowdock_scrub_last_pass_timestamp_seconds",
    "When the scrub last completed a pass over every blob (any replica or `flowdock scrub`; 0: none yet).",
    ["service"],
)

# -- every service with a database

OUTBOX_PENDING = Gauge(
    "flowdock_audit_outbox_pending", "Audit events written but not yet delivered to auth_svc (sampled).", ["service"]
)
DATABASE_UP = Gauge(
    "flowdock_database_up", "1 when the service's database answered its last probe (SELECT 1), else 0.", ["service"]
)
SAMPLE_SECONDS = Gauge(
    "flowdock_sample_timestamp_seconds", "When the sampled gauges of this service were last refreshed.", ["service"]
)

#: How often the sampled gauges are refreshed (Prometheus' default scrape interval is 15 s).
SAMPLE_INTERVAL = 10.0


def serve_metrics(host: str, port: int) -> int:
    """Start the /metrics HTTP server in a thread; returns the bound port (useful when port is 0)."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)


def outcome_of_failure(why: str) -> str:
    """The `outcome` label for an upload refused with the message `why` (the use case's wording)."""
    lowered = why.lower()
    if "sha-256" in lowered:
        return "failed_checksum"
    if "virus found" in lowered:
        return "infected"
    return "refused"


class PoolAndDiskCollector(Collector):
    """Read at scrape time: the database pool's connections and the free space of the data folder.

    Both are cheap, synchronous reads (pool counters, statvfs), so they need no sampling loop."""

    def __init__(self, service: str, engine: AsyncEngine | None, data_dir: Path | None) -> None:
        self.service = service
        self.engine = engine
        self.data_dir = data_dir

    def collect(self) -> Iterable[GaugeMetricFamily]:
        if self.engine is not None:
            pool: Any = self.engine.sync_engine.pool
            conns = GaugeMetricFamily(
                "flowdock_db_pool_connections",
                "Database connections of this process, by state (in_use, idle).",
                labels=["service", "state"],
            )
            size = GaugeMetricFamily(
                "flowdock_db_pool_size", "Connections the pool keeps (overflow comes on top).", labels=["service"]
            )
            in_use = _call(pool, "checkedout")
            idle = _call(pool, "checkedin")
            if in_use is not None:
                conns.add_metric([self.service, "in_use"], in_use)
            if idle is not None:
                conns.add_metric([self.service, "idle"], idle)
            if (n := _call(pool, "size")) is not None:
                size.add_metric([self.service], n)
            yield conns
            yield size
        if self.data_dir is not None:
            try:
                st = os.statvfs(self.data_dir)
            except OSError:
                return
            free = GaugeMetricFamily(
                "flowdock_data_disk_free_bytes",
                "Free bytes (for this user) of the data folder's file system.",
                labels=["service"],
            )
            free.add_metric([self.service], st.f_bavail * st.f_frsize)
            total = GaugeMetricFamily(
                "flowdock_data_disk_size_bytes", "Size of the data folder's file system.", labels=["service"]
            )
            total.add_metric([self.service], st.f_blocks * st.f_frsize)
            yield free
            yield total


def _call(pool: Any, name: str) -> float | None:
    method = getattr(pool, name, None)
    if method is None:
        return None
    try:
        return float(method())
    except Exception:
        return None


_registered: dict[str, PoolAndDiskCollector] = {}


def watch_process(service: str, engine: AsyncEngine | None = None, data_dir: Path | None = None) -> None:
    """Export the pool and disk gauges of this process (once per service name; a rebuild replaces the engine)."""
    found = _registered.get(service)
    if found is not None:
        found.engine, found.data_dir = engine, data_dir
        return
    collector = PoolAndDiskCollector(service, engine, data_dir)
    REGISTRY.register(collector)
    _registered[service] = collector


def database_probe(service: str, engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    """A sampling step: SELECT 1 on the service's database -> flowdock_database_up."""
    import sqlalchemy as sa

    gauge = DATABASE_UP.labels(service)

    async def probe() -> None:
        try:
            async with asyncio.timeout(5):
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except Exception:
            gauge.set(0)
            raise
        gauge.set(1)

    return probe


def outbox_probe(service: str, pending: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[None]]:
    """A sampling step: the audit outbox's backlog -> flowdock_audit_outbox_pending."""
    gauge = OUTBOX_PENDING.labels(service)

    async def probe() -> None:
        gauge.set(await pending())

    return probe


def sampler(
    service: str, steps: list[Callable[[], Awaitable[object]]], interval: float = SAMPLE_INTERVAL
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A background job (Service.background) refreshing sampled gauges: at once, then every `interval` seconds.
    A failing step is logged (at debug: a database that is down says so in flowdock_database_up) and does not
    stop the others."""
    stamp = SAMPLE_SECONDS.labels(service)

    async def job() -> None:
        while True:
            for step in steps:
                try:
                    await step()
                except Exception as exc:
                    name = getattr(step, "__qualname__", "")
                    log.debug("metrics sample failed", extra={"step": name, "error": repr(exc)})
            stamp.set(time.time())
            await asyncio.sleep(interval)

    return job
