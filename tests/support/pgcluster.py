"""A private PostgreSQL cluster for tests that restart or kill the database server (issue 18's fault suite).

The machine's shared PostgreSQL (127.0.0.1:5432) serves every other suite and session, so it is never restarted:
a test that needs to do that gets a cluster of its own, made with Debian's `initdb` in a temporary folder, on a free
port, run as the `postgres` OS user (PostgreSQL refuses to run as root), and removed afterwards.

    with private_postgres() as pg:      # skips without root or PostgreSQL's binaries (fails under REQUIRE_SERVERS)
        url = pg.url                    # postgresql://postgres@127.0.0.1:<port> (trust)
        pg.restart_fast()               # pg_ctl restart -m fast
        pg.kill_postmaster()            # kill -9 of the postmaster; `start()` brings it back (crash recovery)

    # On a simulated host (tests/support/netns.py), open to the other hosts of its LAN:
    with private_postgres(host=h.address, prefix=["ip", "netns", "exec", h.netns], trust=["10.213.0.0/24"]):
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.mesh import REQUIRE_SERVERS, alive, free_port


def _pg_bin() -> Path:
    """Debian's server binaries (the newest installed major version), or FLOWDOCK_PG_BIN."""
    if os.environ.get("FLOWDOCK_PG_BIN"):
        return Path(os.environ["FLOWDOCK_PG_BIN"])
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.parts[-3].isdigit()]
    found = sorted(versions, key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
OS_USER = "postgres"


def missing() -> str | None:
    """None if a private cluster can be made here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"{PG_BIN}/initdb not found (apt-get install -y postgresql)"
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster is started as the postgres OS user, which needs root (runuser)"
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return f"no {OS_USER} OS user"
    return None


class PrivatePostgres:
    """One cluster: its data folder, socket folder and log in a temporary folder the postgres user owns."""

    def __init__(self, host: str = "127.0.0.1", prefix: Sequence[str] = (), trust: Sequence[str] = ()) -> None:
        """`host`: the address it listens on; `prefix`: what its commands run under (another network namespace);
        `trust`: networks (CIDR) whose clients it lets in without a password, besides this machine's own."""
        # Not under pytest's tmp_path: its folders are root's with mode 0700, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="fdpg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.host = host
        self.prefix = list(prefix)
        self.trust = list(trust)
        self.url = f"postgresql://postgres@{host}:{self.port}"
        user = pwd.getpwnam(OS_USER)
        os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, "runuser", "-u", OS_USER, "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c shared_buffers=32MB "
            "-c max_connections=200"
        )
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                         "-o", options, *args)  # fmt: skip

    def init(self) -> None:
        made = self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        if self.trust:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.writelines(f"host all all {net} trust\n" for net in self.trust)

    def start(self, timeout: float = 60) -> None:
        """Start it (after a kill -9 too: a start refused while the dead postmaster's backends still hold its
        shared memory is tried again until they have gone)."""
        deadline = time.monotonic() + timeout
        while True:
            started = self._pg_ctl("start")
            if started.returncode == 0:
                return
            assert time.monotonic() < deadline, started.stdout + started.stderr + self.log_tail()
            time.sleep(0.2)

    def restart_fast(self) -> None:
        """`pg_ctl restart -m fast`: sessions are ended (their transactions rolled back), then it starts again."""
        done = self._pg_ctl("-m", "fast", "restart")
        assert done.returncode == 0, done.stdout + done.stderr + self.log_tail()

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill_postmaster(self) -> None:
        """kill -9 of the postmaster, as a crash would end it; returns once it is gone (its backends follow)."""
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while alive(pid):
            assert time.monotonic() < deadline, f"the postmaster {pid} outlived SIGKILL"
            time.sleep(0.02)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", "immediate", "stop")

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def private_postgres(
    host: str = "127.0.0.1", prefix: Sequence[str] = (), trust: Sequence[str] = ()
) -> Iterator[PrivatePostgres]:
    """A running private cluster for the block (see PrivatePostgres for the arguments); stopped and deleted
    afterwards."""
    problem = missing()
    if problem:
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1: CI machines can, so this must run)")
        pytest.skip(problem)
    pg = PrivatePostgres(host, prefix, trust)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
