"""Group commit of small files: concurrent single-call uploads share one transaction.

Each small file's blob is durable before it is submitted here (storage_svc/usecases/uploads.py). What is left is
the metadata: the folder check, the quota charge, the file, its version, the COMPLETED upload and the audit event.
One at a time that is a transaction of ~8 statements per file, and each statement is a trip to the database's
thread or socket; under 16 concurrent clients those trips, not the disk, set the pace. Here the files waiting
when a transaction starts go into it together ("commit whoever is waiting", leader/follower): one SELECT for
their folders, one UPDATE for their owners' quotas, one multi-row INSERT per table, one COMMIT (one WAL flush on
PostgreSQL) for all: six statements for up to MAX_BATCH files.

A lone client waits for nobody: the batch starts as soon as its file arrives (one event-loop turn later). Anything
a batch cannot settle for every file in it (a name taken, a quota exceeded, a folder reached through a share or
not there, the caller's first upload with no root folder yet) rolls the batch back and commits each file on its own,
so each caller gets exactly the answer it would have had alone. Nothing is acknowledged before the commit that
holds its rows: a crash loses only files whose callers got no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flowdock_kernel.groupcommit import GroupCommit
from storage_svc.domain import Kind, Node, OnConflict, Upload, Version
from storage_svc.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("flowdock.storage")

MAX_BATCH = 64  # files per transaction: bounds the statement size and how long one transaction holds the writer


@dataclass(frozen=True, kw_only=True)
class SmallFile:
    """A single-call upload whose blob is durable, waiting for its metadata: a new file under policy FAIL, no
    file-drop link."""

    caller: str
    parent_id: str
    name: str
    size: int
    sha256: str
    content_type: str
    upload_id: str


class NotTogether(Exception):
    """The batch cannot settle every file in it: each goes on its own."""


@dataclass(kw_only=True)
class SmallFileCommits:
    """The group commit of new small files (see the module docstring).

    `alone` commits one file the ordinary way (raising that file's precise refusal); `make` builds a file's rows
    in a folder; `record` adds its audit event to a unit of work."""

    uow: UnitOfWorkFactory
    default_quota_bytes: int
    alone: Callable[[SmallFile], Awaitable[tuple[Upload, Node]]]
    make: Callable[[SmallFile, Node], tuple[Upload, Node, Version]]
    record: Callable[[UnitOfWork, SmallFile, Node], None]
    max_batch: int = MAX_BATCH
    _group: GroupCommit[SmallFile, tuple[Upload, Node]] | None = None

    def submit(self, item: SmallFile) -> asyncio.Future[tuple[Upload, Node]]:
        if self._group is None:
            self._group = GroupCommit(self._batch, self.max_batch)
        return self._group.submit(item)

    async def _batch(self, items: list[SmallFile]) -> list[tuple[Upload, Node] | BaseException]:
        if len(items) > 1:
            with contextlib.suppress(NotTogether):
                return list(await self._together(items))
        outcomes: list[tuple[Upload, Node] | BaseException] = []
        for item in items:
            try:
                outcomes.append(await self.alone(item))
            except Exception as exc:  # that caller's answer
                outcomes.append(exc)
        return outcomes

    async def _together(self, items: list[SmallFile]) -> list[tuple[Upload, Node]]:
        try:
            async with self.uow() as uow:
                rows: list[tuple[Upload, Node, Version]] = []
                charges: dict[str, int] = {}
                folders = await _own_folders(uow, items)
                for item in items:
                    folder = folders[item.caller, item.parent_id]
                    rows.append(self.make(item, folder))
                    charges[folder.owner_id] = charges.get(folder.owner_id, 0) + item.size
                if not await uow.quotas.consume_many(charges, self.default_quota_bytes):
                    raise NotTogether
                await uow.nodes.add_files([(node, version) for _, node, version in rows])
                await uow.uploads.add_many([upload for upload, _, _ in rows])
                for item, (_, node, _) in zip(items, rows, strict=True):
                    self.record(uow, item, node)
                await uow.commit()
        except NotTogether:
            raise
        except Exception as exc:
            # A name taken (in the folder or twice in this batch) and the like: each file's own transaction says
            # which and why. A database that is down says so again there.
            log.debug("small-file batch of %d goes one by one: %s", len(items), exc)
            raise NotTogether from exc
        return [(upload, node) for upload, node, _ in rows]


async def _own_folders(uow: UnitOfWork, items: list[SmallFile]) -> dict[tuple[str, str], Node]:
    """(caller, parent id) → the folder, in one statement, if every caller owns theirs and it is live (anything
    else: a share, a file, missing, no root yet, is answered by the one-file path)."""
    roots = sorted({i.caller for i in items if i.parent_id in ("", "root")})
    ids = sorted({i.parent_id for i in items if i.parent_id not in ("", "root") and len(i.parent_id) <= 64})
    found = await uow.nodes.folders(roots, ids)
    by_root = {n.owner_id: n for n in found if n.parent_id is None}
    by_id = {n.id: n for n in found}
    folders: dict[tuple[str, str], Node] = {}
    for item in items:
        folder = by_root.get(item.caller) if item.parent_id in ("", "root") else by_id.get(item.parent_id)
        if folder is None or folder.owner_id != item.caller or folder.kind != Kind.FOLDER:
            raise NotTogether
        folders[item.caller, item.parent_id] = folder
    return folders


def batchable(link_parent: Node | None, on_conflict: OnConflict) -> bool:
    """Files a batch can take: new names under policy FAIL (the unique index answers), no file-drop link."""
    return link_parent is None and on_conflict == OnConflict.FAIL


__all__ = ["SmallFile", "SmallFileCommits", "batchable"]
