"""Housekeeping, a background job in each storage replica: expire abandoned uploads (releasing their
reservation), resume finishes whose worker died, purge trash older than the retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from flowdock_kernel.clock import Clock
from storage_svc.domain import UploadState
from storage_svc.ports import BlobStore, UnitOfWorkFactory
from storage_svc.usecases.common import Limits
from storage_svc.usecases.tree import Tree
from storage_svc.usecases.uploads import Uploads

log = logging.getLogger("flowdock.storage")


@dataclass(kw_only=True)
class Housekeeping:
    """The periodic clean-up each storage replica runs in the background (bootstrap: `background`)."""

    uow: UnitOfWorkFactory
    blobs: BlobStore
    tree: Tree
    uploads: Uploads
    limits: Limits
    clock: Clock

    async def run_once(self) -> dict[str, int]:
        """Expire stale uploads (releasing their quota), resume stalled finishes, purge old trash."""
        done = {"expired_uploads": 0, "resumed_finishes": 0, "purged_trash": 0}
        now = self.clock.now()
        # Finished uploads (every small file sent in one call leaves one) go in bulk; open ones one by one, each with
        # its reservation and staging bytes.
        async with self.uow() as uow:
            done["expired_uploads"] += await uow.uploads.delete_finished(now)
            await uow.commit()
        async with self.uow(read_only=True) as uow:
            expired = await uow.uploads.expired(now, 100)
        for upload in expired:
            async with self.uow() as uow:
                await uow.uploads.expire(upload.id)
                if upload.state == UploadState.OPEN:
                    await uow.quotas.settle(upload.owner_id, reserved=-upload.size, used=0)
                await uow.commit()
            with contextlib.suppress(Exception):
                await self.blobs.delete_staging(upload.id)
            done["expired_uploads"] += 1
        async with self.uow(read_only=True) as uow:
            stalled = await uow.uploads.stalled_finishing(now, 20)
            # Finishes whose finisher's process died (a crashed replica): taken over now, not when the lease lapses.
            held = await uow.uploads.held_finishing(now, 20)
        for upload in [*stalled, *(u for u in held if self.uploads.holders.gone(u.writer))]:
            if await self.uploads.resume_finish(upload):
                done["resumed_finishes"] += 1
        async with self.uow(read_only=True) as uow:
            old = await uow.nodes.trash_roots_older_than(now - self.limits.trash_retention, 100)
        for root in old:
            async with self.uow() as uow:
                await self.tree.purge(uow, root, "", reason="trash retention")
            done["purged_trash"] += 1
        return done

    async def run(self, every: float) -> None:
        """`run_once` every `every` seconds until cancelled; a failed round is logged and the next one comes."""
        while True:
            try:
                done = await self.run_once()
                if any(done.values()):
                    log.info("housekeeping", extra=done)
            except Exception:
                log.exception("housekeeping failed")
            await asyncio.sleep(every)
