"""Scrubbing: a background job that authenticates every segment of a configured share of the stored blobs per day,
so damage (a failing disk, a stray write) is found before a user meets it in a download.

- **Share per day.** Each round (every `storage_scrub_seconds`) the job is owed `blobs x fraction x elapsed / 1 day`
  more blobs (`credit`, kept in the database with the position, capped at one pass), and verifies the whole ones.
- **Never blocks users.** One blob at a time, read a unit (~1 MiB) per worker-thread call; after each unit the
  pacer sleeps for the bytes read at `storage_scrub_bytes_per_second`, and the job yields between blobs.
- **Survives restarts.** The position (the last blob id verified, in blob id order) is saved after every blob, in
  the transaction that records any damage found: a restarted or other replica continues from there.
- **Several replicas.** One lease (the `scrub_state` row) lets one replica scrub at a time; it is renewed while a
  large blob is read, released at the end of a round, taken over at once from a holder that provably died
  (flowdock_kernel.incarnation, as upload leases), and lapses after `LEASE` otherwise.
- **Damage** (a segment that does not authenticate, a blob that is missing or truncated): a `storage.damaged`
  audit event naming the file, version and blob, with the owner as subject (it shows in their activity), a
  `DATA_LOSS` log line with the same ids, and the damage counter (ScrubMonitor). A blob whose version was deleted
  meanwhile is not damage.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import DataLoss
from storage_svc.domain import ScrubState, StoredBlob
from storage_svc.ports import BlobStore, LeaseHolders, ScrubMonitor, UnitOfWorkFactory

log = logging.getLogger("flowdock.storage")

LEASE = timedelta(seconds=60)
_RENEW_SECONDS = 20.0  # a lease is renewed this often while one large blob is read
_BATCH = 100  # version rows read per query
DAY_SECONDS = 86400.0


@dataclass
class Pacer:
    """Spends the scrub's byte budget: after `n` bytes read it sleeps n / rate seconds (so the scrub reads at most
    `bytes_per_second` on average, whatever the disk could give). `paced_bytes` and `slept` are its accounting."""

    bytes_per_second: float
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    paced_bytes: int = 0
    slept: float = 0.0

    async def __call__(self, n: int) -> None:
        self.paced_bytes += n
        delay = n / self.bytes_per_second if self.bytes_per_second > 0 else 0.0
        self.slept += delay
        await self.sleep(delay)


@dataclass(frozen=True)
class Damage:
    blob: StoredBlob
    reason: str


@dataclass
class ScrubReport:
    """What a round or a pass did."""

    blobs: int = 0
    bytes: int = 0  # stored bytes read
    damaged: list[Damage] = field(default_factory=list)
    passes_completed: int = 0
    skipped: bool = False  # another replica holds the lease (or scrubbing is off)


class LeaseLost(Exception):
    """Another scrubber took the lease (this one was presumed dead): stop, it carries on from the saved position."""


@dataclass(kw_only=True)
class Scrubber:
    """The scrub of one storage replica (bootstrap: a background job) or of `flowdock scrub` (storage_svc.scrub)."""

    uow: UnitOfWorkFactory
    blobs: BlobStore
    clock: Clock
    holders: LeaseHolders
    monitor: ScrubMonitor
    fraction_per_day: float
    bytes_per_second: float
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    # -- the lease --------------------------------------------------------------------------------------------

    async def _claim(self, token: str) -> ScrubState | None:
        now = self.clock.now()
        async with self.uow() as uow:
            state = await uow.scrub.claim(token, now + LEASE, now)
            if state is None:
                current = await uow.scrub.state()
                if current.holder and self.holders.gone(current.holder):
                    state = await uow.scrub.take_over(current.holder, token, now + LEASE)
            if state is not None:
                await uow.commit()
            return state

    async def _save(self, token: str, state: ScrubState) -> None:
        async with self.uow() as uow:
            if not await uow.scrub.save(token, state, self.clock.now() + LEASE):
                raise LeaseLost()
            await uow.commit()

    async def _release(self, token: str) -> None:
        try:
            async with self.uow() as uow:
                await uow.scrub.release(token)
                await uow.commit()
        except Exception:  # it lapses by time (or is taken over once this process is gone)
            log.warning("scrub lease not released", exc_info=True)

    # -- rounds and passes ------------------------------------------------------------------------------------

    async def run_once(self) -> ScrubReport:
        """One round: add the share per day accrued since the last round to the credit, verify that many blobs
        from the saved position on (wrapping into a new pass at the end)."""
        if self.fraction_per_day <= 0:
            return ScrubReport(skipped=True)
        token = self.holders.token()
        state = await self._claim(token)
        if state is None:
            return ScrubReport(skipped=True)
        try:
            now = self.clock.now()
            async with self.uow(read_only=True) as uow:
                total = await uow.scrub.count()
            elapsed = 0.0 if state.ticked_at is None else max(0.0, (now - state.ticked_at).total_seconds())
            credit = min(state.credit + total * self.fraction_per_day * elapsed / DAY_SECONDS, float(total))
            state = replace(state, credit=credit, ticked_at=now)
            await self._save(token, state)
            return await self._walk(token, state, limit=math.floor(credit + 1e-9), spend_credit=True)
        except LeaseLost:
            log.warning("scrub lease taken over by another replica; it continues from the saved position")
            return ScrubReport()
        finally:
            await self._release(token)

    async def run_pass(
        self,
        *,
        from_start: bool = False,
        progress: Callable[[ScrubReport, int], None] | None = None,
        wait_seconds: float = 120.0,
    ) -> ScrubReport:
        """Verify up to the end of the current pass now (`from_start`: a whole new pass over every blob), at the
        configured budget. Waits up to `wait_seconds` for a replica's round to let the lease go.
        `progress(report so far, blobs this pass will verify)` after each blob."""
        token = self.holders.token()
        waited = 0.0
        while (state := await self._claim(token)) is None:
            if waited >= wait_seconds:
                raise TimeoutError("another scrub holds the lease (a storage replica or `flowdock scrub`)")
            await self.sleep(1.0)
            waited += 1.0
        try:
            if from_start or state.pass_started_at is None:
                state = replace(state, position="", pass_started_at=self.clock.now())
                await self._save(token, state)
            async with self.uow(read_only=True) as uow:
                todo = await uow.scrub.count(state.position)
            return await self._walk(token, state, limit=todo, spend_credit=False, progress=progress, stop_at_end=True)
        finally:
            await self._release(token)

    async def _walk(
        self,
        token: str,
        state: ScrubState,
        *,
        limit: int,
        spend_credit: bool,
        progress: Callable[[ScrubReport, int], None] | None = None,
        stop_at_end: bool = False,
    ) -> ScrubReport:
        report = ScrubReport()
        pacer = Pacer(self.bytes_per_second, self._pace_sleep(token, lambda: state))
        while True:
            room = _BATCH if stop_at_end else min(_BATCH, limit - report.blobs)
            async with self.uow(read_only=True) as uow:
                # With no room left, one row still tells whether the pass has ended (so it is marked complete now,
                # not when the next blob is owed).
                batch = await uow.scrub.blobs_after(state.position, max(1, room))
            if not batch:
                if state.position == "":
                    break  # nothing stored at all
                now = self.clock.now()
                state = replace(state, position="", pass_started_at=None, last_pass_at=now)
                await self._save(token, state)
                report.passes_completed += 1
                self.monitor.pass_completed(now)
                log.info("scrub pass complete", extra={"blobs": report.blobs, "damaged": len(report.damaged)})
                if stop_at_end or room <= 0:
                    break
                continue
            if room <= 0:
                break
            for blob in batch:
                if state.pass_started_at is None:
                    state = replace(state, pass_started_at=self.clock.now())
                damage = await self._verify(blob, pacer, report)
                if damage is not None:
                    report.damaged.append(damage)
                state = replace(
                    state,
                    position=blob.blob_id,
                    credit=max(0.0, state.credit - 1) if spend_credit else state.credit,
                )
                await self._record(token, state, damage)
                if progress is not None:
                    progress(report, limit)
                await asyncio.sleep(0)  # let the event loop serve users between blobs
        return report

    def _pace_sleep(self, token: str, current: Callable[[], ScrubState]) -> Callable[[float], Awaitable[None]]:
        """The pacer's sleep, renewing the lease while one blob takes long (its state as last saved)."""
        renewed = self.clock.monotonic()

        async def sleep(seconds: float) -> None:
            nonlocal renewed
            await self.sleep(seconds)
            if self.clock.monotonic() - renewed >= _RENEW_SECONDS:
                await self._save(token, current())
                renewed = self.clock.monotonic()

        return sleep

    async def _verify(self, blob: StoredBlob, pacer: Pacer, report: ScrubReport) -> Damage | None:
        before = pacer.paced_bytes
        try:
            await self.blobs.verify(blob.blob_id, pacer)
        except DataLoss as exc:
            async with self.uow(read_only=True) as uow:
                still = await uow.scrub.blob(blob.blob_id)
            if still is None:
                return None  # its version was deleted while it was read: nothing is lost
            return Damage(still, exc.message)
        finally:
            read = pacer.paced_bytes - before
            report.blobs += 1
            report.bytes += read
            self.monitor.verified(1, read)
        return None

    async def _record(self, token: str, state: ScrubState, damage: Damage | None) -> None:
        """Save the position; damage goes into the same transaction as an audit event, then the log and metric."""
        async with self.uow() as uow:
            if damage is not None:
                blob = damage.blob
                uow.events.record(
                    "storage.damaged",
                    actor="",
                    subject=blob.owner_id,
                    details={
                        "node_id": blob.node_id,
                        "name": blob.name,
                        "version_id": blob.version_id,
                        "blob_id": blob.blob_id,
                        "size": str(blob.size),
                        "reason": damage.reason,
                        "found_by": "scrub",
                    },
                )
            if not await uow.scrub.save(token, state, self.clock.now() + LEASE):
                raise LeaseLost()
            await uow.commit()
        if damage is not None:
            blob = damage.blob
            log.error(
                "DATA_LOSS: stored content is damaged (found by the scrub)",
                extra={
                    "code": "DATA_LOSS",
                    "file_id": blob.node_id,
                    "version_id": blob.version_id,
                    "blob_id": blob.blob_id,
                    "owner_id": blob.owner_id,
                    "reason": damage.reason,
                },
            )
            self.monitor.damaged()

    async def run(self, every: float) -> None:
        """`run_once` every `every` seconds until cancelled; a failed round is logged and the next one comes."""
        while True:
            try:
                done = await self.run_once()
                if done.blobs or done.damaged:
                    log.info(
                        "scrub round",
                        extra={"blobs": done.blobs, "bytes": done.bytes, "damaged": len(done.damaged)},
                    )
            except Exception:
                log.exception("scrub round failed")
            await asyncio.sleep(every)
