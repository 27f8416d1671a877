"""Fixtures of the sharing suites: `flowdock up` (SQLite and PostgreSQL) mailing through a real SMTP server
(aiosmtpd), with small link-password limits so the throttling tests are quick."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.auth.support import Mailbox
from tests.conftest import PG_URL, Running, drop_databases, free_port, need_postgres, start_up, stop_up

MiB = 1024 * 1024

SHARE_TEST_ENV = {
    "FLOWDOCK_AUTH_SMTP_SECURITY": "none",
    "FLOWDOCK_SHARE_LINK_PASSWORD_FAILURES_PER_LINK": "5",
    "FLOWDOCK_SHARE_LINK_PASSWORD_FAILURES_PER_IP": "12",
    "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(64 * MiB),
    "FLOWDOCK_STORAGE_INLINE_FINISH_BYTES": str(MiB),
    # Small per-link drop limits (each test makes its own links; none drops more than 2 files or 300 KB).
    "FLOWDOCK_STORAGE_LINK_DROP_MAX_FILES": "3",
    "FLOWDOCK_STORAGE_LINK_DROP_MAX_BYTES": str(MiB),
}


@pytest.fixture(scope="session")
def share_mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def share_mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, share_mailbox: Mailbox
) -> Iterator[Running]:
    backend = request.param
    db_url = prefix = ""
    if backend == "postgres":
        need_postgres()
        prefix = f"fdshare_{uuid.uuid4().hex[:8]}"
        db_url = f"{PG_URL}/{prefix}"
    env = {
        **SHARE_TEST_ENV,
        "FLOWDOCK_AUTH_SMTP_HOST": "127.0.0.1",
        "FLOWDOCK_AUTH_SMTP_PORT": str(share_mailbox.port),
    }
    running = start_up(tmp_path_factory.mktemp(f"share-{backend}"), backend, db_url, extra_env=env)
    try:
        yield running
    finally:
        code, err = stop_up(running)
        if prefix:
            drop_databases(prefix)
        assert code == 0, f"flowdock up exited with {code} on SIGTERM:\n{err}"
