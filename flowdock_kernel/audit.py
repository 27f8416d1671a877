"""Audit events: written in the recording service's own database, in the same transaction as the change they
describe (a transactional outbox), and delivered to auth_svc's trail in the background.

Why in the same transaction: an event then exists exactly when its change does. A crash between commit and
record cannot lose it, a rolled-back change cannot leave one behind, and recording costs one more INSERT in a
commit the service makes anyway (no fsync of a separate file on the event loop).

How: a unit of work collects events (`uow.events.record(...)`) and inserts them into `audit_outbox` just before
its COMMIT. What changes nothing (a download, a refused upload) is recorded with `await outbox.record(...)`, in a
short transaction of its own. A background task (`Outbox.start()`) reads pending rows in batches, sends them to
`AuthInternalService.RecordEvents` and deletes them only after auth_svc acknowledged them. While auth_svc is down,
unreachable or failing, they stay in the table and are retried with backoff (0.5 s doubling to 30 s), also across
restarts. Every event carries an id chosen when it was recorded and auth_svc stores each id once, so a batch re-sent
after a lost acknowledgement is not duplicated. On PostgreSQL a batch stays row-locked from read to delete (SKIP
LOCKED), so replicas sharing the database send different events; on SQLite they may both send one (stored once).
Order within the trail is by arrival; each event keeps the time it happened.

Each service's migrations create `audit_outbox` (columns as `audit_outbox` below). Never put a secret (password,
code, token, link password) in `details`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import logs
from flowdock_kernel.clock import Clock, SystemClock
from flowdock_kernel.db import disk_full_error, read_only
from flowdock_kernel.wire import timestamp

log = logging.getLogger("flowdock.audit")

Sender = Callable[[list[dict[str, Any]]], Awaitable[None]]

metadata = sa.MetaData()
audit_outbox = sa.Table(
    "audit_outbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("event", sa.Text, nullable=False),
)
_INSERT = audit_outbox.insert()  # built once: one per commit cost its cache key each time


def remote_audit_sender(auth: grpc.aio.Channel, *, timeout: float = 5.0) -> Sender:
    """Deliver a batch to auth_svc (AuthInternalService.RecordEvents)."""
    stub = auth_pb2_grpc.AuthInternalServiceStub(auth)

    async def send(events: list[dict[str, Any]]) -> None:
        messages = []
        for e in events:
            messages.append(
                auth_pb2.ActivityEvent(
                    id=e["id"],
                    time=timestamp(datetime.fromisoformat(e["time"])),
                    kind=e["kind"],
                    actor_id=e["actor_id"],
                    subject_id=e["subject_id"],
                    ip=e["ip"],
                    user_agent=e["user_agent"],
                    service=e["service"],
                    details=e["details"],
                )
            )
        await stub.RecordEvents(auth_pb2.RecordEventsRequest(events=messages), timeout=timeout)

    return send


class EventBuffer:
    """The events of one unit of work, written with its commit (and dropped with its rollback). The caller's
    address and user agent are taken as the gateway saw them, when the event is recorded."""

    def __init__(self, service: str, clock: Clock | None = None) -> None:
        self.service = service
        self.clock = clock or SystemClock()
        self.rows: list[dict[str, str]] = []

    def record(self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None) -> str:
        client = logs.client_var.get()
        event_id = str(uuid.uuid4())
        event = {
            "id": event_id,
            "time": self.clock.now().isoformat(),
            "kind": kind,
            "actor_id": actor,
            "subject_id": subject,
            "ip": client.ip,
            "user_agent": client.user_agent,
            "service": self.service,
            "details": {str(k): str(v) for k, v in (details or {}).items()},
        }
        self.rows.append({"id": event_id, "event": json.dumps(event)})
        return event_id


class Outbox:
    """The `audit_outbox` table of one service's database and its delivery to auth_svc (see the module doc)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        service: str,
        send: Sender,
        batch_size: int = 100,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        linger: float = 0.25,
        poll: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.service = service
        self._send = send
        self._batch = batch_size
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._linger = linger
        self._poll = poll  # other replicas' events, and a wake-up this one missed
        self._clock = clock or SystemClock()  # stamps the events (delivery's backoff runs on real time)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held: list[dict[str, str]] = []  # recorded while the disk was full (see `record`)
        self.delivered = 0

    def buffer(self) -> EventBuffer:
        return EventBuffer(self.service, self._clock)

    async def write(self, conn: AsyncConnection, events: EventBuffer) -> None:
        """Inside the caller's transaction (a unit of work's commit)."""
        if events.rows:
            await conn.execute(_INSERT, events.rows)

    def wake(self) -> None:
        self._wake.set()

    async def record(
        self, kind: str, *, actor: str, subject: str = "", details: Mapping[str, str] | None = None
    ) -> str:
        """An event that goes with no change of this service's data: durable in its own transaction on return."""
        events = self.buffer()
        event_id = events.record(kind, actor=actor, subject=subject, details=details)
        try:
            async with self.engine.begin() as conn:
                await self.write(conn, events)
        except Exception as exc:
            if disk_full_error(exc) is None:
                raise
            # The database's disk is full: what only records a read (a download) must not stop the read. The event
            # waits in memory and is written by the delivery loop once space is back (lost only if the service
            # stops before: said in the log, with the event).
            self._held.extend(events.rows)
            log.warning("audit event held in memory: the database's disk is full", extra={"event": events.rows[-1]})
        self.wake()
        return event_id

    async def _write_held(self) -> None:
        """Write the events `record` held while the disk was full (raises while it still is)."""
        if self._held:
            rows = list(self._held)
            async with self.engine.begin() as conn:
                await conn.execute(_INSERT, rows)
            del self._held[: len(rows)]

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            await read_only(conn)
            return int((await conn.execute(sa.select(sa.func.count()).select_from(audit_outbox))).scalar_one())

    async def flush_once(self) -> int:
        """Send what is pending now; returns how many were delivered. Raises if auth_svc did not take them."""
        sent = 0
        locking = self.engine.dialect.name == "postgresql"
        while True:
            n = await (self._send_locked() if locking else self._send_unlocked())
            if not n:
                return sent
            sent += n
            self.delivered += n

    async def _send_locked(self) -> int:
        """PostgreSQL: the batch stays row-locked (FOR UPDATE SKIP LOCKED) from read to delete, so replicas sharing
        the database each send other events instead of the same ones twice. The transaction lasts one send
        (bounded by the sender's timeout) and locks only these outbox rows: inserts go on meanwhile."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(audit_outbox.c.seq, audit_outbox.c.event)
                    .order_by(audit_outbox.c.seq)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await self._send([json.loads(text) for _, text in rows])
                await conn.execute(sa.delete(audit_outbox).where(audit_outbox.c.seq.in_([seq for seq, _ in rows])))
        return len(rows)

    async def _send_unlocked(self) -> int:
        """SQLite has no row locks, and a write transaction held over a send would stop every writer of the
        database: read, send, then delete. Replicas sharing one SQLite file may send an event twice; auth_svc
        stores each id once."""
        async with self.engine.connect() as conn:
            await read_only(conn)
            rows = (
                await conn.execute(
                    sa.select(audit_outbox.c.seq, audit_outbox.c.event).order_by(audit_outbox.c.seq).limit(self._batch)
                )
            ).all()
        if rows:
            await self._send([json.loads(text) for _, text in rows])
            # By the rows sent, never by "seq <= last": a transaction that took a lower seq can commit after this
            # read, and its event must stay.
            async with self.engine.begin() as conn:
                await conn.execute(sa.delete(audit_outbox).where(audit_outbox.c.seq.in_([seq for seq, _ in rows])))
        return len(rows)

    async def adopt(self, path: Path) -> int:
        """Move events left undelivered in an earlier version's local outbox file
        (`<data_dir>/outbox/audit-<service>.db`) into the table, then remove the file."""

        def read() -> list[tuple[str, str]] | None:
            if not path.exists():
                return None
            db = sqlite3.connect(path)
            try:
                return [(str(i), str(e)) for i, e in db.execute("SELECT id, event FROM pending ORDER BY seq")]
            except sqlite3.OperationalError:  # no table: nothing was ever queued
                return []
            finally:
                db.close()

        rows = await asyncio.to_thread(read)
        if rows is None:
            return 0
        if rows:
            async with self.engine.begin() as conn:
                known = set(
                    (
                        await conn.execute(
                            sa.select(audit_outbox.c.id).where(audit_outbox.c.id.in_([i for i, _ in rows]))
                        )
                    ).scalars()
                )
                fresh = [{"id": i, "event": e} for i, e in rows if i not in known]
                if fresh:
                    await conn.execute(audit_outbox.insert(), fresh)
        for suffix in ("", "-wal", "-shm"):
            await asyncio.to_thread(path.with_name(path.name + suffix).unlink, missing_ok=True)
        log.info("adopted undelivered audit events from %s", path, extra={"events": len(rows)})
        return len(rows)

    async def _run(self) -> None:
        backoff = self._min_backoff
        while True:
            try:
                # A wait after a wake-up gathers a busy moment's events into one call (and one delete): at 50 ms,
                # auth_svc's intake of ~20 small batches a second cost ~0.2 CPU-s/s while files were uploaded one
                # after another (1.3-1.7 CPU-ms per file); a quarter second halves that and no one reads the trail
                # faster.
                await asyncio.sleep(self._linger)
                self._wake.clear()
                await self._write_held()
                await self.flush_once()
                backoff = self._min_backoff
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                pending = -1
                with contextlib.suppress(Exception):
                    pending = await self.pending()
                log.warning(
                    "audit events not delivered yet; will retry",
                    extra={"pending": pending, "retry_seconds": backoff, "error": type(exc).__name__},
                )
                started = time.monotonic()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)
                # New events do not cut a backoff short by more than half: auth_svc is given time to recover.
                await asyncio.sleep(max(0.0, backoff / 2 - (time.monotonic() - started)))
                backoff = min(backoff * 2, self._max_backoff)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, *, final_flush_timeout: float = 2.0) -> None:
        """Stop the background task after one last delivery attempt (what fails stays in the table for next time)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._write_held()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush_once(), timeout=final_flush_timeout)
