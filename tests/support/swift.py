"""A real OpenStack Swift (Debian's packages, with its s3api middleware) for tests: an all-in-one cluster of
memcached, a proxy, an account, a container and 1 or 3 object servers on free loopback ports under a temp dir.

What was verified on this machine and why the configs look as they do: /work/shared/notes/object-storage.md
(s3api needs slo after it and auth between it and the proxy; error_suppression_interval = 0 so one refused
write does not lock the store out for a minute; memcached for tempauth, with 32 connections from the proxy, not 2:
under bench/load_bench.py's load two were busy past the 1 s pool timeout, ten such timeouts error-limit memcached
for a minute, and tempauth's /auth/v1.0 then answers 503; Debian's /usr/bin/python3 for swift).

Use from any test module (registered once, so the session has one cluster of each kind whoever asks):

    pytest_plugins = ["tests.support.swift"]

    def test_x(swift: SwiftCluster) -> None:         # 1 replica: the normal suites
        settings = swift.s3_settings(swift.new_bucket())
    def test_y(swift3: SwiftCluster) -> None:        # 3 object servers, 3 replicas: stop one with .stop_object(i)

Without Swift installed the fixtures skip, or fail when FLOWDOCK_REQUIRE_SERVERS=1. The processes are stopped
at session end by their own PIDs (SIGTERM, then SIGKILL); never by name: other sessions run Swift here too.
Outside pytest: `with running_swift(workdir, replicas=3) as cluster: ...` (bench scripts). On a simulated host
(tests/support/netns.py): `running_swift(workdir, host=h.address, prefix=["ip", "netns", "exec", h.netns],
around=h.entered)` binds every server to that address, starts them on that host, and makes this side's own calls
(health, buckets) from it.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import os
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SWIFT_BIN = Path(os.environ.get("FLOWDOCK_SWIFT_BIN", "/usr/bin"))
SWIFT_PYTHON = "/usr/bin/python3"  # swift imports only from Debian's python (not from a venv)
MEMCACHED = os.environ.get("FLOWDOCK_MEMCACHED", "/usr/bin/memcached")
REQUIRE_SERVERS = os.environ.get("FLOWDOCK_REQUIRE_SERVERS") == "1"
START_TIMEOUT = float(os.environ.get("FLOWDOCK_SWIFT_START_SECONDS", "60"))  # ~2 s on a calm machine
ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"

# s3api needs slo after it (else multipart is silently off) and auth between itself and the proxy.
PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo "
    "versioned_writes symlink proxy-logging proxy-server"
)
INSTALL = (
    "apt-get install -y --no-install-recommends swift swift-proxy swift-object swift-container swift-account memcached"
)


def swift_missing() -> str | None:
    for path in (SWIFT_BIN / "swift-proxy-server", SWIFT_BIN / "swift-object-server", Path(MEMCACHED)):
        if not os.access(path, os.X_OK):
            return f"{path} not found ({INSTALL})"
    return None


def need_swift() -> None:
    problem = swift_missing()
    if problem:
        if REQUIRE_SERVERS:
            pytest.fail(f"{problem} (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping)")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if the test process dies without stopping it."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_RINGS = """
import sys
from swift.common.ring import RingBuilder
etc, ip, spec = sys.argv[1], sys.argv[2], sys.argv[3:]
for item in spec:
    kind, replicas, devs = item.split(":", 2)
    b = RingBuilder(8, int(replicas), 1)
    for i, dev in enumerate(devs.split(",")):
        port, name = dev.split("/")
        b.add_dev({"id": i, "region": 1, "zone": i + 1, "ip": ip, "port": int(port), "device": name,
                   "weight": 100})
    b.rebalance()
    b.save(f"{etc}/{kind}.builder")
    b.get_ring().save(f"{etc}/{kind}.ring.gz")
"""


@dataclass
class SwiftCluster:
    """One Swift all-in-one under `root`: `endpoint` speaks S3 (path style) with ACCESS_KEY / SECRET_KEY."""

    root: Path
    replicas: int = 1
    proxy_port: int = field(default_factory=_free_port)
    account_port: int = field(default_factory=_free_port)
    container_port: int = field(default_factory=_free_port)
    memcached_port: int = field(default_factory=_free_port)
    object_ports: list[int] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    start_seconds: float = 0.0
    #: The address every server binds to; what the servers' argv is run under (another host); what this process
    #: enters for its own calls to them.
    host: str = "127.0.0.1"
    prefix: list[str] = field(default_factory=list)
    around: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext

    def __post_init__(self) -> None:
        if not self.object_ports:
            self.object_ports = [_free_port() for _ in range(self.replicas)]

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.proxy_port}"

    def _conf(self, name: str, port: int, devices: Path, app: str, extra: str = "") -> Path:
        path = self.etc / f"{name}.conf"
        path.write_text(
            textwrap.dedent(
                f"""\
                [DEFAULT]
                bind_ip = {self.host}
                bind_port = {port}
                workers = 0
                user = {getpass.getuser()}
                swift_dir = {self.etc}
                devices = {devices}
                mount_check = false
                recon_cache_path = {self.root / "cache"}
                log_name = {name}
                [pipeline:main]
                pipeline = healthcheck {app}-server
                [app:{app}-server]
                use = egg:swift#{app}
                [filter:healthcheck]
                use = egg:swift#healthcheck
                [{app}-replicator]
                """
            )
            + extra
        )
        return path

    def write_configs(self) -> None:
        for sub in ("etc", "cache", "log", "srv"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.etc / "swift.conf").write_text(
            "[swift-hash]\nswift_hash_path_suffix = flowdock-test-suffix\nswift_hash_path_prefix = flowdock-test\n"
            "[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
        )
        (self.root / "srv" / "ac" / "a1").mkdir(parents=True, exist_ok=True)
        self._conf("account-server", self.account_port, self.root / "srv" / "ac", "account")
        self._conf("container-server", self.container_port, self.root / "srv" / "ac", "container")
        for i, port in enumerate(self.object_ports):
            devices = self.root / "srv" / f"o{i + 1}"
            (devices / f"d{i + 1}").mkdir(parents=True, exist_ok=True)
            self._conf(f"object-server-{i + 1}", port, devices, "object", "sync_method = ssync\n")
        (self.etc / "proxy-server.conf").write_text(
            textwrap.dedent(
                f"""\
                [DEFAULT]
                bind_ip = {self.host}
                bind_port = {self.proxy_port}
                workers = 0
                user = {getpass.getuser()}
                swift_dir = {self.etc}
                log_name = proxy-server
                [pipeline:main]
                pipeline = {PIPELINE}
                [app:proxy-server]
                use = egg:swift#proxy
                account_autocreate = true
                allow_account_management = true
                error_suppression_interval = 0
                conn_timeout = 0.5
                node_timeout = 5
                [filter:s3api]
                use = egg:swift#s3api
                location = {REGION}
                [filter:tempauth]
                use = egg:swift#tempauth
                user_test_tester = {SECRET_KEY} .admin
                [filter:cache]
                use = egg:swift#memcache
                memcache_servers = {self.host}:{self.memcached_port}
                memcache_max_connections = 32
                [filter:versioned_writes]
                use = egg:swift#versioned_writes
                allow_object_versioning = true
                [filter:symlink]
                use = egg:swift#symlink
                [filter:catch_errors]
                use = egg:swift#catch_errors
                [filter:gatekeeper]
                use = egg:swift#gatekeeper
                [filter:healthcheck]
                use = egg:swift#healthcheck
                [filter:proxy-logging]
                use = egg:swift#proxy_logging
                [filter:listing_formats]
                use = egg:swift#listing_formats
                [filter:copy]
                use = egg:swift#copy
                [filter:slo]
                use = egg:swift#slo
                [filter:dlo]
                use = egg:swift#dlo
                """
            )
        )
        objects = ",".join(f"{port}/d{i + 1}" for i, port in enumerate(self.object_ports))
        subprocess.run(
            [
                SWIFT_PYTHON,
                "-c",
                _RINGS,
                str(self.etc),
                self.host,
                f"account:1:{self.account_port}/a1",
                f"container:1:{self.container_port}/a1",
                f"object:{self.replicas}:{objects}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.root / "log" / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [*self.prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def _server(self, name: str) -> None:
        binary = "swift-object-server" if name.startswith("object-server") else f"swift-{name}"
        self._spawn(name, [SWIFT_PYTHON, str(SWIFT_BIN / binary), str(self.etc / f"{name}.conf"), "-v"])

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def _healthy(self, port: int) -> bool:
        try:
            with self.around():
                return httpx.get(f"http://{self.host}:{port}/healthcheck", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ports: list[int], deadline: float) -> None:
        while not all(self._healthy(p) for p in ports):
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                why = f"exited: {', '.join(dead)}" if dead else f"not healthy within {START_TIMEOUT} s"
                raise RuntimeError(f"Swift did not start ({why}):\n{self.log_tail()}")
            time.sleep(0.05)

    def start(self) -> None:
        began = time.monotonic()
        self.write_configs()
        memcached = [MEMCACHED, "-l", self.host, "-p", str(self.memcached_port), "-U", "0", "-m", "64"]
        self._spawn("memcached", memcached + (["-u", "root"] if os.geteuid() == 0 else []))
        for name in ("account-server", "container-server", "proxy-server"):
            self._server(name)
        for i in range(len(self.object_ports)):
            self._server(f"object-server-{i + 1}")
        ports = [self.account_port, self.container_port, self.proxy_port, *self.object_ports]
        self._wait(ports, began + START_TIMEOUT)
        self.start_seconds = time.monotonic() - began

    def stop_object(self, i: int) -> None:
        """Stop object server `i` (0-based) as a failed machine would go: SIGKILL."""
        proc = self.procs.pop(f"object-server-{i + 1}", None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def start_object(self, i: int) -> None:
        if f"object-server-{i + 1}" not in self.procs:
            self._server(f"object-server-{i + 1}")
            self._wait([self.object_ports[i]], time.monotonic() + START_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM to every process of this cluster at once (its own PIDs), SIGKILL what is left after 10 s."""
        procs, self.procs = list(self.procs.values()), {}
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # -- client side --------------------------------------------------------------------------------------

    def _http(self, method: str, url: str, **kw: object) -> httpx.Response:
        with self.around():
            return httpx.request(method, url, **kw)  # type: ignore[arg-type]

    def _auth(self) -> tuple[str, str]:
        r = self._http(
            "GET",
            f"{self.endpoint}/auth/v1.0",
            headers={"X-Auth-User": ACCESS_KEY, "X-Auth-Key": SECRET_KEY},
            timeout=10,
        )
        r.raise_for_status()
        return r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]

    def new_bucket(self, name: str = "") -> str:
        """A new, empty bucket (a Swift container, which s3api shows as a bucket)."""
        name = name or f"fd-{uuid.uuid4().hex[:12]}"
        url, token = self._auth()
        r = self._http("PUT", f"{url}/{name}", headers={"X-Auth-Token": token}, timeout=10)
        r.raise_for_status()
        return name

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Names of the objects in a bucket (Swift's own API: what is there, whatever a client thinks)."""
        url, token = self._auth()
        r = self._http(
            "GET", f"{url}/{bucket}", params={"prefix": prefix, "format": "json"}, headers={"X-Auth-Token": token}
        )
        r.raise_for_status()
        return [o["name"] for o in r.json()]

    def object_bytes(self, bucket: str, name: str) -> bytes:
        url, token = self._auth()
        r = self._http("GET", f"{url}/{bucket}/{name}", headers={"X-Auth-Token": token}, timeout=30)
        r.raise_for_status()
        return r.content

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        url, token = self._auth()
        self._http(
            "PUT", f"{url}/{bucket}/{name}", content=data, headers={"X-Auth-Token": token}, timeout=30
        ).raise_for_status()

    def s3_env(self, bucket: str) -> dict[str, str]:
        """The FLOWDOCK_STORAGE_* settings of a storage_svc using this bucket."""
        return {
            "FLOWDOCK_STORAGE_BLOB_BACKEND": "s3",
            "FLOWDOCK_STORAGE_S3_ENDPOINT": self.endpoint,
            "FLOWDOCK_STORAGE_S3_REGION": REGION,
            "FLOWDOCK_STORAGE_S3_BUCKET": bucket,
            "FLOWDOCK_STORAGE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "FLOWDOCK_STORAGE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def s3_settings(self, bucket: str) -> object:
        from storage_svc.s3store import S3Settings

        return S3Settings(bucket, self.endpoint, REGION, ACCESS_KEY, SECRET_KEY)


@contextlib.contextmanager
def running_swift(
    root: Path,
    *,
    replicas: int = 1,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
    around: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> Iterator[SwiftCluster]:
    # A server that exits at start (a "free" port another process took meanwhile, seen once after a long run of
    # other suites) gets a second and third try on new ports in a fresh directory; the last failure is raised.
    for attempt in range(3):
        cluster = SwiftCluster(root / f"try{attempt}", replicas=replicas, host=host, prefix=list(prefix), around=around)
        try:
            cluster.start()
            break
        except RuntimeError:
            cluster.stop()
            if attempt == 2:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def swift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftCluster]:
    """One Swift with one replica for the session."""
    need_swift()
    with running_swift(tmp_path_factory.mktemp("swift")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def swift3_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftCluster]:
    need_swift()
    with running_swift(tmp_path_factory.mktemp("swift3"), replicas=3) as cluster:
        yield cluster


@pytest.fixture
def swift3(swift3_cluster: SwiftCluster) -> SwiftCluster:
    """The session's 3-replica Swift, every object server running again (a test may stop one)."""
    for i in range(swift3_cluster.replicas):
        swift3_cluster.start_object(i)
    return swift3_cluster
