"""Fixtures of the sharing suites: `flowdock up` (SQLite and PostgreSQL) mailing through a real SMTP server
(aiosmtpd), with small link-password limits so the throttling tests are quick."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mailbox import Mailbox, smtp_server
from tests.support.mesh import BACKENDS, Running, mesh_fixture

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
    with smtp_server() as box:
        yield box


@pytest.fixture(scope="session", params=BACKENDS)
def share_mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, share_mailbox: Mailbox
) -> Iterator[Running]:
    env = {
        **SHARE_TEST_ENV,
        "FLOWDOCK_AUTH_SMTP_HOST": "127.0.0.1",
        "FLOWDOCK_AUTH_SMTP_PORT": str(share_mailbox.port),
    }
    yield from mesh_fixture(request, tmp_path_factory, "share", env=env, db_prefix="fdshare")
