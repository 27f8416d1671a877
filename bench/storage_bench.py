"""Storage benchmarks through `flowdock up` and Envoy, with references measured in the same run (issue 4).

    python bench/storage_bench.py [--mb 1024] [--rss-mb 4096] [--runs 3] [--small 300] [--clients 16]
                                  [--list-small 1000] [--list-big 10000] [--db postgresql://postgres@127.0.0.1:5432]

What it runs (everything on loopback, bounded in time and count, cleaned up at the end):
1. --mb (default 1 GiB) upload and download through Envoy: native gRPC (generated stubs, grpc.aio, 1 MiB chunks on
   UploadStream / DownloadFile) and REST with curl (`curl -T` PUT, `curl -o` GET). References: EncryptedBlobStore
   encrypt+write+fsync of the same chunks in this process (the upload ceiling; the service's segment size and fsync
   cadence) and Debian's nginx (own temp config, sendfile on) serving the same file to curl (download reference).
   FinishUpload is timed separately, until GetUpload says COMPLETED. Medians of --runs.
2. 1 KiB files through Envoy (native gRPC): create+upload+finish latency p50/p95, sequential, after a warm-up; the
   same with --clients concurrent clients (grpc.aio tasks, one connection each) as files/s. If CreateUploadRequest
   has a `content` field (single-call small-file path), that path gets rows too. Reference: the durable 1 KiB write
   of bench/blobstore_bench.py (plaintext system calls and EncryptedBlobStore) in this process: the disk's floor.
3. REST listing: p50 of GET /api/v1/folders/{id}/children?page_size=1000 over a folder of --list-small entries, and
   the time to page through --list-big entries (entries are folders made with concurrent CreateFolder calls: setup);
   each timed to the last byte of the response (the target's measure, as curl/wrk time it) and, in its own row,
   with the client's JSON parsing too.
4. storage_svc peak RSS (VmHWM, reset through /proc/<pid>/clear_refs, plus VmRSS sampled every 20 ms) during an
   --rss-mb (default 4 GiB) native upload until COMPLETED, and during its download, as growth over idle. Run first,
   on a fresh service, so nothing earlier inflates "idle".

Sections (--only rss,big,small,list) that fail are reported as FAILED rows; the others still print.
The client runs with the same GLIBC_TUNABLES that `flowdock up` gives the services (the script re-executes itself
with it). Prints the environment and one table; writes both as JSON to bench/out/storage.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402
from flowdock.storage.v1 import storage_pb2_grpc  # noqa: E402
from flowdock_runtime.supervisor import MALLOC_TUNABLES  # noqa: E402

MB = 1_000_000
MiB = 1024 * 1024
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
    def start(cls, data_dir: Path, stderr_path: Path, db: str) -> Mesh:
        port = free_port()
        argv = [sys.executable, "-m", "flowdock_runtime", "up", "--data-dir", str(data_dir), "--port", str(port)]
        if db:
            argv += ["--db", db]
        env = {**os.environ, **AUTH_ENV}
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

    @property
    def envoy_pids(self) -> list[int]:
        return descendants(self.pids["gateway"])

    def meter_pids(self, nginx: Nginx | None = None) -> dict[str, list[int]]:
        """Processes whose CPU time CpuMeter reports: storage_svc, Envoy (+ its launcher), the rest of the mesh."""
        pids = {
            "storage": [p for n, p in self.pids.items() if n.startswith("storage")],
            "envoy": [self.pids["gateway"], *self.envoy_pids],
            "mesh": [p for n, p in self.pids.items() if n.startswith(("auth", "share"))] + [self.proc.pid],
        }
        if nginx is not None:
            pids["nginx"] = nginx.pids
        return pids

    @property
    def virus_scanning(self) -> str:
        text = self.stderr_path.read_text(errors="replace")
        for line in text.splitlines():
            if "virus scanning is OFF" in line:
                return "OFF (" + line.split("OFF: ", 1)[-1].split(". ", 1)[0] + ")"
        return "ON (clamd answered)"


class Nginx:
    """Debian's nginx with a temp config: one worker, sendfile on, serving `root` on a free loopback port."""

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
            f"{temps}  server {{\n    listen 127.0.0.1:{self.port};\n    root {root};\n  }}\n}}\n"
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


# -- 1. big transfers --------------------------------------------------------------------------------------------


@dataclass
class Results:
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


async def big_transfers(args: argparse.Namespace, client: Client, base: Path, nginx: Nginx, res: Results) -> None:
    size = args.mb * MiB
    chunk_pool = [os.urandom(MiB) for _ in range(64)]
    chunks = [chunk_pool[i % 64] for i in range(args.mb)]
    # every chunk distinct would need 1 GiB of urandom (several seconds); 64 distinct MiB repeated is the same work
    # for AES-GCM, SHA-256, the disk and the network.
    src = base / "www" / "data.bin"
    sha = write_source(src, chunks)
    client.relogin()
    folder = await client.folder("big")
    meter_pids = client.mesh.meter_pids(nginx)
    rest = client.mesh.url
    timeout = max(300.0, size / (10 * MB))

    # warm-up: every path once with 16 MiB (connections, code paths, JWKS cache)
    warm = chunks[:16]
    uid = await client.create(folder, "warm.bin", 16 * MiB)
    await client.upload_stream(uid, warm, 16 * MiB)
    node, _ = await client.finish(uid)
    await client.download(node.id, 16 * MiB)
    curl([f"http://127.0.0.1:{nginx.port}/data.bin", "-o", os.devnull, "-r", "0-16777215"], timeout)
    curl(
        [f"{rest}/api/v1/files/{node.id}/content", "-H", f"authorization: Bearer {client.token}", "-o", os.devnull],
        timeout,
    )
    await client.purge(node.id)

    times: dict[str, list[float]] = {
        k: []
        for k in (
            "ceiling_w",
            "ceiling_r",
            "native_up",
            "rest_up",
            "native_finish",
            "rest_finish",
            "nginx_down",
            "native_down",
            "rest_down",
        )
    }
    cpu: dict[str, list[dict[str, float]]] = {k: [] for k in times}

    async def ceiling_step() -> None:
        quiesce(src)
        with CpuMeter(client.mesh.meter_pids(nginx)) as m:
            w, r = await ceiling(base, chunks, size)
        times["ceiling_w"].append(w)
        times["ceiling_r"].append(r)
        cpu["ceiling_w"].append(m.used)

    async def native_step(run: int) -> None:
        client.relogin()
        uid = await client.create(folder, f"native{run}.bin", size, sha)
        quiesce(src)
        with CpuMeter(meter_pids) as m:
            times["native_up"].append(await client.upload_stream(uid, chunks, size))
        cpu["native_up"].append(m.used)
        with CpuMeter(meter_pids) as m:
            node, seconds = await client.finish(uid)
        times["native_finish"].append(seconds)
        cpu["native_finish"].append(m.used)
        assert (node.sha256, node.size) == (sha, size), node
        nodes["native"] = node.id

    async def rest_step(run: int) -> None:
        client.relogin()
        uid = await client.create(folder, f"rest{run}.bin", size, sha)
        quiesce(src)
        with CpuMeter(meter_pids) as m:
            out = await asyncio.to_thread(
                curl,
                [
                    "-T",
                    str(src),
                    "-H",
                    f"authorization: Bearer {client.token}",
                    "-H",
                    "Expect:",
                    "-H",
                    "content-type: application/octet-stream",
                    "-o",
                    os.devnull,
                    f"{rest}/api/v1/uploads/{uid}?offset=0",
                ],
                timeout,
            )
        assert (out["http_code"], int(out["size_upload"])) == ("200", size), out
        times["rest_up"].append(float(out["time_total"]))
        cpu["rest_up"].append(m.used)
        with CpuMeter(meter_pids) as m:
            node, seconds = await client.finish(uid)
        times["rest_finish"].append(seconds)
        cpu["rest_finish"].append(m.used)
        assert (node.sha256, node.size) == (sha, size), node
        nodes["rest"] = node.id

    async def downloads(run: int) -> None:
        client.relogin()
        file_id = nodes["native"]
        # Untimed, once each: both files in the page cache (a later upload's quiesce may have dropped them).
        curl([f"http://127.0.0.1:{nginx.port}/data.bin", "-o", os.devnull], timeout)
        await client.download(file_id, size)
        order = ["nginx", "native", "rest"]
        for which in order if run % 2 == 0 else order[::-1]:
            with CpuMeter(meter_pids) as m:
                if which == "nginx":
                    out = await asyncio.to_thread(
                        curl, [f"http://127.0.0.1:{nginx.port}/data.bin", "-o", os.devnull], timeout
                    )
                elif which == "rest":
                    out = await asyncio.to_thread(
                        curl,
                        [
                            f"{rest}/api/v1/files/{file_id}/content",
                            "-H",
                            f"authorization: Bearer {client.token}",
                            "-o",
                            os.devnull,
                        ],
                        timeout,
                    )
                else:
                    seconds = await client.download(file_id, size)
            if which != "native":
                assert (out["http_code"], int(out["size_download"])) == ("200", size), out
                seconds = float(out["time_total"])
            times[f"{which}_down"].append(seconds)
            cpu[f"{which}_down"].append(m.used)

    for run in range(args.runs):
        nodes: dict[str, str] = {}
        steps: list[Callable[[], Any]] = [ceiling_step, partial(native_step, run), partial(rest_step, run)]
        for step in steps if run % 2 == 0 else steps[::-1]:  # alternate the order: disk state favours no one
            await step()
        await downloads(run)
        for node_id in nodes.values():
            await client.purge(node_id)
        print(f"  big transfers: run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)

    res.raw["big"] = {"bytes": size, "seconds": times}
    for key, rows in cpu.items():
        res.cpu[f"big_{key}"] = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]} if rows else {}


# -- 2. small files ----------------------------------------------------------------------------------------------


def has_inline_content() -> bool:
    return "content" in pb.CreateUploadRequest.DESCRIPTOR.fields_by_name


async def small_file(client: Client, stub: Any, parent: str, name: str, data: bytes, mode: str) -> float:
    """One 1 KiB file through the gateway; seconds from the first call to the node being there."""
    md = client.md
    t = time.perf_counter()
    if mode == "inline":
        req = pb.CreateUploadRequest(parent_id=parent, name=name, size=len(data))
        req.content = data  # type: ignore[attr-defined]
        up = await stub.CreateUpload(req, metadata=md, timeout=30)
        assert up.state == pb.UPLOAD_STATE_COMPLETED, up
        return time.perf_counter() - t
    up = await stub.CreateUpload(
        pb.CreateUploadRequest(parent_id=parent, name=name, size=len(data)), metadata=md, timeout=30
    )
    if mode == "stream":
        call = stub.UploadStream(
            iter([pb.UploadStreamRequest(upload_id=up.upload_id, offset=0, data=data)]), metadata=md, timeout=30
        )
        acks = [a.committed_size async for a in call]
        assert acks[-1] == len(data)
    else:
        ack = await stub.WriteUploadChunk(
            pb.WriteUploadChunkRequest(upload_id=up.upload_id, offset=0, data=data), metadata=md, timeout=30
        )
        assert ack.committed_size == len(data)
    done = await stub.FinishUpload(pb.FinishUploadRequest(upload_id=up.upload_id), metadata=md, timeout=30)
    assert done.state == pb.UPLOAD_STATE_COMPLETED, done
    return time.perf_counter() - t


async def small_worker(
    client: Client,
    stub: Any,
    parent: str,
    data: bytes,
    mode: str,
    counter: Iterator[int],
    deadline: float,
    latencies: list[float],
) -> None:
    """One of the concurrent clients: takes file numbers from the shared counter until it or the time runs out."""
    for i in counter:
        if time.monotonic() > deadline:
            return
        latencies.append(await small_file(client, stub, parent, f"c{i:05d}.bin", data, mode))


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


async def small_files(args: argparse.Namespace, client: Client, base: Path, res: Results) -> None:
    data = os.urandom(1024)
    wanted = args.small_modes.split(",")
    modes = [m for m in ("stream", "chunk", "inline") if m in wanted and (m != "inline" or has_inline_content())]
    meter_pids = client.mesh.meter_pids()
    out: dict[str, Any] = {}
    os.sync()
    res.raw["small_floor"] = await small_floor(base, data, min(args.small, 200))
    for mode in modes:
        client.relogin()
        stub = client.stub()
        seq = await client.folder(f"small-{mode}")
        for i in range(args.warmup):
            await small_file(client, stub, seq, f"w{i}.bin", data, mode)
        lat = []
        with CpuMeter(meter_pids) as m:
            for i in range(args.small):
                lat.append(await small_file(client, stub, seq, f"f{i:05d}.bin", data, mode))
        res.cpu[f"small_{mode}_seq"] = {k: round(v / args.small * 1000, 3) for k, v in m.used.items()}  # ms per file

        # concurrent: --clients tasks, each on its own connection, until --conc-files are done (or 60 s)
        conc = await client.folder(f"small-{mode}-conc")
        stubs = [client.stub(i) for i in range(args.clients)]
        for i, s in enumerate(stubs):  # connect and warm every connection
            await small_file(client, s, conc, f"w{i}.bin", data, mode)
        counter = iter(range(args.conc_files))
        deadline = time.monotonic() + 60
        conc_lat: list[float] = []
        with CpuMeter(meter_pids) as m:
            t = time.perf_counter()
            await asyncio.gather(
                *(small_worker(client, s, conc, data, mode, counter, deadline, conc_lat) for s in stubs)
            )
            elapsed = time.perf_counter() - t
        done = len(conc_lat)
        res.cpu[f"small_{mode}_conc"] = {k: round(v / max(done, 1) * 1000, 3) for k, v in m.used.items()}
        out[mode] = {
            "p50_ms": pct(lat, 50) * 1000,
            "p95_ms": pct(lat, 95) * 1000,
            "p99_ms": pct(lat, 99) * 1000,
            "files": args.small,
            "conc_files": done,
            "conc_seconds": elapsed,
            "files_per_s": done / elapsed,
            "conc_p50_ms": pct(conc_lat, 50) * 1000,
            "conc_p95_ms": pct(conc_lat, 95) * 1000,
        }
        print(f"  small files ({mode}) done", file=sys.stderr, flush=True)
    res.raw["small"] = out


# -- 3. listings -------------------------------------------------------------------------------------------------


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


def list_rest(url: str, token: str, folder: str, expected: int, rounds: int) -> tuple[list[float], list[float]]:
    """Page through a folder (page_size=1000) with one keep-alive HTTP client, `rounds` times. Per round: the time to
    the last byte of every response (summed over the pages: what curl's time_total or wrk measure), and the time
    with the client's JSON parsing too (the whole round, as a script reading the entries sees it). Each body is
    parsed after its time to last byte is taken (the next page's token is in it); the count is checked."""
    import httpx

    to_last_byte, with_parse = [], []
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60) as c:
        for _ in range(rounds):
            seen = 0
            token_ = ""
            receiving = 0.0
            t = time.perf_counter()
            while True:
                params = {"page_size": "1000", **({"page_token": token_} if token_ else {})}
                sent = time.perf_counter()
                r = c.get(f"/api/v1/folders/{folder}/children", params=params)  # returns once the body is read
                receiving += time.perf_counter() - sent
                assert r.status_code == 200, r.text
                body = r.json()
                seen += len(body.get("nodes", []))
                token_ = body.get("nextPageToken", "")
                if not token_:
                    break
            with_parse.append(time.perf_counter() - t)
            to_last_byte.append(receiving)
            assert seen == expected, f"listed {seen} of {expected}"
    return to_last_byte, with_parse


async def listings(args: argparse.Namespace, client: Client, res: Results) -> None:
    out: dict[str, Any] = {}
    for count, rounds in ((args.list_small, args.list_rounds), (args.list_big, max(3, args.list_rounds // 4))):
        client.relogin()
        folder = await client.folder(f"list-{count}")
        rate = await fill_folder(client, folder, count)
        client.relogin()
        list_rest(client.mesh.url, client.token, folder, count, 3)  # warm-up
        with CpuMeter(client.mesh.meter_pids()) as m:
            ttlb, times = await asyncio.to_thread(list_rest, client.mesh.url, client.token, folder, count, rounds)
        res.cpu[f"list_{count}"] = {k: round(v / rounds, 4) for k, v in m.used.items()}
        out[str(count)] = {
            "p50_ms": pct(ttlb, 50) * 1000,  # time to last byte (the target's measure)
            "p95_ms": pct(ttlb, 95) * 1000,
            "parsed_p50_ms": pct(times, 50) * 1000,  # with the client's JSON parsing
            "parsed_p95_ms": pct(times, 95) * 1000,
            "raw_ms": [round(t * 1000, 3) for t in ttlb],
            "parsed_raw_ms": [round(t * 1000, 3) for t in times],
            "rounds": rounds,
            "pages": -(-count // 1000),
            "setup_folders_per_s": rate,
        }
        print(f"  listing {count} done", file=sys.stderr, flush=True)
    res.raw["list"] = out


# -- 4. memory ---------------------------------------------------------------------------------------------------


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


async def memory(args: argparse.Namespace, client: Client, res: Results) -> None:
    pid = client.mesh.pids["storage"]
    size = args.rss_mb * MiB
    pool = [os.urandom(MiB) for _ in range(64)]
    client.relogin()
    folder = await client.folder("rss")
    # one small upload and download first: the code paths and connections exist before "idle" is read
    uid = await client.create(folder, "warm.bin", 4 * MiB)
    await client.upload_stream(uid, pool[:4], 4 * MiB)
    warm, _ = await client.finish(uid)
    await client.download(warm.id, 4 * MiB)
    await asyncio.sleep(2)
    idle = proc_status(pid)["VmRSS"]
    uid = await client.create(folder, "big.bin", size)
    os.sync()
    with RssSampler(pid) as up_rss:
        up_s = await client.upload_stream(uid, (pool[i % 64] for i in range(args.rss_mb)), size)
        node, finish_s = await client.finish(uid)
    client.relogin()
    await asyncio.sleep(1)
    idle_down = proc_status(pid)["VmRSS"]
    with RssSampler(pid) as down_rss:
        down_s = await client.download(node.id, size)
    await client.purge(node.id)
    await client.purge(warm.id)
    res.raw["rss"] = {
        "bytes": size,
        "idle": idle,
        "peak_upload": up_rss.peak,
        "idle_before_download": idle_down,
        "peak_download": down_rss.peak,
        "hwm_reset": up_rss.hwm_reset,
        "upload_s": up_s,
        "finish_s": finish_s,
        "download_s": down_s,
    }
    print("  memory done", file=sys.stderr, flush=True)


# -- report ------------------------------------------------------------------------------------------------------


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
        "other": "OTHER",
    }
    parts = [f"{names[k]} {v:.2f}" for k, v in used.items() if k in names and v >= 0.005]
    return f"{' · '.join(parts)} {unit}" if parts else ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(args: argparse.Namespace, res: Results) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def row(
        what: str, value: str, ref: str = "", ratio: str = "", target: str = "", ok: str = "", cpu: str = ""
    ) -> None:
        rows.append(
            {
                "measurement": what,
                "value": value,
                "reference": ref,
                "ratio": ratio,
                "target": target,
                "verdict": ok,
                "cpu": cpu,
            }
        )

    big = res.raw.get("big")
    if big:
        n = big["bytes"]
        label = f"{n // MiB} MiB" if n % (1024 * MiB) else f"{n // (1024 * MiB)} GiB"
        med = {k: statistics.median(v) for k, v in big["seconds"].items() if v}
        rate = {k: n / v / MB for k, v in med.items()}
        c = res.cpu
        row(
            f"{label} upload: encrypt+write+fsync in-process (ceiling)",
            f"{rate['ceiling_w']:.0f} MB/s",
            cpu=cpu_text(c.get("big_ceiling_w"), "s"),
        )
        for key, what in (("native_up", "native gRPC UploadStream, 1 MiB chunks"), ("rest_up", "REST curl -T")):
            r = rate[key] / rate["ceiling_w"]
            row(
                f"{label} upload: {what}",
                f"{rate[key]:.0f} MB/s",
                "ceiling",
                f"{r:.2f}x",
                ">= 0.50x",
                verdict(r >= 0.5),
                cpu_text(c.get(f"big_{key}"), "s"),
            )
        for key, what in (("native_finish", "native"), ("rest_finish", "REST")):
            row(
                f"{label} FinishUpload until COMPLETED ({what} upload)",
                f"{med[key]:.2f} s ({rate[key]:.0f} MB/s)",
                cpu=cpu_text(c.get(f"big_{key}"), "s"),
            )
        row(
            f"{label} download: nginx sendfile -> curl (reference)",
            f"{rate['nginx_down']:.0f} MB/s",
            cpu=cpu_text(c.get("big_nginx_down"), "s"),
        )
        r = rate["rest_down"] / rate["nginx_down"]
        row(
            f"{label} download: REST curl -o",
            f"{rate['rest_down']:.0f} MB/s",
            "nginx",
            f"{r:.2f}x",
            ">= 0.40x",
            verdict(r >= 0.4),
            cpu_text(c.get("big_rest_down"), "s"),
        )
        r = rate["native_down"] / rate["nginx_down"]
        row(
            f"{label} download: native gRPC DownloadFile",
            f"{rate['native_down']:.0f} MB/s",
            "nginx",
            f"{r:.2f}x",
            cpu=cpu_text(c.get("big_native_down"), "s"),
        )
        row(f"{label} read+decrypt in-process (download ceiling, info)", f"{rate['ceiling_r']:.0f} MB/s")
    floor = res.raw.get("small_floor")
    if floor:
        for key, what in (("plain", "plaintext syscalls"), ("enc", "EncryptedBlobStore")):
            f = floor[key]
            row(
                f"1 KiB durable write in-process, {what} (floor, no network/DB)",
                f"p50 {f['p50_ms']:.1f} / p95 {f['p95_ms']:.1f} ms",
            )
    small = res.raw.get("small")
    if small:
        names = {
            "stream": "CreateUpload + UploadStream + FinishUpload",
            "chunk": "CreateUpload + WriteUploadChunk + FinishUpload",
            "inline": "CreateUpload with content (single call)",
        }
        for mode, s in small.items():
            ok = s["p50_ms"] <= 5 and s["p95_ms"] <= 10
            row(
                f"1 KiB file, {names[mode]}: latency, 1 client",
                f"p50 {s['p50_ms']:.1f} / p95 {s['p95_ms']:.1f} ms",
                "oCIS 19.8 / 29 ms",
                f"{19.8 / s['p50_ms']:.1f}x faster" if s["p50_ms"] < 19.8 else f"{s['p50_ms'] / 19.8:.1f}x slower",
                "p50 <= 5, p95 <= 10 ms",
                verdict(ok),
                cpu_text(res.cpu.get(f"small_{mode}_seq"), "ms/file"),
            )
            row(
                f"1 KiB file, {names[mode]}: {args.clients} clients",
                f"{s['files_per_s']:.0f} files/s (p50 {s['conc_p50_ms']:.0f} / p95 {s['conc_p95_ms']:.0f} ms)",
                cpu=cpu_text(res.cpu.get(f"small_{mode}_conc"), "ms/file"),
            )
    lists = res.raw.get("list")
    if lists:
        for count, s in lists.items():
            n = int(count)
            used = res.cpu.get(f"list_{count}")
            cpu = cpu_text({k: v * 1000 for k, v in used.items()} if used else None, "ms/listing")
            parsed = s.get("parsed_p50_ms")
            if s["pages"] == 1:
                row(
                    f"REST list of {n:,} entries, one page (page_size=1000): to last byte",
                    f"p50 {s['p50_ms']:.1f} / p95 {s['p95_ms']:.1f} ms",
                    "",
                    "",
                    "p50 <= 20 ms",
                    verdict(s["p50_ms"] <= 20),
                    cpu,
                )
                if parsed is not None:
                    row(
                        f"REST list of {n:,} entries, one page: with the client's JSON parse",
                        f"p50 {parsed:.1f} / p95 {s['parsed_p95_ms']:.1f} ms",
                    )
            else:
                row(
                    f"REST list of {n:,} entries, all {s['pages']} pages of 1000: to last byte (sum)",
                    f"p50 {s['p50_ms']:.0f} / p95 {s['p95_ms']:.0f} ms",
                    cpu=cpu,
                )
                if parsed is not None:
                    row(
                        f"REST list of {n:,} entries, all {s['pages']} pages: with the client's JSON parse",
                        f"p50 {parsed:.0f} / p95 {s['parsed_p95_ms']:.0f} ms",
                    )
    for name, error in res.errors.items():
        row(f"section {name!r} FAILED", error)
    rss = res.raw.get("rss")
    if rss:
        label = (
            f"{rss['bytes'] // (1024 * MiB)} GiB" if rss["bytes"] % (1024 * MiB) == 0 else f"{rss['bytes'] // MiB} MiB"
        )
        for key, what, idle in (
            ("peak_upload", "upload + finish", "idle"),
            ("peak_download", "download", "idle_before_download"),
        ):
            growth = (rss[key] - rss[idle]) / MiB
            row(
                f"storage_svc RSS during {label} {what}",
                f"peak {rss[key] / MiB:.0f} MiB, growth {growth:.0f} MiB",
                f"idle {rss[idle] / MiB:.0f} MiB",
                "",
                "growth <= 64 MiB" if key == "peak_upload" else "",
                verdict(growth <= 64) if key == "peak_upload" else "",
            )
    return rows


def render(rows: list[dict[str, str]]) -> str:
    cols = [
        ("measurement", "measurement"),
        ("value", "result"),
        ("reference", "reference"),
        ("ratio", "ratio"),
        ("target", "target"),
        ("verdict", ""),
        ("cpu", "CPU (s, ms/file or ms/listing)"),
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


def environment(mesh: Mesh, nginx: Nginx, args: argparse.Namespace) -> dict[str, Any]:
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
        "nginx": nginx.version.split("version: ")[-1],
        "curl": command_version(["curl", "--version"]).split(" (")[0],
        "GLIBC_TUNABLES (client, services)": os.environ.get("GLIBC_TUNABLES", "(stock malloc)"),
        "database": "PostgreSQL" if mesh.db else "SQLite (embedded)",
        "service log level": AUTH_ENV["FLOWDOCK_LOG_LEVEL"] + " (Envoy access log on, as flowdock up runs it)",
        "gateway rate limit": "200 requests/s, burst 400 (gateway default, unchanged: caps request-rate rows)",
        "virus scanning": mesh.virus_scanning,
        "data dir": str(mesh.data_dir),
        "runs (big transfers, median)": args.runs,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- main --------------------------------------------------------------------------------------------------------


async def run_all(args: argparse.Namespace, mesh: Mesh, nginx: Nginx, base: Path, res: Results) -> None:
    client = Client(mesh, f"bench{uuid.uuid4().hex[:8]}@example.org")
    login(mesh.url, client.email, register=True)
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("rss", partial(memory, args, client, res)),
        ("big", partial(big_transfers, args, client, base, nginx, res)),
        ("small", partial(small_files, args, client, base, res)),
        ("list", partial(listings, args, client, res)),
    ]
    try:
        for name, section in sections:
            if name not in args.only:
                continue
            try:
                await section()
            except Exception as exc:  # report what was measured; say what failed
                res.errors[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
                traceback.print_exc()
            os.sync()
    finally:
        await client.close()


def main() -> None:
    if os.environ.get("GLIBC_TUNABLES") != MALLOC_TUNABLES and not os.environ.get("FLOWDOCK_BENCH_STOCK_MALLOC"):
        # must be in place before the interpreter starts: re-execute with it (performance-ceilings.md)
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="MiB per big transfer (default 1024 = 1 GiB)")
    parser.add_argument("--rss-mb", type=int, default=4096, help="MiB of the RSS upload (default 4096 = 4 GiB)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the big transfers (median)")
    parser.add_argument("--small", type=int, default=300, help="1 KiB files timed one after another")
    parser.add_argument("--warmup", type=int, default=30, help="1 KiB files before timing")
    parser.add_argument(
        "--small-modes", default="stream,chunk,inline", help="1 KiB paths: stream, chunk (three calls), inline (one)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for files/s")
    parser.add_argument("--conc-files", type=int, default=800, help="1 KiB files uploaded by the concurrent clients")
    parser.add_argument("--list-small", type=int, default=1000, help="entries of the one-page listing")
    parser.add_argument("--list-big", type=int, default=10000, help="entries of the paged listing")
    parser.add_argument("--list-rounds", type=int, default=30, help="listings timed (the big one: a quarter)")
    parser.add_argument("--db", default="", help="PostgreSQL base URL, e.g. postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--dir", default="", help="where the temp data goes (default: the system temp dir)")
    parser.add_argument("--only", default="rss,big,small,list", help="comma list of sections: rss,big,small,list")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "storage.json"), help="JSON result path")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM as on Ctrl-C
    logging.disable(logging.WARNING)  # the in-process keyring's first-use notice

    base = Path(tempfile.mkdtemp(prefix="flowdock-storage-bench-", dir=args.dir or None))
    db = f"{args.db.rstrip('/')}/fdbench_{uuid.uuid4().hex[:6]}" if args.db else ""
    res = Results()
    mesh: Mesh | None = None
    nginx: Nginx | None = None
    started = time.monotonic()
    try:
        (base / "www").mkdir()
        nginx = Nginx(base, base / "www")
        mesh = Mesh.start(base / "data", base / "up.stderr", db)
        res.env = environment(mesh, nginx, args)
        print(f"flowdock up ready; benchmarking in {base}", file=sys.stderr, flush=True)
        asyncio.run(run_all(args, mesh, nginx, base, res))
    finally:
        if mesh is not None:
            mesh.stop()
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(base, ignore_errors=True)
        if db:
            import psycopg

            with psycopg.connect(f"{args.db.rstrip('/')}/postgres", autocommit=True) as conn:
                for svc in ("auth", "storage", "share"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db.rsplit("/", 1)[1]}_{svc}" WITH (FORCE)')
    if CACHES_DROPPED:
        res.env["page cache before each upload"] = (
            "sync, clean cache dropped (vm.drop_caches=1), curl's source re-read"
            if all(CACHES_DROPPED)
            else "sync only (no permission to drop the cache: results depend on what earlier work left cached)"
        )
    res.env["wall seconds"] = round(time.monotonic() - started, 1)
    res.env["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = table(args, res)
    print("\nFlowDock storage benchmark (through `flowdock up` + Envoy, loopback)")
    for key, value in res.env.items():
        print(f"  {key}: {value}")
    print("  MB/s = 10^6 bytes/s; CPU column: CPU-seconds per transfer (medians), ms per file, or CPU-ms per listing;")
    print("  OTHER = CPU used meanwhile by processes outside this benchmark (other jobs on the machine)")
    print()
    print(render(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"environment": res.env, "table": rows, "raw": res.raw, "cpu": res.cpu, "errors": res.errors}, indent=2
        )
    )
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
