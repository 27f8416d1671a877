"""A real clamd (Debian's clamav-daemon) for tests, with a signature database generated from the test data.

No downloaded signatures: freshclam cannot reach the internet here, and the suite must not depend on it. The
database holds exactly what the tests need (see `/work/shared/notes/clamav-offline.md`):

- `flowdock-test.ndb`: a body signature for the 68-byte EICAR test string (built in code below);
- `flowdock-test.hdb`: the md5:size of `clam.exe` from Debian's clamav-testfiles, when that package is installed.
  clamd also finds it inside the archives of that package (clam.zip, clam.7z, ...), because it hashes the
  unpacked members.

Use from any test module (the plugin is registered once, so the session has one clamd whoever asks):

    pytest_plugins = ["tests.support.clamd"]

    async def test_x(clamd: ClamdServer) -> None:        # running, whatever an earlier test did to it
        ...ClamdScanner(clamd.address, stream_max_bytes=clamd.stream_max_bytes)...

`clamd_server` is the session-scoped server itself (`.stop()` / `.start()` simulate clamd going down; the
`clamd` fixture restarts it for the next test). Without the clamd binary the fixtures skip, or fail when
FLOWDOCK_REQUIRE_SERVERS=1. Outside pytest: `with running_clamd(workdir) as server: ...`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLAMD_BINARY = os.environ.get("FLOWDOCK_CLAMD", "/usr/sbin/clamd")
TESTFILES = Path("/usr/share/clamav-testfiles")
REQUIRE_SERVERS = os.environ.get("FLOWDOCK_REQUIRE_SERVERS") == "1"

MiB = 1024 * 1024
#: clamd's StreamMaxLength in the harness: above the 20 MiB the suite streams, small enough that going over it
#: costs a fraction of a second.
DEFAULT_STREAM_MAX_BYTES = 24 * MiB
#: MaxScanSize = MaxFileSize = this many times StreamMaxLength. Headroom: clamd counts bytes it extracts (archive
#: members, files it finds embedded — random data sometimes looks like one) against MaxScanSize, so with no
#: headroom an ordinary file near the stream limit may come back "Heuristics.Limits.Exceeded.MaxScanSize".
#: MaxFileSize must not be below MaxScanSize: an archive member larger than MaxFileSize is skipped and the
#: archive still answers OK (no alert, AlertExceedsMax or not); one crossing MaxScanSize raises the alert.
SCAN_HEADROOM = 4

# The EICAR anti-virus test file, assembled so that this source file is not itself flagged by a scanner.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS" + b"-TEST-FILE!$H+H*"
assert len(EICAR) == 68

EICAR_SIGNATURE = "FlowDock.Test.EICAR"
CLAM_EXE_SIGNATURE = "FlowDock.Test.ClamExe"
CLAM_EXE = TESTFILES / "clam.exe"


def clamd_missing() -> str | None:
    """None if the clamd binary is installed, else why not."""
    if os.access(CLAMD_BINARY, os.X_OK):
        return None
    return f"{CLAMD_BINARY} not found (apt-get install -y clamav-daemon clamav-testfiles)"


def need_clamd() -> None:
    problem = clamd_missing()
    if problem:
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(problem)


def write_signatures(db_dir: Path) -> dict[str, str]:
    """The signature database of the harness; returns {signature name: what it detects}."""
    db_dir.mkdir(parents=True, exist_ok=True)
    names = {EICAR_SIGNATURE: "the EICAR test string"}
    (db_dir / "flowdock-test.ndb").write_text(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
    if CLAM_EXE.is_file():
        data = CLAM_EXE.read_bytes()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        (db_dir / "flowdock-test.hdb").write_text(f"{md5}:{len(data)}:{CLAM_EXE_SIGNATURE}\n")
        names[CLAM_EXE_SIGNATURE] = str(CLAM_EXE)
    return names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: clamd gets SIGTERM if the test process dies without stopping it (no orphans even on SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ClamdServer:
    """One clamd process with its own config, database, sockets and logs in `workdir`."""

    def __init__(self, workdir: Path, stream_max_bytes: int = DEFAULT_STREAM_MAX_BYTES) -> None:
        self.workdir = workdir
        self.stream_max_bytes = stream_max_bytes  # StreamMaxLength
        self.max_scan_bytes = SCAN_HEADROOM * stream_max_bytes  # MaxScanSize and MaxFileSize
        self.port = _free_port()
        self.host = "127.0.0.1"
        sock_dir = workdir
        if len(str(workdir / "clamd.sock")) > 100:  # sun_path is 108 bytes
            sock_dir = Path(tempfile.mkdtemp(prefix="fdclamd-"))
        self.unix_socket = str(sock_dir / "clamd.sock")
        self.config_file = workdir / "clamd.conf"
        self.log_file = workdir / "clamd.log"
        self.signatures = write_signatures(workdir / "db")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0  # of the last start(): process start until PING answers PONG
        (workdir / "tmp").mkdir(exist_ok=True)
        self.config_file.write_text(
            "\n".join(
                [
                    "Foreground yes",
                    f"DatabaseDirectory {workdir / 'db'}",
                    f"TemporaryDirectory {workdir / 'tmp'}",
                    f"PidFile {workdir / 'clamd.pid'}",
                    f"LogFile {self.log_file}",
                    "LogTime yes",
                    f"LocalSocket {self.unix_socket}",
                    f"TCPSocket {self.port}",
                    f"TCPAddr {self.host}",
                    f"StreamMaxLength {stream_max_bytes}",
                    f"MaxFileSize {self.max_scan_bytes}",
                    f"MaxScanSize {self.max_scan_bytes}",
                    "MaxRecursion 16",
                    "MaxFiles 10000",
                    "ScanArchive yes",
                    "AlertExceedsMax yes",
                    "SelfCheck 0",
                    "",
                ]
            )
        )

    @property
    def address(self) -> str:
        """`host:port` of the TCP socket (what FLOWDOCK_STORAGE_CLAMD_ADDRESS would hold)."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of clamd's output (in the foreground it prints its log there too, and config errors)."""
        out = self.workdir / "clamd.out"
        return "\n".join(out.read_text(errors="replace").splitlines()[-lines:]) if out.exists() else ""

    def ping(self, timeout: float = 2.0) -> bool:
        """PING -> PONG on the TCP socket (synchronous; for the harness itself)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as s:
                s.sendall(b"zPING\0")
                return s.recv(64).rstrip(b"\0\n") == b"PONG"
        except OSError:
            return False

    def start(self, timeout: float = 60.0) -> None:
        """Start clamd (no-op if running) and wait until it answers PING on TCP and on the unix socket."""
        if self.running:
            return
        began = time.monotonic()
        with (self.workdir / "clamd.out").open("ab") as out:
            self.proc = subprocess.Popen(
                [CLAMD_BINARY, f"--config-file={self.config_file}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # only prctl between fork and exec: no locks taken
            )
        deadline = began + timeout
        while not (self.ping() and os.path.exists(self.unix_socket)):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"clamd exited with {code} while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"clamd did not answer PING within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - began

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; returns once the process is reaped and the port is closed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.unix_socket)

    def __repr__(self) -> str:
        return f"ClamdServer({self.address}, unix={self.unix_socket}, running={self.running})"


@contextlib.contextmanager
def running_clamd(workdir: Path, stream_max_bytes: int = DEFAULT_STREAM_MAX_BYTES) -> Iterator[ClamdServer]:
    """A started clamd for the duration of the block (scripts, benchmarks)."""
    server = ClamdServer(workdir, stream_max_bytes)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    """One clamd for the whole session; tests may stop()/start() it (use `clamd` to get it running)."""
    need_clamd()
    workdir = tmp_path_factory.mktemp("clamd")
    with running_clamd(workdir) as server:
        yield server
        pid_left = server.proc.pid if server.proc else None
    if pid_left is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid_left, 0)
            pytest.fail(f"clamd (pid {pid_left}) outlived its fixture")
    if server.unix_socket.startswith(tempfile.gettempdir() + "/fdclamd-"):
        shutil.rmtree(os.path.dirname(server.unix_socket), ignore_errors=True)


@pytest.fixture
def clamd(clamd_server: ClamdServer) -> ClamdServer:
    """The session's clamd, started again if an earlier test stopped it."""
    clamd_server.start()
    return clamd_server
