"""Upload outcomes and storage's sampled gauges on a real database (SQLite and PostgreSQL), in process: an outcome
is counted once its transaction commits (expired, completed, failed checksum), and the sampled gauges see open
uploads and accounts by quota use."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

from flowdock_kernel import metrics
from flowdock_kernel.clock import FakeClock
from storage_svc.adapters import sample_gauges
from storage_svc.domain import UploadState
from storage_svc.usecases import Housekeeping
from tests.storage.test_upload_writes import DATABASES, Stack, on_both


def outcome(name: str) -> float:
    return float(metrics.UPLOAD_OUTCOMES.labels(name)._value.get())


@DATABASES
def test_outcomes_are_counted_once_committed(tmp_path: Path, database: str) -> None:
    async def body(s: Stack) -> None:
        user = str(uuid.uuid4())
        data = b"counted\n" * 64
        before = {name: outcome(name) for name in metrics.UPLOAD_OUTCOME_VALUES}

        good = await s.uploads.create_upload(user, "", "good.txt", len(data), hashlib.sha256(data).hexdigest(), "")
        await s.uploads.write_chunk(user, good.id, 0, data)
        done, _ = await s.uploads.finish_upload(user, good.id)
        assert done.state == UploadState.COMPLETED
        bad = await s.uploads.create_upload(user, "", "bad.txt", len(data), hashlib.sha256(b"other").hexdigest(), "")
        await s.uploads.write_chunk(user, bad.id, 0, data)
        refused, _ = await s.uploads.finish_upload(user, bad.id)
        assert refused.state == UploadState.FAILED
        stale = await s.uploads.create_upload(user, "", "stale.txt", len(data), "", "")

        # What is open now, and the account's share of its (1 TiB) quota: under half.
        engine = s.uploads.events.engine  # type: ignore[attr-defined]  # the stack's Outbox
        await sample_gauges(engine, default_quota_bytes=1 << 40)
        assert metrics.UPLOADS_ACTIVE.labels("open")._value.get() == 1
        assert metrics.QUOTA_ACCOUNTS.labels("lt50")._value.get() == 1
        await sample_gauges(engine, default_quota_bytes=len(data) + 1)  # now the stored file fills 99 %
        assert metrics.QUOTA_ACCOUNTS.labels("lt50")._value.get() == 0
        assert metrics.QUOTA_ACCOUNTS.labels("full")._value.get() == 1  # used + the open upload's reservation

        later = FakeClock(stale.expires_at + timedelta(minutes=1))
        u = s.uploads
        keeper = Housekeeping(uow=u.uow, blobs=u.blobs, tree=u.tree, uploads=u, limits=u.limits, clock=later)
        assert (await keeper.run_once())["expired_uploads"] >= 1
        after = {name: outcome(name) - before[name] for name in metrics.UPLOAD_OUTCOME_VALUES}
        assert after == {"completed": 1, "failed_checksum": 1, "infected": 0, "refused": 0, "expired": 1}

        # A transaction that writes an outcome and does not commit counts nothing.
        again = await s.uploads.create_upload(user, "", "again.txt", len(data), "", "")
        async with u.uow() as uow:
            await uow.uploads.set_state(again.id, UploadState.COMPLETED)
        assert outcome("completed") - before["completed"] == 1

    on_both(body, tmp_path, database)
