"""What the benchmarks in bench/ share: the system under test (`flowdock up`, nginx, copyparty), CPU accounting per
process from /proc, native gRPC clients, the in-process references (the upload ceiling, the durable 1 KiB floor),
the environment block and the table format.

Imported as `bench._common` by storage_bench.py, paths_bench.py and browser_bench.py (each puts the repository root
on sys.path first), so one copy of each helper and of its module state (CACHES_DROPPED) exists per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402
from flowdock.storage.v1 import storage_pb2_grpc  # noqa: E402
from flowdock_runtime.supervisor import MALLOC_TUNABLES  # noqa: E402

MB = 1_000_000
MiB = 1024 * 1024
GiB = 1024 * MiB
BIG_MESSAGE = 64 * MiB
PASSWORD = "correct horse battery staple"
AUTH_ENV = {  # one client IP registering/logging in repeatedly, nobody verifying mail (as tests/conftest.py)
    "FLOWDOCK_AUTH_REQUIRE_VERIFIED_EMAIL": "false",
    "FLOWDOCK_AUTH_RATE_LOGIN_PER_IP": "1000000",
    "FLOWDOCK_AUTH_RATE_REGISTER_PER_IP": "1000000",
    "FLOWDOCK_AUTH_RATE_RECOVERY_PER_IP": "1000000",
    "FLOWDOCK_AUTH_RATE_TOTP_PER_IP": "1000000",
    "FLOWDOCK_AUTH_RATE_RESEND_PER_IP": "1000000",
    "FLOWDOCK_LOG_LEVEL": "warning",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- small helpers -----------------------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def human_size(n: int) -> str:
    """1 GiB, 64 MiB, 1 KiB or bytes: labels of sizes the benches were given."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / ... of a process in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm") and rest.strip().endswith("kB"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[-1] if "envoy" in argv[0] else (text[0] if text else "?")


class CpuMeter:
    """CPU seconds spent by each side of a measurement: named processes, this process, its finished children."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        now["client"] = me.ru_utime + me.ru_stime
        now["curl"] = kids.ru_utime + kids.ru_stime
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        now["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # all CPUs busy (not idle, not iowait)
        return now

    def __enter__(self) -> CpuMeter:
        self.start = self._now()
        self.used: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.used = {k: round(end[k] - self.start[k], 3) for k in end}
        # whatever else ran on the machine meanwhile (other users' jobs): it competes for the same 2 cores
        self.used["other"] = round(max(0.0, self.used.pop("machine") - sum(self.used.values())), 3)


# -- the system under test ---------------------------------------------------------------------------------------


@dataclass
class Mesh:
    proc: subprocess.Popen[bytes]
    url: str
    host_port: str
    data_dir: Path
    pids: dict[str, int]
    stderr_path: Path
    db: str

    @classmethod
    def start(cls, data_dir: Path, stderr_path: Path, db: str, env_extra: dict[str, str] | None = None) -> Mesh:
        """`flowdock up --no-scan` with its defaults (no clamd runs here; it says so on stderr), the test suites'
        auth settings (AUTH_ENV) and `env_extra`."""
        port = free_port()
        argv = [sys.executable, "-m", "flowdock_runtime", "up", "--data-dir", str(data_dir), "--port", str(port)]
        argv.append("--no-scan")
        if db:
            argv += ["--db", db]
        env = {**os.environ, **AUTH_ENV, **(env_extra or {})}
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        info_path = data_dir / "run" / "up.json"
        deadline = time.monotonic() + 120
        while not info_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"flowdock up failed:\n{stderr_path.read_text(errors='replace')}")
            time.sleep(0.1)
        info = json.loads(info_path.read_text())
        url = info["url"]
        return cls(proc, url, url.removeprefix("http://"), data_dir, info["pids"], stderr_path, db)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def current_pids(self) -> dict[str, int]:
        """The pids `flowdock up` publishes now: it rewrites up.json when it restarts a crashed child, and a meter
        reading the pids of the start would charge a restarted Envoy's CPU to OTHER."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.pids = dict(json.loads((self.data_dir / "run" / "up.json").read_text())["pids"])
        return self.pids

    @property
    def restarts(self) -> list[str]:
        """The supervisor's "crashed; restarting" lines so far: a bench must say when its system was not steady."""
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return [line.strip() for line in text.splitlines() if line.startswith("flowdock: ") and " crashed (" in line]

    @property
    def envoy_pids(self) -> list[int]:
        return descendants(self.current_pids()["gateway"])

    def meter_pids(self, nginx: Nginx | None = None, copyparty: Copyparty | None = None) -> dict[str, list[int]]:
        """Processes whose CPU time CpuMeter reports: storage_svc, Envoy (+ its launcher), the rest of the mesh, and
        the reference servers given."""
        now = self.current_pids()
        pids = {
            "storage": [p for n, p in now.items() if n.startswith("storage")],
            "envoy": [now["gateway"], *self.envoy_pids],
            "mesh": [p for n, p in now.items() if n.startswith(("auth", "share"))] + [self.proc.pid],
        }
        if nginx is not None:
            pids["nginx"] = nginx.pids
        if copyparty is not None:
            pids["copyparty"] = copyparty.pids
        return pids

    def processes(self) -> str:
        """How many processes of each service `flowdock up` started (its --replicas; issue 15 asks to say)."""
        counts: dict[str, int] = {}
        for name in self.pids:
            service = name.split("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
            counts[service] = counts.get(service, 0) + 1
        return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))

    @property
    def virus_scanning(self) -> str:
        text = self.stderr_path.read_text(errors="replace")
        for line in text.splitlines():
            if "virus scanning is OFF" in line:
                return "OFF (flowdock up --no-scan: no clamd in the bench; FinishUpload does no scan pass)"
        return "ON (clamd answered)"


class Nginx:
    """Debian's nginx with a temp config: one worker, sendfile on, serving `root` on a free loopback port; under
    /put/ it takes WebDAV PUTs (into `root`/put), under /list/ it answers directory listings as JSON (autoindex)."""

    def __init__(self, base: Path, root: Path) -> None:
        self.port = free_port()
        prefix = base / "nginx"
        prefix.mkdir()
        user = "user root root;\n" if os.geteuid() == 0 else ""  # the data dir is 0700 root
        temps = "".join(
            f"  {k}_temp_path {prefix}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n"
            f"{temps}  server {{\n    listen 127.0.0.1:{self.port};\n    root {root};\n"
            "    location /put/ { dav_methods PUT; create_full_put_path on; client_max_body_size 0; }\n"
            "    location /list/ { autoindex on; autoindex_format json; }\n  }\n}\n"
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise SystemExit("nginx is missing: apt-get install -y nginx")
        self.version = command_version([binary, "-v"])
        self.proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"nginx did not start: {(prefix / 'error.log').read_text(errors='replace')}")
            time.sleep(0.05)

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- clients -----------------------------------------------------------------------------------------------------


def login(url: str, email: str, *, register: bool = False) -> str:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as c:
        if register:
            r = c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])


def channel(host_port: str, *, own_connection: bool = False) -> Any:
    import grpc

    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", BIG_MESSAGE),
        ("grpc.max_receive_message_length", BIG_MESSAGE),
    ]
    if own_connection:  # channels with equal arguments would otherwise share one subchannel (one TCP connection)
        options.append(("grpc.use_local_subchannel_pool", 1))
    return grpc.aio.insecure_channel(host_port, options=options)


@dataclass
class Client:
    """One user's native gRPC view of the gateway (grpc.aio, generated stubs)."""

    mesh: Mesh
    email: str
    token: str = ""
    channels: list[Any] = field(default_factory=list)

    def relogin(self) -> None:  # access tokens live 5 minutes: a fresh one per phase
        self.token = login(self.mesh.url, self.email)

    @property
    def md(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")]

    def stub(self, i: int = 0) -> Any:
        while len(self.channels) <= i:
            self.channels.append(channel(self.mesh.host_port, own_connection=True))
        return storage_pb2_grpc.StorageServiceStub(self.channels[i])

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()
        self.channels.clear()

    async def folder(self, name: str, parent: str = "root") -> str:
        node = await self.stub().CreateFolder(pb.CreateFolderRequest(parent_id=parent, name=name), metadata=self.md)
        return str(node.id)

    async def create(self, parent: str, name: str, size: int, sha256: str = "") -> str:
        req = pb.CreateUploadRequest(parent_id=parent, name=name, size=size, sha256=sha256)
        return str((await self.stub().CreateUpload(req, metadata=self.md, timeout=30)).upload_id)

    async def upload_stream(self, upload_id: str, chunks: Iterable[bytes], size: int) -> float:
        """Seconds from the first chunk sent to the last durable offset acknowledged."""

        def requests() -> Iterator[Any]:
            offset = 0
            for data in chunks:
                yield pb.UploadStreamRequest(upload_id=upload_id if offset == 0 else "", offset=offset, data=data)
                offset += len(data)

        t = time.perf_counter()
        committed = 0
        call = self.stub().UploadStream(requests(), metadata=self.md, timeout=max(120.0, size / (20 * MB)))
        async for ack in call:
            committed = ack.committed_size
        elapsed = time.perf_counter() - t
        assert committed == size, f"committed {committed} of {size}"
        return elapsed

    async def finish(self, upload_id: str) -> tuple[Any, float]:
        """FinishUpload, then GetUpload every 10 ms while FINISHING; the node and the seconds until COMPLETED."""
        stub = self.stub()
        t = time.perf_counter()
        up = await stub.FinishUpload(pb.FinishUploadRequest(upload_id=upload_id), metadata=self.md, timeout=120)
        deadline = time.monotonic() + 600
        while up.state == pb.UPLOAD_STATE_FINISHING and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            up = await stub.GetUpload(pb.GetUploadRequest(upload_id=upload_id), metadata=self.md, timeout=30)
        elapsed = time.perf_counter() - t
        assert up.state == pb.UPLOAD_STATE_COMPLETED, f"upload ended {pb.UploadState.Name(up.state)}: {up.failure}"
        return up.node, elapsed

    async def download(self, file_id: str, size: int) -> float:
        t = time.perf_counter()
        n = 0
        call = self.stub().DownloadFile(
            pb.DownloadFileRequest(file_id=file_id), metadata=self.md, timeout=max(120.0, size / (20 * MB))
        )
        async for msg in call:
            n += len(msg.data)
        elapsed = time.perf_counter() - t
        assert n == size, f"downloaded {n} of {size}"
        return elapsed

    async def purge(self, node_id: str) -> None:
        """Delete and purge a benchmark file: disk and quota stay bounded across runs."""
        await self.stub().DeleteNode(pb.DeleteNodeRequest(node_id=node_id), metadata=self.md)
        await self.stub().PurgeTrash(pb.PurgeTrashRequest(node_id=node_id), metadata=self.md)


def curl(args: list[str], timeout: float) -> dict[str, str]:
    """Run curl; its -w figures (http_code, time_total, size_upload, size_download) as a dict."""
    fmt = "%{http_code} %{time_total} %{size_upload} %{size_download}"
    r = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-w", fmt, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"curl failed ({r.returncode}): {r.stderr.strip()}")
    code, total, up, down = r.stdout.strip().split()[-4:]
    return {"http_code": code, "time_total": total, "size_upload": up, "size_download": down}


@dataclass
class Results:
    """What storage_bench.py measured: environment, raw figures, CPU per measurement, failed sections."""

    env: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


async def ceiling(base: Path, chunks: Sequence[bytes], size: int) -> tuple[float, float]:
    """EncryptedBlobStore in this process with the service's settings: (write seconds, read seconds)."""
    from flowdock_kernel.config import load
    from storage_svc.blobstore import EncryptedBlobStore
    from storage_svc.config import StorageConfig
    from storage_svc.keyring import Keyring

    config = load(StorageConfig, os.environ)
    root = base / "ceiling"
    root.mkdir()
    try:
        store = EncryptedBlobStore(
            root / "storage", Keyring(root / "keyring.json"), segment_size=config.storage_segment_bytes
        )
        upload_id = uuid.uuid4().hex
        await store.create_staging(upload_id)
        t = time.perf_counter()
        pos = since = 0
        for data in chunks:
            await store.write_staging(upload_id, pos, data)
            pos += len(data)
            since += len(data)
            if since >= config.storage_sync_bytes:
                since = 0
                await store.sync_staging(upload_id)
        await store.sync_staging(upload_id)
        write = time.perf_counter() - t
        await store.commit_staging(upload_id, "ceilingblob", size)
        t = time.perf_counter()
        n = 0
        async for block in store.read("ceilingblob", 0, size, config.storage_chunk_bytes):
            n += len(block)
        read = time.perf_counter() - t
        assert n == size
        return write, read
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_source(path: Path, chunks: Sequence[bytes]) -> str:
    """The file curl uploads and nginx serves: the same bytes as the native upload; returns its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for data in chunks:
            f.write(data)
            digest.update(data)
    return digest.hexdigest()


CACHES_DROPPED: list[bool] = []


def quiesce(src: Path) -> None:
    """Before each upload: write back what earlier steps left dirty, and drop the clean page cache when allowed
    (root), so every upload starts with free memory instead of reclaiming earlier runs' pages as it writes (with the
    cache full, the writer's CPU per GiB doubled on this VM, for the ceiling as much as for the service). Then read
    the source file curl sends back into the cache."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        CACHES_DROPPED.append(True)
    except OSError:
        CACHES_DROPPED.append(False)
    with open(src, "rb") as f:
        while f.read(8 * MiB):
            pass


async def small_floor(base: Path, data: bytes, count: int) -> dict[str, dict[str, float]]:
    """The durability floor of one 1 KiB file on this disk, in this process, no network, no database: the plaintext
    system calls (create, write, fdatasync, read back, fsync, rename, directory fsync) and EncryptedBlobStore's."""
    from bench.blobstore_bench import enc_small, plain_small
    from flowdock_kernel.config import load
    from storage_svc.blobstore import EncryptedBlobStore
    from storage_svc.config import StorageConfig
    from storage_svc.keyring import Keyring

    config = load(StorageConfig, os.environ)
    root = base / "floor"
    root.mkdir()
    try:
        store = EncryptedBlobStore(
            root / "storage", Keyring(root / "keyring.json"), segment_size=config.storage_segment_bytes
        )
        lat: dict[str, list[float]] = {"plain": [], "enc": []}
        for i in range(count + 10):
            t = time.perf_counter()
            await plain_small(root, data, i)
            t1 = time.perf_counter()
            await enc_small(store, data, i)
            if i >= 10:
                lat["plain"].append(t1 - t)
                lat["enc"].append(time.perf_counter() - t1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {k: {"p50_ms": pct(v, 50) * 1000, "p95_ms": pct(v, 95) * 1000} for k, v in lat.items()}


async def fill_folder(client: Client, parent: str, count: int, workers: int = 16, per_second: float = 150.0) -> float:
    """Setup: `count` folders under `parent` by concurrent CreateFolder calls, paced below the gateway's rate limit
    (200 requests/s): Envoy fetches its JWKS through that same limited listener, and a fetch refused while the bucket
    is empty fails every authenticated call ("Jwks remote fetch is failed")."""
    import grpc

    stubs = [client.stub(i % 4) for i in range(workers)]
    names = iter(range(count))
    slot = [time.monotonic()]
    t = time.perf_counter()

    async def work(stub: Any) -> None:
        for i in names:
            req = pb.CreateFolderRequest(parent_id=parent, name=f"entry {i:05d}")
            for _ in range(200):
                now = time.monotonic()
                slot[0] = max(slot[0], now) + 1 / per_second
                await asyncio.sleep(slot[0] - 1 / per_second - now)
                try:
                    await stub.CreateFolder(req, metadata=client.md, timeout=30)
                    break
                except grpc.aio.AioRpcError as exc:  # rate limited anyway (other clients): wait and retry
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(work(s) for s in stubs))
    return count / (time.perf_counter() - t)


class RssSampler:
    """Max VmRSS of a process sampled every 20 ms, and its VmHWM reset at the start (clear_refs 5)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5\n")
            self.hwm_reset = True
        except OSError:
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        status = proc_status(self.pid)
        self.peak = max(self.peak, status["VmRSS"], status["VmHWM"] if self.hwm_reset else 0)


def cpu_text(used: dict[str, float] | None, unit: str) -> str:
    if not used:
        return ""
    names = {
        "storage": "svc",
        "envoy": "envoy",
        "mesh": "auth+share",
        "client": "client",
        "curl": "curl",
        "nginx": "nginx",
        "copyparty": "copyparty",
        "swift": "swift",
        "other": "OTHER",
    }
    parts = [f"{names[k]} {v:.2f}" for k, v in used.items() if k in names and v >= 0.005]
    return f"{' · '.join(parts)} {unit}" if parts else ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(rows: list[dict[str, str]], cpu_title: str = "CPU (s, ms/file or ms/listing)") -> str:
    cols = [
        ("measurement", "measurement"),
        ("value", "result"),
        ("reference", "reference"),
        ("ratio", "ratio"),
        ("target", "target"),
        ("verdict", ""),
        ("cpu", cpu_title),
    ]
    width = {k: max(len(title), *(len(r[k]) for r in rows)) for k, title in cols}
    lines = ["| " + " | ".join(title.ljust(width[k]) for k, title in cols) + " |"]
    lines.append("|" + "|".join("-" * (width[k] + 2) for k, _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(r[k].ljust(width[k]) for k, _ in cols) + " |")
    return "\n".join(lines)


def cpu_identity() -> str:
    """Family/model/MHz/AVX-512: the 'AMD EPYC' name alone hides a different CPU generation from one session's
    machine to the next (AES-GCM differs ~7x with and without AVX-512)."""
    fields: dict[str, str] = {}
    flags = ""
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0].splitlines():
            key, _, value = ln.partition(":")
            key = key.strip()
            if key in ("cpu family", "model", "cpu MHz"):
                fields[key] = value.strip()
            elif key == "flags":
                flags = value
    avx512 = "avx512f" in flags.split()
    return (
        f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, "
        f"{fields.get('cpu MHz', '?')} MHz, AVX-512 {'yes' if avx512 else 'no'}"
    )


def calibration() -> str:
    """Fixed work timed in this process (best of three), to compare machines across sessions: absolute targets
    (ms per file or listing) and CPU columns scale with these, ratios against references often do not."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = os.urandom(MiB)
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    def loop() -> None:
        total = 0
        for i in range(2_000_000):
            total += i

    py = best(loop)
    aes = best(lambda: [aead.encrypt(nonce, data, b"") for _ in range(64)])
    sha = best(lambda: [hashlib.sha256(data).digest() for _ in range(64)])
    return (
        f"Python 2M-iteration loop {py * 1000:.0f} ms, AES-256-GCM {64 * MiB / aes / MB:.0f} MB/s, "
        f"SHA-256 {64 * MiB / sha / MB:.0f} MB/s"
    )


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_environment() -> dict[str, Any]:
    """The machine half of every bench's environment block (the bench adds what it ran)."""
    import grpc

    from gateway.runner import envoy_binary

    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            "",
        )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "cpu identity": cpu_identity(),
        "calibration (this process, best of 3)": calibration(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "envoy": command_version([envoy_binary(), "--version"]).split("version: ")[-1],
    }


def reexec_with_service_malloc() -> None:
    """Run this bench (client, curl) with the GLIBC_TUNABLES `flowdock up` gives the services (the malloc finding in
    performance-ceilings.md); it must be in place before the interpreter starts, so re-execute with it."""
    if os.environ.get("GLIBC_TUNABLES") != MALLOC_TUNABLES and not os.environ.get("FLOWDOCK_BENCH_STOCK_MALLOC"):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES})


def bench_database(base_url: str) -> str:
    """A fresh database name prefix on the PostgreSQL server at `base_url` (`flowdock up` makes one per service)."""
    return f"{base_url.rstrip('/')}/fdbench_{uuid.uuid4().hex[:6]}" if base_url else ""


def drop_bench_databases(base_url: str, db: str) -> None:
    """Drop what `flowdock up --db <db>` created: one database per service."""
    if not db:
        return
    import psycopg

    with psycopg.connect(f"{base_url.rstrip('/')}/postgres", autocommit=True) as conn:
        for svc in ("auth", "storage", "share"):
            conn.execute(f'DROP DATABASE IF EXISTS "{db.rsplit("/", 1)[1]}_{svc}" WITH (FORCE)')


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{what} did not start on 127.0.0.1:{port}")
        time.sleep(0.05)


class Copyparty:
    """copyparty (PyPI, pinned in constraints.txt) as a second peer beside nginx: its own process on a free loopback
    port, one anonymous read-write volume in a temp dir, its defaults otherwise: a PUT is hashed as it arrives
    (sha512, its `--put-ck` default) and written without fsync; no encryption. `-j 1` (its default: one process)."""

    def __init__(self, base: Path) -> None:
        import copyparty

        self.version = str(copyparty.__version__) if hasattr(copyparty, "__version__") else "?"
        with contextlib.suppress(Exception):
            from copyparty.__version__ import S_VERSION

            self.version = S_VERSION
        self.port = free_port()
        self.root = base / "copyparty"
        (self.root / "vol").mkdir(parents=True)
        (self.root / "cfg").mkdir()
        argv = [sys.executable, "-m", "copyparty", "-i", "127.0.0.1", "-p", str(self.port)]
        argv += ["-v", f"{self.root / 'vol'}::rw", "-q", "--http-only", "--no-crt", "--no-thumb"]
        env = {**os.environ, "XDG_CONFIG_HOME": str(self.root / "cfg")}  # its config/state dir: the temp dir
        env.pop("GLIBC_TUNABLES", None)  # as its users run it
        self.log = self.root / "copyparty.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "copyparty")
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def vol(self) -> Path:
        return self.root / "vol"

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- grpc-web over HTTP/1.1, as a browser sends it ------------------------------------------------------------------


GRPC_WEB_HEADERS = {
    "content-type": "application/grpc-web+proto",
    "x-grpc-web": "1",
    "accept": "application/grpc-web+proto",
}


class GrpcWebError(Exception):
    """A grpc-web call answered a non-zero grpc-status (in the trailer frame or the headers)."""


def grpc_web_frame(message: bytes) -> bytes:
    """One data frame: flag 0x00, 4-byte big-endian length, the serialized message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_web_parse(body: bytes, headers: Any) -> list[bytes]:
    """The messages of a grpc-web response; raises GrpcWebError unless its trailer frame (flag 0x80) or, for a
    trailers-only answer, its headers say grpc-status 0."""
    messages: list[bytes] = []
    status, message = headers.get("grpc-status"), headers.get("grpc-message", "")
    pos = 0
    while pos + 5 <= len(body):
        flags, length = body[pos], int.from_bytes(body[pos + 1 : pos + 5], "big")
        payload = body[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if flags & 0x80:
            for line in payload.decode(errors="replace").split("\r\n"):
                key, _, value = line.partition(":")
                if key.strip().lower() == "grpc-status":
                    status = value.strip()
                elif key.strip().lower() == "grpc-message":
                    message = value.strip()
        else:
            messages.append(payload)
    if status != "0":
        raise GrpcWebError(f"grpc-status {status}: {message}")
    return messages


def grpc_web_call(http: Any, method: str, request: Any, response_type: Any, token: str) -> Any:
    """One unary grpc-web call over an httpx.Client (HTTP/1.1, keep-alive) to StorageService."""
    r = http.post(
        f"/flowdock.storage.v1.StorageService/{method}",
        content=grpc_web_frame(request.SerializeToString()),
        headers={**GRPC_WEB_HEADERS, "authorization": f"Bearer {token}"},
    )
    if r.status_code != 200:
        raise GrpcWebError(f"HTTP {r.status_code}: {r.text[:200]}")
    messages = grpc_web_parse(r.content, r.headers)
    return response_type.FromString(messages[0])
