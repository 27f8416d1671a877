"""Recording audit events in auth_svc's trail from any service, without losing them while auth_svc is down.

How: `AuditOutbox.record()` first writes the event to a local SQLite file (`<data_dir>/outbox/audit-<service>.db`,
WAL, synchronous=FULL) and returns; a background task sends pending events in batches to
`AuthInternalService.RecordEvents` and deletes them only after auth_svc acknowledged them. If auth_svc is down,
unreachable or failing, the events stay on disk and are retried with backoff (0.5 s doubling to 30 s), also
across a restart of the recording service. Every event carries an id chosen when it was recorded, and auth_svc
stores each id once, so a batch re-sent after a lost acknowledgement (or sent by two replicas sharing a data
dir) is not duplicated. Order within the trail is by arrival; each event keeps the time it happened.

Use in a service's composition root:

    outbox = AuditOutbox(config.data_dir / "outbox" / "audit-storage.db", service="storage",
                         send=remote_audit_sender(auth_channel))
    outbox.start()                       # and `await outbox.stop()` on shutdown
    outbox.record("storage.file.deleted", actor_id=p.user_id, subject_id=p.user_id, details={"node_id": n})

Never put a secret (password, code, token, link password) in `details`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc

log = logging.getLogger("flowdock.audit")

Sender = Callable[[list[dict[str, Any]]], Awaitable[None]]


def remote_audit_sender(auth: grpc.aio.Channel, *, timeout: float = 5.0) -> Sender:
    """Deliver a batch to auth_svc (AuthInternalService.RecordEvents)."""
    stub = auth_pb2_grpc.AuthInternalServiceStub(auth)

    async def send(events: list[dict[str, Any]]) -> None:
        messages = []
        for e in events:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(datetime.fromisoformat(e["time"]))
            messages.append(
                auth_pb2.ActivityEvent(
                    id=e["id"],
                    time=ts,
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


class AuditOutbox:
    """A durable local queue of audit events, drained to auth_svc in the background (see the module doc)."""

    def __init__(
        self,
        path: Path,
        *,
        service: str,
        send: Sender,
        batch_size: int = 100,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        linger: float = 0.05,
    ) -> None:
        self.path = path
        self.service = service
        self._send = send
        self._batch = batch_size
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._linger = linger
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, event TEXT)"
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def record(
        self,
        kind: str,
        *,
        actor_id: str = "",
        subject_id: str = "",
        ip: str = "",
        user_agent: str = "",
        details: Mapping[str, str] | None = None,
    ) -> str:
        """Persist one event (durable when this returns) and return its id."""
        event_id = str(uuid.uuid4())
        event = {
            "id": event_id,
            "time": datetime.now(UTC).isoformat(),
            "kind": kind,
            "actor_id": actor_id,
            "subject_id": subject_id,
            "ip": ip,
            "user_agent": user_agent,
            "service": self.service,
            "details": {str(k): str(v) for k, v in (details or {}).items()},
        }
        with self._lock:
            self._db.execute("INSERT INTO pending (id, event) VALUES (?, ?)", (event_id, json.dumps(event)))
        with contextlib.suppress(RuntimeError):  # no running loop: the next start() picks it up
            asyncio.get_running_loop().call_soon_threadsafe(self._wake.set)
        return event_id

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])

    def _next_batch(self) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, event FROM pending ORDER BY seq LIMIT ?", (self._batch,)).fetchall()
        return [(int(seq), json.loads(text)) for seq, text in rows]

    def _forget(self, last_seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE seq <= ?", (last_seq,))

    async def flush_once(self) -> int:
        """Send what is pending now; returns how many were delivered. Raises if auth_svc did not take them."""
        sent = 0
        # Reading and deleting fsync the outbox: in a thread, so the service's event loop never waits on them.
        while batch := await asyncio.to_thread(self._next_batch):
            await self._send([e for _, e in batch])
            await asyncio.to_thread(self._forget, batch[-1][0])
            sent += len(batch)
            self.delivered += len(batch)
        return sent

    async def _run(self) -> None:
        backoff = self._min_backoff
        while True:
            try:
                # A short wait after a wake-up gathers a busy moment's events into one call (and one delete).
                await asyncio.sleep(self._linger)
                await self.flush_once()
                backoff = self._min_backoff
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "audit events not delivered yet; will retry",
                    extra={"pending": self.pending(), "retry_seconds": backoff, "error": type(exc).__name__},
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
        """Stop the background task after one last delivery attempt (what fails stays on disk for next time)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush_once(), timeout=final_flush_timeout)
        with self._lock:
            self._db.close()
