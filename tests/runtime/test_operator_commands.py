"""Operator commands read configuration and the data folder only: they neither ask clamd nor bind a port, so they
run beside a live system (whose ports are taken) and on a machine where clamd hangs or is missing.

Every process of a command (the `flowdock` process and the service module it runs) gets an audit hook through a
`sitecustomize` on PYTHONPATH that logs each `socket.bind` and `socket.connect`; the log must stay empty. clamd's
address is a listener that accepts nothing and never answers, with a long wait configured: asking it would show up
in the log, leave a connection in its backlog and outlast the timeout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage_svc.keyring import Keyring

HOOK = """
import os, sys

def _log_sockets(event, args):
    if event in ("socket.bind", "socket.connect"):
        with open(os.environ["FLOWDOCK_TEST_SOCKET_LOG"], "a") as log:
            log.write(f"{sys.argv} {event} {args[1]!r}\\n")

sys.addaudithook(_log_sockets)
"""


@pytest.fixture
def silent_clamd() -> Iterator[socket.socket]:
    """A TCP listener that never accepts: clamd as it looks while hung."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


@pytest.fixture
def hooked_env(tmp_path: Path, silent_clamd: socket.socket) -> dict[str, str]:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    host, port = silent_clamd.getsockname()
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook_dir), os.environ.get("PYTHONPATH", "")])),
        "FLOWDOCK_TEST_SOCKET_LOG": str(tmp_path / "sockets.log"),
        "FLOWDOCK_STORAGE_VIRUS_SCAN": "clamd",
        "FLOWDOCK_STORAGE_CLAMD_ADDRESS": f"{host}:{port}",
        "FLOWDOCK_STORAGE_CLAMD_WAIT_SECONDS": "600",
        "FLOWDOCK_DB_URL": "",
    }


def flowdock(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowdock_runtime", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def socket_log(env: dict[str, str]) -> str:
    path = Path(env["FLOWDOCK_TEST_SOCKET_LOG"])
    return path.read_text() if path.exists() else ""


def test_the_hook_sees_a_bind(hooked_env: dict[str, str]) -> None:
    """Without this, an empty log below could mean the hook never ran."""
    code = "import socket; socket.socket().bind(('127.0.0.1', 0))"
    subprocess.run([sys.executable, "-c", code], env=hooked_env, check=True, timeout=30)
    assert "socket.bind ('127.0.0.1', 0)" in socket_log(hooked_env)


def test_keys_status_neither_asks_clamd_nor_binds_a_port(
    tmp_path: Path, hooked_env: dict[str, str], silent_clamd: socket.socket
) -> None:
    data = tmp_path / "data"
    ring = Keyring(data / "storage" / "keyring.json")

    result = flowdock(hooked_env, "keys", "status", "--data-dir", str(data))

    assert result.returncode == 0, result.stderr
    assert f"current: {ring.current_id}" in result.stdout
    assert socket_log(hooked_env) == ""
    with pytest.raises(BlockingIOError):
        silent_clamd.accept()  # nobody knocked


def test_migrate_fsck_and_scrub_neither_ask_clamd_nor_bind_a_port(
    tmp_path: Path, hooked_env: dict[str, str], silent_clamd: socket.socket
) -> None:
    data = str(tmp_path / "data")

    migrated = flowdock(hooked_env, "migrate", "--data-dir", data)
    checked = flowdock(hooked_env, "fsck", "--data-dir", data)
    scrubbed = flowdock(hooked_env, "scrub", "--all", "--no-progress", "--data-dir", data)

    assert migrated.returncode == 0, migrated.stderr
    assert "storage_svc: database up to date" in migrated.stdout
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert scrubbed.returncode == 0 and "verified 0 blobs" in scrubbed.stdout, scrubbed.stdout + scrubbed.stderr
    assert socket_log(hooked_env) == ""
    with pytest.raises(BlockingIOError):
        silent_clamd.accept()
