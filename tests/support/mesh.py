"""`flowdock up` for the suites: started exactly as a user would start it, on SQLite or PostgreSQL, and stopped
and cleaned up afterwards. One factory (`flowdock_up`); every suite's mesh fixture is a thin call to it.

Servers a fresh machine may lack (PostgreSQL, Redis) skip the tests needing them, unless
FLOWDOCK_REQUIRE_SERVERS=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["sqlite", "postgres"]

PG_URL = os.environ.get("FLOWDOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REQUIRE_SERVERS = os.environ.get("FLOWDOCK_REQUIRE_SERVERS") == "1"


def postgres_available() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(f"{PG_URL}/postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {PG_URL} is not reachable: {exc}"
    return None


def need_postgres() -> None:
    problem = postgres_available()
    if problem:
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(problem)


REDIS_URL = os.environ.get("FLOWDOCK_TEST_REDIS", "redis://127.0.0.1:6379/13")


def need_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if REQUIRE_SERVERS:
            pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc} (FLOWDOCK_REQUIRE_SERVERS=1)")
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")


def drop_databases(prefix: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A `flowdock up` process and what it printed into run/up.json."""

    proc: subprocess.Popen[str]
    url: str
    host_port: str
    admin_url: str
    data_dir: Path
    backend: str
    startup_seconds: float
    services: dict[str, str]
    db_url: str
    pids: dict[str, int]

    def service_db_url(self, service: str) -> str:
        """SQLAlchemy (sync) URL of one service's own database."""
        if self.db_url:
            return f"{self.db_url.replace('postgresql://', 'postgresql+psycopg://', 1)}_{service}"
        return f"sqlite:///{self.data_dir / f'{service}.db'}"

    def log(self, service: str) -> str:
        return (self.data_dir / "logs" / f"{service}.log").read_text(errors="replace")

    def mesh_credentials(self, identity: str = "gateway") -> Any:
        """Client credentials of a mesh identity, signed by this run's mesh CA (an identity no service has, such as
        "scanner", is issued on first use): services answer mutual TLS only."""
        import grpc

        from flowdock_kernel import mesh

        folder = self.data_dir / "mesh"
        if not mesh.cert_path(folder, identity).exists():
            mesh.issue(folder, identity)
        files = mesh.MeshTls.in_folder(folder, identity)
        return grpc.ssl_channel_credentials(
            files.ca_file.read_bytes(), files.key_file.read_bytes(), files.cert_file.read_bytes()
        )

    def _mesh_target(self, service: str) -> tuple[str, list[tuple[str, Any]]]:
        return self.services[service].split(",")[0], [("grpc.ssl_target_name_override", f"{service}_svc")]

    def channel(self, service: str, identity: str = "gateway", options: list[tuple[str, Any]] | None = None) -> Any:
        """A direct channel to a service (first replica), as `identity` (default: the gateway's)."""
        import grpc

        target, tls = self._mesh_target(service)
        return grpc.secure_channel(target, self.mesh_credentials(identity), options=[*tls, *(options or [])])

    def aio_channel(self, service: str, identity: str = "gateway", address: str = "") -> Any:
        """As `channel`, asyncio; `address` reaches the service another way (a proxy in front of it)."""
        import grpc

        target, tls = self._mesh_target(service)
        return grpc.aio.secure_channel(address or target, self.mesh_credentials(identity), options=tls)


# Every `flowdock up` the tests start is one client IP (127.0.0.1) registering and logging in many accounts that
# nobody verifies: these keep the shared suites independent of auth's per-IP limits and email verification.
# tests/auth/ starts its own mesh with the production defaults where it tests them.
TEST_AUTH_ENV = {
    "FLOWDOCK_AUTH_REQUIRE_VERIFIED_EMAIL": "false",
    "FLOWDOCK_AUTH_RATE_LOGIN_PER_IP": "100000",
    "FLOWDOCK_AUTH_RATE_REGISTER_PER_IP": "100000",
    "FLOWDOCK_AUTH_RATE_RECOVERY_PER_IP": "100000",
    "FLOWDOCK_AUTH_RATE_TOTP_PER_IP": "100000",
    "FLOWDOCK_AUTH_RATE_RESEND_PER_IP": "100000",
}


#: Virus scanning off: what every mesh not given clamd's address runs with (`_scan_env`); also for the commands a test
#: runs against such a mesh's data folder.
SCAN_OFF = {"FLOWDOCK_STORAGE_VIRUS_SCAN": "off"}


def _scan_env(extra_env: dict[str, str]) -> dict[str, str]:
    """Suites that give clamd's address scan; all others run with scanning explicitly off, as `flowdock up` stops
    when scanning is on and no clamd answers (tests/support/clamd.py starts a real one where scanning is tested)."""
    if "FLOWDOCK_STORAGE_CLAMD_ADDRESS" in extra_env:
        return {}
    return SCAN_OFF


def start_up(
    data_dir: Path,
    backend: str,
    db_url: str = "",
    extra_env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Running:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "flowdock_runtime",
        "up",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        *(args or []),
    ]
    if db_url:
        argv += ["--db", db_url]
    env = {**os.environ, **TEST_AUTH_ENV, **_scan_env(extra_env or {}), **(extra_env or {})}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    info_path = data_dir / "run" / "up.json"
    deadline = time.monotonic() + 120
    while not info_path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"flowdock up exited with {proc.returncode}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("flowdock up did not become ready in 120 s")
        time.sleep(0.1)
    info = json.loads(info_path.read_text())
    return Running(
        proc=proc,
        url=info["url"],
        host_port=info["url"].removeprefix("http://").removeprefix("https://"),
        admin_url=info["admin_url"],
        data_dir=data_dir,
        backend=backend,
        startup_seconds=info["startup_seconds"],
        services=info["services"],
        db_url=db_url,
        pids=info["pids"],
    )


def current_pids(running: Running) -> dict[str, int]:
    """The children's pids as `flowdock up` publishes them now (run/up.json: rewritten after each restart)."""
    try:
        return dict(json.loads((running.data_dir / "run" / "up.json").read_text())["pids"])
    except (OSError, ValueError, KeyError):
        return {}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_up(running: Running) -> tuple[int, str]:
    """SIGTERM `flowdock up` as Ctrl-C would; returns its exit code and stderr. Fails if a child outlives it (the
    children it runs now: a restarted one has a new pid)."""
    running.pids.update(current_pids(running))
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGTERM)
    try:
        _, err = running.proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        running.proc.kill()
        _, err = running.proc.communicate()
    orphans = {name: pid for name, pid in running.pids.items() if alive(pid)}
    assert not orphans, f"processes outlived flowdock up: {orphans}"
    return running.proc.returncode, err


@contextmanager
def flowdock_up(
    data_dir: Path,
    backend: str = "sqlite",
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    db_prefix: str = "fdtest",
    db_url: str = "",
) -> Iterator[Running]:
    """A running `flowdock up` on `backend` ("sqlite" or "postgres": a fresh database `<db_prefix>_<random>`,
    dropped afterwards; without PostgreSQL: skipped, or failed under FLOWDOCK_REQUIRE_SERVERS=1). `db_url`: a
    PostgreSQL server of the caller's own instead (tests/support/pgcluster.py), left as it is. On leaving:
    SIGTERM, no child may outlive it, and it must exit 0."""
    prefix = ""
    if db_url:
        backend = "postgres"
    elif backend == "postgres":
        need_postgres()
        prefix = f"{db_prefix}_{uuid.uuid4().hex[:8]}"
        db_url = f"{PG_URL}/{prefix}"
    elif backend != "sqlite":
        raise ValueError(f"unknown backend {backend!r}")
    running = start_up(data_dir, backend, db_url, extra_env=env, args=args)
    try:
        yield running
    finally:
        code, err = stop_up(running)
        if prefix:
            drop_databases(prefix)
        assert code == 0, f"flowdock up exited with {code} on SIGTERM:\n{err}"


def mesh_fixture(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    db_prefix: str = "fdtest",
) -> Iterator[Running]:
    """The body of a fixture parametrised with `params=BACKENDS`: `yield from mesh_fixture(request, ...)`."""
    backend = str(request.param)
    with flowdock_up(
        tmp_path_factory.mktemp(f"{name}-{backend}"), backend, env=env, args=args, db_prefix=db_prefix
    ) as running:
        yield running
