"""`flowdock doctor` against a running `flowdock up` with a real clamd and a real SMTP server (aiosmtpd): exit 0
when all is well; with each dependency down (clamd stopped, nothing at the SMTP address, no PostgreSQL, a database
behind the code's migrations) exit 1, naming the problem and its fix."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clamd import ClamdServer
from tests.support.mailbox import smtp_server
from tests.support.mesh import PG_URL, Running, drop_databases, flowdock_up, free_port, need_postgres

pytest_plugins = ["tests.support.clamd"]


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowdock_runtime", "doctor", "--min-free-gib", "0.01", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


@pytest.fixture(scope="module")
def installation(
    clamd_server: ClamdServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Running, dict[str, str]]]:
    """A running installation scanning with the session's clamd and mailing through a local SMTP server; the
    environment doctor needs to see the same configuration."""
    clamd_server.start()
    with smtp_server() as box:
        env = {
            "FLOWDOCK_STORAGE_VIRUS_SCAN": "clamd",
            "FLOWDOCK_STORAGE_CLAMD_ADDRESS": clamd_server.address,
            "FLOWDOCK_AUTH_SMTP_HOST": "127.0.0.1",
            "FLOWDOCK_AUTH_SMTP_PORT": str(box.port),
            "FLOWDOCK_AUTH_SMTP_SECURITY": "none",
        }
        with flowdock_up(tmp_path_factory.mktemp("doctor"), "sqlite", env=env) as mesh:
            yield mesh, {**env, "FLOWDOCK_DATA_DIR": str(mesh.data_dir)}


def test_all_is_well(installation: tuple[Running, dict[str, str]]) -> None:
    _, env = installation
    result = doctor(env)
    assert result.returncode == 0, result.stdout
    assert result.stdout.rstrip().endswith("all is well")
    for name in (
        "database auth",
        "database share",
        "database storage",
        "database dav",
        "blob store writable",
        "clamd",
        "smtp",
        "envoy",
        "service auth",
        "service share",
        "service storage",
        "service dav",
        "gateway",
    ):
        assert f"ok   {name}:" in result.stdout, name


def test_clamd_down(installation: tuple[Running, dict[str, str]], clamd: ClamdServer) -> None:
    _, env = installation
    clamd.stop()
    try:
        result = doctor(env)
    finally:
        clamd.start()
    assert result.returncode == 1
    assert f"FAIL clamd: no answer at {clamd.address}" in result.stdout
    assert "fix: start clamd" in result.stdout
    assert "1 problem(s): clamd" in result.stdout


def test_smtp_down(installation: tuple[Running, dict[str, str]]) -> None:
    _, env = installation
    result = doctor({**env, "FLOWDOCK_AUTH_SMTP_PORT": str(free_port())})
    assert result.returncode == 1
    assert "FAIL smtp:" in result.stdout and "fix: start the SMTP server" in result.stdout
    assert "1 problem(s): smtp" in result.stdout


def test_database_server_down(tmp_path: Path) -> None:
    result = doctor(
        {"FLOWDOCK_STORAGE_VIRUS_SCAN": "off"},
        "--data-dir",
        str(tmp_path),
        "--db",
        f"postgresql://postgres@127.0.0.1:{free_port()}/fd",
    )
    assert result.returncode == 1
    assert "FAIL database auth: cannot connect" in result.stdout
    assert "fix: start PostgreSQL" in result.stdout


def test_postgres_reachable_and_migrated_with_its_clock_compared(tmp_path: Path) -> None:
    need_postgres()
    prefix = f"fddoc_{uuid.uuid4().hex[:8]}"
    env = {
        "FLOWDOCK_STORAGE_VIRUS_SCAN": "off",
        "FLOWDOCK_DATA_DIR": str(tmp_path),
        "FLOWDOCK_DB_URL": f"{PG_URL}/{prefix}",
    }
    try:
        migrated = subprocess.run(
            [sys.executable, "-m", "flowdock_runtime", "migrate"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        result = doctor(env)
    finally:
        drop_databases(prefix)
    for name in ("auth", "share", "storage", "dav"):
        assert f"ok   database {name}: " in result.stdout and "migrated to the head" in result.stdout
    assert "ok   clock: this machine's clock is" in result.stdout
    assert "FAIL running: FlowDock is not running" in result.stdout and result.returncode == 1


def test_database_behind_the_code(tmp_path: Path) -> None:
    env = {"FLOWDOCK_STORAGE_VIRUS_SCAN": "off", "FLOWDOCK_DATA_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "flowdock_runtime", "migrate"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    with sqlite3.connect(tmp_path / "share.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    result = doctor(env)
    assert result.returncode == 1
    assert "FAIL database share: " in result.stdout and "is at revision 0001" in result.stdout
    assert "fix: run `flowdock migrate`" in result.stdout
    assert "ok   database auth:" in result.stdout
