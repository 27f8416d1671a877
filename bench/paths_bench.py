"""Issue 15's benchmark: the paths browsers and sync clients take, beside copyparty and nginx, in one run.

    python bench/paths_bench.py                      # full size: 1 GiB transfers, 4 GiB RSS run (~10-15 min)
    python bench/paths_bench.py --quick              # small sizes (~1-2 min)
    python bench/paths_bench.py --only upload,list --db postgresql://postgres@127.0.0.1:5432

Starts `flowdock up --no-scan` (a fresh temp data dir, a free loopback port, its defaults otherwise), Debian's nginx
(temp config: sendfile, WebDAV PUT, JSON autoindex) and copyparty (PyPI, a temp volume; it hashes every PUT as it
arrives), each on a free loopback port, and measures every row of issue 15's Targets table with the references
of the same run. Sections (--only, comma-separated; each runs on its own, a failing one becomes FAILED rows):

  rss        storage_svc RSS growth during a --rss-mb native upload (first, on a fresh service)
  upload     --mb upload: the in-process ceiling (AES-GCM+write+fsync), copyparty and nginx single PUT (curl -T),
             FlowDock REST one PUT per advised chunk and per 16 MiB, grpc-web WriteUploadChunk, native UploadStream;
             each FlowDock path timed from CreateUpload to the file id (FinishUpload, GetUpload until COMPLETED)
  finish     FinishUpload of --mb (scanning off) against a 1 KiB file's, until COMPLETED
  small      1 KiB: REST CreateUpload with content (one call) p50/p95, REST create+PUT+finish, copyparty and nginx
             PUT p50/p95, the durable floor in-process; --clients concurrent clients (files/s)
  list       --entries entries: REST p50 and JSON bytes per entry, grpc-web p50, copyparty `?ls`, nginx autoindex
  download   --mb download: REST (curl) against nginx (sendfile) and copyparty
  concurrent --conc-uploads x --conc-mb native uploads at once (aggregate) against one alone, errors counted
  storm      ListChildren (REST) p99 for one user, without and with --storm-rate logins/s of other users

Bounded (time-outs on every call, fixed counts) and cleaned up (SIGTERM to `flowdock up` and copyparty, SIGQUIT to
nginx, the temp dir removed, a PostgreSQL database dropped). Prints the environment and one table (target,
PASS/MISS, CPU per process from /proc); writes them with every raw figure to bench/out/paths.json.
MB/s = 10^6 bytes/s, KB = 1000 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common as common  # noqa: E402
from bench._common import MB, GiB, MiB, pct  # noqa: E402
from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402

SECTIONS = ("rss", "upload", "finish", "small", "list", "download", "concurrent", "storm")
POOL = 64 * MiB  # distinct random bytes, repeated: the same work for AES-GCM, SHA-256, disk and network as unique ones
FULL = {
    "mb": 1024,
    "rss_mb": 4096,
    "runs": 3,
    "small": 300,
    "warmup": 30,
    "clients": 16,
    "conc_files": 3000,
    "entries": 1000,
    "list_rounds": 30,
    "conc_uploads": 32,
    "conc_mb": 64,
    "storm_rate": 50.0,
    "storm_seconds": 10.0,
    "storm_entries": 100,
    "storm_users": 50,
}
QUICK = {
    **FULL,
    "mb": 64,
    "rss_mb": 256,
    "runs": 1,
    "small": 60,
    "warmup": 10,
    "conc_files": 400,
    "list_rounds": 15,
    "conc_mb": 8,
    "storm_seconds": 4.0,
}
TARGETS = {
    "rest_vs_ceiling": 0.5,
    "rest_vs_copyparty": 1.0,
    "grpcweb_vs_ceiling": 0.5,
    "native_vs_ceiling": 0.6,
    "finish_s_per_gib": 0.1,
    "small_p50_ms": 1.5,
    "small_p95_ms": 3.0,
    "files_per_s": 1000.0,
    "json_bytes_per_entry": 200.0,
    "grpcweb_list_p50_ms": 3.0,
    "download_vs_nginx": 0.6,
    "download_vs_copyparty": 0.8,
    "concurrent_vs_single": 1.0,
    "storm_p99_ratio": 2.0,
    "rss_growth_mib": 32.0,
}
ENV = {"FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(1024 * GiB)}  # 32 x 64 MiB + 4 GiB in one account


@dataclass
class Results:
    env: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # per measurement, one entry per run
    errors: dict[str, str] = field(default_factory=dict)


# -- the bytes sent ------------------------------------------------------------------------------------------------


class Payload:
    """`size` bytes: a pool of 64 random MiB repeated. Pieces of a chunk size that divides the pool are cut once and
    reused (no copy per request); the SHA-256 of the whole is computed once, untimed, to check every upload."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pool = os.urandom(min(POOL, max(size, 1)))
        self._pieces: dict[int, list[bytes]] = {}
        digest = hashlib.sha256()
        for piece in self.pieces(MiB):
            digest.update(piece)
        self.sha256 = digest.hexdigest()

    def pieces(self, chunk: int) -> Iterator[bytes]:
        pool_len = len(self.pool)
        if pool_len % chunk == 0:
            if chunk not in self._pieces:
                self._pieces[chunk] = [self.pool[i : i + chunk] for i in range(0, pool_len, chunk)]
            cut = self._pieces[chunk]
            for n, offset in enumerate(range(0, self.size, chunk)):
                piece = cut[n % len(cut)]
                yield piece if offset + chunk <= self.size else piece[: self.size - offset]
            return
        for offset in range(0, self.size, chunk):  # a chunk size that does not divide the pool: copies
            length = min(chunk, self.size - offset)
            start = offset % pool_len
            piece = self.pool[start : start + length]
            while len(piece) < length:
                piece += self.pool[: length - len(piece)]
            yield piece

    def write(self, path: Path) -> None:
        with open(path, "wb") as f:
            for piece in self.pieces(MiB):
                f.write(piece)


# -- the system under test and its peers ---------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    mesh: common.Mesh
    nginx: common.Nginx
    copyparty: common.Copyparty
    base: Path
    res: Results
    client: common.Client  # the main user, native gRPC

    def meter(self) -> common.CpuMeter:
        return common.CpuMeter(self.mesh.meter_pids(self.nginx, self.copyparty))

    def rest(self, token: str = "", local_address: str = "") -> Any:
        """An httpx client (HTTP/1.1 keep-alive) on the gateway as `token`'s user, from `local_address`."""
        import httpx

        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        headers = {"authorization": f"Bearer {token or self.client.token}"}
        return httpx.Client(base_url=self.mesh.url, headers=headers, timeout=120, transport=transport)

    def record(self, key: str, value: Any, used: dict[str, float] | None = None, per: float = 1.0) -> None:
        """One measurement (appended: several runs give a median) and its CPU, divided by `per`."""
        self.res.raw.setdefault(key, []).append(value)
        if used is not None:
            self.res.cpu.setdefault(key, []).append({k: round(v / per, 4) for k, v in used.items()})


def ok_json(r: Any, what: str) -> dict[str, Any]:
    if r.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:300]}")
    return dict(r.json())


def with_retry(send: Callable[[], Any], counter: list[int]) -> Any:
    """Send a request again after a 429 (the gateway's per-client rate limit), as a resumable client does, after its
    Retry-After (at most 1 s); the refusals are counted and reported."""
    for _ in range(600):
        r = send()
        if r.status_code != 429:
            return r
        counter[0] += 1
        time.sleep(min(1.0, float(r.headers.get("retry-after", "0.05") or 0.05)))
    raise RuntimeError("still rate limited after 600 tries")


def wait_completed(get: Callable[[], dict[str, Any]], first: dict[str, Any]) -> dict[str, Any]:
    """Poll (every 10 ms) while an upload is FINISHING; its final state must be COMPLETED."""
    up, deadline = first, time.monotonic() + 600
    while up.get("state") == "UPLOAD_STATE_FINISHING" and time.monotonic() < deadline:
        time.sleep(0.01)
        up = get()
    if up.get("state") != "UPLOAD_STATE_COMPLETED":
        raise RuntimeError(f"upload ended {up.get('state')}: {up.get('failure', '')}")
    return up


def rest_upload(http: Any, parent: str, name: str, data: Payload, chunk: int = 0) -> dict[str, Any]:
    """CreateUpload, one PUT per chunk (the advised size unless `chunk`), FinishUpload, GetUpload until COMPLETED,
    over REST. Returns seconds (create → file id), the chunk size used, the node, 429 retries."""
    retries = [0]
    t = time.perf_counter()
    create = {"parentId": parent, "name": name, "size": data.size}
    up = ok_json(with_retry(lambda: http.post("/api/v1/uploads", json=create), retries), "CreateUpload")
    upload_id, chunk = up["uploadId"], chunk or int(up["chunkSize"])
    offset = 0
    headers = {"content-type": "application/octet-stream"}
    for piece in data.pieces(chunk):
        put = partial(http.put, f"/api/v1/uploads/{upload_id}", params={"offset": str(offset)}, content=piece)
        r = with_retry(partial(put, headers=headers), retries)
        offset += len(piece)
        committed = int(ok_json(r, "PUT chunk")["committedSize"])
        if committed != offset:
            raise RuntimeError(f"committed {committed} after sending up to {offset}")
    done = ok_json(with_retry(lambda: http.post(f"/api/v1/uploads/{upload_id}/finish", json={}), retries), "Finish")
    done = wait_completed(lambda: ok_json(http.get(f"/api/v1/uploads/{upload_id}"), "GetUpload"), done)
    seconds = time.perf_counter() - t
    node = done["node"]
    if (node.get("sha256"), int(node.get("size", 0))) != (data.sha256, data.size):
        raise RuntimeError(f"REST upload stored {node.get('size')} bytes, sha256 {node.get('sha256')}")
    return {"seconds": seconds, "chunk": chunk, "node": node["id"], "retries": retries[0]}


def grpc_web_upload(http: Any, token: str, parent: str, name: str, data: Payload) -> dict[str, Any]:
    """CreateUpload, unary WriteUploadChunk calls at the advised chunk size, FinishUpload, GetUpload until
    COMPLETED: grpc-web frames over HTTP/1.1, as the web app sends them."""
    call = partial(common.grpc_web_call, http, token=token)
    t = time.perf_counter()
    up = call("CreateUpload", pb.CreateUploadRequest(parent_id=parent, name=name, size=data.size), pb.Upload)
    offset = 0
    for piece in data.pieces(up.chunk_size):
        req = pb.WriteUploadChunkRequest(upload_id=up.upload_id, offset=offset, data=piece)
        offset += len(piece)
        ack = call("WriteUploadChunk", req, pb.WriteUploadChunkResponse)
        if ack.committed_size != offset:
            raise RuntimeError(f"committed {ack.committed_size} after sending up to {offset}")
    done = call("FinishUpload", pb.FinishUploadRequest(upload_id=up.upload_id), pb.Upload)
    get = pb.GetUploadRequest(upload_id=up.upload_id)
    deadline = time.monotonic() + 600
    while done.state == pb.UPLOAD_STATE_FINISHING and time.monotonic() < deadline:
        time.sleep(0.01)
        done = call("GetUpload", get, pb.Upload)
    seconds = time.perf_counter() - t
    if done.state != pb.UPLOAD_STATE_COMPLETED or done.node.sha256 != data.sha256:
        raise RuntimeError(f"grpc-web upload ended {pb.UploadState.Name(done.state)} {done.failure}")
    return {"seconds": seconds, "chunk": up.chunk_size, "node": done.node.id}


def stream_chunk(up: Any) -> int:
    """The message size the server advises for UploadStream (chunk_size from a server older than the field)."""
    return int(getattr(up, "stream_chunk_size", 0) or up.chunk_size)


async def native_upload(
    client: common.Client, parent: str, name: str, data: Payload, stub_i: int = 0
) -> dict[str, Any]:
    """CreateUpload, one bidi UploadStream at the advised chunk size, FinishUpload until COMPLETED (native gRPC)."""
    stub = client.stub(stub_i)
    t = time.perf_counter()
    req = pb.CreateUploadRequest(parent_id=parent, name=name, size=data.size)
    up = await stub.CreateUpload(req, metadata=client.md, timeout=60)
    if stub_i == 0:
        stream_s = await client.upload_stream(up.upload_id, data.pieces(stream_chunk(up)), data.size)
        node, finish_s = await client.finish(up.upload_id)
    else:  # Client.upload_stream/finish use stub 0: the concurrent uploads each take their own connection

        def requests() -> Iterator[Any]:
            offset = 0
            for piece in data.pieces(stream_chunk(up)):
                yield pb.UploadStreamRequest(upload_id=up.upload_id if offset == 0 else "", offset=offset, data=piece)
                offset += len(piece)

        t1 = time.perf_counter()
        committed = 0
        async for ack in stub.UploadStream(requests(), metadata=client.md, timeout=max(300.0, data.size / MB)):
            committed = ack.committed_size
        if committed != data.size:
            raise RuntimeError(f"committed {committed} of {data.size}")
        stream_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        done = await stub.FinishUpload(pb.FinishUploadRequest(upload_id=up.upload_id), metadata=client.md, timeout=300)
        while done.state == pb.UPLOAD_STATE_FINISHING:
            await asyncio.sleep(0.01)
            done = await stub.GetUpload(pb.GetUploadRequest(upload_id=up.upload_id), metadata=client.md, timeout=60)
        if done.state != pb.UPLOAD_STATE_COMPLETED:
            raise RuntimeError(f"upload ended {pb.UploadState.Name(done.state)}: {done.failure}")
        node, finish_s = done.node, time.perf_counter() - t2
    seconds = time.perf_counter() - t
    if node.sha256 != data.sha256:
        raise RuntimeError(f"native upload stored sha256 {node.sha256}")
    return {"seconds": seconds, "chunk": stream_chunk(up), "node": node.id, "stream_s": stream_s, "finish_s": finish_s}


def curl_put(url: str, src: Path, size: int) -> float:
    out = common.curl(["-T", str(src), "-H", "Expect:", "-o", os.devnull, url], max(300.0, size / (10 * MB)))
    if out["http_code"] not in ("200", "201", "204") or int(out["size_upload"]) != size:
        raise RuntimeError(f"PUT {url}: {out}")
    return float(out["time_total"])


def curl_get(url: str, size: int, token: str = "") -> float:
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    out = common.curl([url, *auth, "-o", os.devnull], max(300.0, size / (10 * MB)))
    if out["http_code"] != "200" or int(out["size_download"]) != size:
        raise RuntimeError(f"GET {url}: {out}")
    return float(out["time_total"])


# -- sections ------------------------------------------------------------------------------------------------------


async def section_rss(b: Bench) -> None:
    """storage_svc's VmRSS/VmHWM during an --rss-mb native upload until COMPLETED, over its idle RSS just before."""
    pid = b.mesh.pids["storage"]
    data = Payload(b.args.rss_mb * MiB)
    b.client.relogin()
    folder = await b.client.folder("rss")
    warm = await native_upload(b.client, folder, "warm.bin", Payload(4 * MiB))  # code paths exist before "idle"
    await b.client.purge(warm["node"])
    await asyncio.sleep(2)
    idle = common.proc_status(pid)["VmRSS"]
    os.sync()
    with common.RssSampler(pid) as rss:
        up = await native_upload(b.client, folder, "big.bin", data)
    await b.client.purge(up["node"])
    b.res.raw["rss"] = {"bytes": data.size, "idle": idle, "peak": rss.peak, "hwm_reset": rss.hwm_reset, **up}


async def section_upload(b: Bench) -> None:
    args, client = b.args, b.client
    data = Payload(args.mb * MiB)
    src = b.base / "www" / "upload.bin"
    data.write(src)
    b.res.raw["payload_sha256"] = data.sha256
    client.relogin()
    folder = await client.folder("upload")
    probe = await client.stub().CreateUpload(
        pb.CreateUploadRequest(parent_id=folder, name="probe", size=data.size), metadata=client.md, timeout=30
    )
    await client.stub().AbortUpload(pb.AbortUploadRequest(upload_id=probe.upload_id), metadata=client.md)
    big_chunk = min(16 * MiB, probe.max_chunk_size)
    b.res.raw["advised_chunk"], b.res.raw["big_chunk"] = probe.chunk_size, big_chunk
    b.res.raw["stream_chunk"] = stream_chunk(probe)
    chunks = list(data.pieces(MiB))
    gib = data.size / GiB

    async def ceiling(run: int) -> None:
        common.quiesce(src)
        with b.meter() as m:
            write, _ = await common.ceiling(b.base, chunks, data.size)
        b.record("up_ceiling", write, m.used, gib)

    async def peer_put(which: str, run: int) -> None:
        url = (
            f"{b.copyparty.url}/up/r{run}.bin"
            if which == "copyparty"
            else f"http://127.0.0.1:{b.nginx.port}/put/r{run}.bin"
        )
        common.quiesce(src)
        with b.meter() as m:
            seconds = await asyncio.to_thread(curl_put, url, src, data.size)
        b.record(f"up_{which}", seconds, m.used, gib)
        stored = (b.copyparty.vol / "up" if which == "copyparty" else b.base / "www" / "put") / f"r{run}.bin"
        if stored.stat().st_size != data.size:
            raise RuntimeError(f"{which} stored {stored.stat().st_size} bytes")
        stored.unlink()

    async def rest(key: str, chunk: int, run: int) -> None:
        client.relogin()
        common.quiesce(src)
        with b.rest() as http:
            http.get("/api/v1/quota")  # the connection is open before the clock starts
            with b.meter() as m:
                out = await asyncio.to_thread(rest_upload, http, folder, f"{key}{run}.bin", data, chunk)
        b.record(key, out["seconds"], m.used, gib)
        b.res.raw.setdefault(f"{key}_retries", []).append(out["retries"])
        b.res.raw[f"{key}_chunk"] = out["chunk"]
        await client.purge(out["node"])

    async def grpc_web(run: int) -> None:
        client.relogin()
        common.quiesce(src)
        with b.rest() as http:
            http.get("/api/v1/quota")
            with b.meter() as m:
                out = await asyncio.to_thread(grpc_web_upload, http, client.token, folder, f"web{run}.bin", data)
        b.record("up_grpcweb", out["seconds"], m.used, gib)
        await client.purge(out["node"])

    async def native(run: int) -> None:
        client.relogin()
        await client.stub().GetQuota(pb.GetQuotaRequest(), metadata=client.md)  # connected before the clock starts
        common.quiesce(src)
        with b.meter() as m:
            out = await native_upload(client, folder, f"native{run}.bin", data)
        b.record("up_native", out["seconds"], m.used, gib)
        await client.purge(out["node"])

    # warm-up: every path once (connections, code paths, the JWKS cache)
    warm = Payload(min(8 * MiB, data.size))
    with b.rest() as http:
        await client.purge(rest_upload(http, folder, "warm-rest.bin", warm)["node"])
        await client.purge(grpc_web_upload(http, client.token, folder, "warm-web.bin", warm)["node"])
    await client.purge((await native_upload(client, folder, "warm-native.bin", warm))["node"])

    for run in range(args.runs):
        steps: list[Callable[[], Any]] = [
            partial(ceiling, run),
            partial(peer_put, "copyparty", run),
            partial(peer_put, "nginx", run),
            partial(rest, "up_rest", 0, run),
            partial(rest, "up_rest16", big_chunk, run),
            partial(grpc_web, run),
            partial(native, run),
        ]
        for step in steps if run % 2 == 0 else steps[::-1]:  # alternate the order: disk state favours no one
            await step()
        print(f"  upload: run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
    src.unlink()


async def section_finish(b: Bench) -> None:
    """FinishUpload → COMPLETED of an --mb upload (sent by native UploadStream, untimed) and of 1 KiB ones."""
    client = b.client
    data = Payload(b.args.mb * MiB)
    client.relogin()
    folder = await client.folder("finish")
    stub = client.stub()
    small = os.urandom(1024)
    for i in range(b.args.warmup + 20):
        up = await stub.CreateUpload(
            pb.CreateUploadRequest(parent_id=folder, name=f"s{i}", size=1024), metadata=client.md
        )
        await stub.WriteUploadChunk(
            pb.WriteUploadChunkRequest(upload_id=up.upload_id, offset=0, data=small), metadata=client.md
        )
        node, seconds = await client.finish(up.upload_id)
        if i >= b.args.warmup:
            b.record("finish_small", seconds)
    for run in range(b.args.runs):
        client.relogin()
        up = await stub.CreateUpload(
            pb.CreateUploadRequest(parent_id=folder, name=f"big{run}", size=data.size), metadata=client.md
        )
        await client.upload_stream(up.upload_id, data.pieces(stream_chunk(up)), data.size)
        os.sync()
        with b.meter() as m:
            node, seconds = await client.finish(up.upload_id)
        if node.sha256 != data.sha256:
            raise RuntimeError(f"finish stored sha256 {node.sha256}")
        b.record("finish_big", seconds, m.used)
        await client.purge(node.id)


def small_rest_single(http: Any, parent: str, name: str, content: bytes, retries: list[int]) -> float:
    body = {"parentId": parent, "name": name, "size": len(content), "content": base64.b64encode(content).decode()}
    t = time.perf_counter()
    r = with_retry(lambda: http.post("/api/v1/uploads", json=body), retries)
    seconds = time.perf_counter() - t
    state = ok_json(r, "CreateUpload with content").get("state")
    if state != "UPLOAD_STATE_COMPLETED":
        raise RuntimeError(f"single-call upload answered {state}")
    return seconds


def small_rest_three(http: Any, parent: str, name: str, content: bytes) -> float:
    t = time.perf_counter()
    up = ok_json(http.post("/api/v1/uploads", json={"parentId": parent, "name": name, "size": len(content)}), "create")
    headers = {"content-type": "application/octet-stream"}
    ok_json(
        http.put(f"/api/v1/uploads/{up['uploadId']}", params={"offset": "0"}, content=content, headers=headers), "PUT"
    )
    done = ok_json(http.post(f"/api/v1/uploads/{up['uploadId']}/finish", json={}), "finish")
    seconds = time.perf_counter() - t
    if done.get("state") != "UPLOAD_STATE_COMPLETED":
        raise RuntimeError(f"1 KiB finish answered {done.get('state')}")
    return seconds


def small_peer_put(http: Any, url: str, content: bytes) -> float:
    t = time.perf_counter()
    r = http.put(url, content=content)
    seconds = time.perf_counter() - t
    if r.status_code not in (200, 201, 204):
        raise RuntimeError(f"PUT {url}: HTTP {r.status_code}")
    return seconds


async def concurrent_small(b: Bench, content: bytes) -> None:
    """--clients sync clients at once, each its own user from its own loopback address (127.0.0.2, .3, ...), as
    separate machines are: the gateway's per-client limits (200 requests/s per address and per user) then apply to
    each, not to all together. Each sends CreateUpload with content (REST) as fast as it is answered, until
    --conc-files are done or 60 s pass."""
    import httpx

    users = await asyncio.gather(
        *(asyncio.to_thread(register_user, b.mesh.url, f"c{i}", f"127.0.0.{2 + i}") for i in range(b.args.clients))
    )
    counter = iter(range(b.args.conc_files))
    latencies: list[float] = []
    errors: list[str] = []
    retries = [0]
    deadline = time.monotonic() + 60

    async def worker(i: int, token: str) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + i}")
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=b.mesh.url, headers=headers, timeout=60, transport=transport) as http:
            await http.get("/api/v1/quota")
            for n in counter:
                if time.monotonic() > deadline:
                    return
                body = {"parentId": "root", "name": f"f{n:06d}", "size": len(content)}
                body["content"] = base64.b64encode(content).decode()
                t = time.perf_counter()
                r = await http.post("/api/v1/uploads", json=body)
                if r.status_code == 429:
                    retries[0] += 1
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code != 200 or r.json().get("state") != "UPLOAD_STATE_COMPLETED":
                    errors.append(f"HTTP {r.status_code} {r.text[:100]}")
                    continue
                latencies.append(time.perf_counter() - t)

    with b.meter() as m:
        t = time.perf_counter()
        await asyncio.gather(*(worker(i, token) for i, (_, token) in enumerate(users)))
        elapsed = time.perf_counter() - t
    done = len(latencies)
    b.res.raw["small_conc"] = {
        "files": done,
        "seconds": elapsed,
        "files_per_s": done / elapsed,
        "p50_ms": pct(latencies, 50) * 1000 if latencies else 0.0,
        "p95_ms": pct(latencies, 95) * 1000 if latencies else 0.0,
        "errors": len(errors),
        "error_samples": errors[:5],
        "rate_limited": retries[0],
    }
    b.res.cpu["small_conc"] = [{k: round(v / max(done, 1) * 1000, 3) for k, v in m.used.items()}]


def register_user(url: str, prefix: str, address: str) -> tuple[str, str]:
    """Register and log in a user from `address` (a loopback address of its own: auth_svc hashes at most one
    password at a time per client, and the gateway limits requests per address). Returns (email, access token)."""
    import httpx

    email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"
    creds = {"email": email, "password": common.PASSWORD}
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, timeout=60, transport=transport) as http:
        for path in ("/api/v1/auth/register", "/api/v1/auth/login"):
            r = with_retry(partial(http.post, path, json=creds), [0])
            if r.status_code != 200:
                raise RuntimeError(f"{path} from {address}: HTTP {r.status_code} {r.text[:200]}")
        return email, str(r.json()["accessToken"])


def storm_address(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


async def section_small(b: Bench) -> None:
    args, client = b.args, b.client
    content = os.urandom(1024)
    os.sync()
    b.res.raw["small_floor"] = await common.small_floor(b.base, content, min(args.small, 200))
    client.relogin()
    folder = await client.folder("small")
    three = await client.folder("small-three")
    (b.copyparty.vol / "small").mkdir()
    retries = [0]

    def sequential(key: str, fn: Callable[[int], float]) -> None:
        for i in range(args.warmup):
            fn(-1 - i)
        times = []
        with b.meter() as m:
            for i in range(args.small):
                times.append(fn(i))
        b.res.raw[key] = {"p50_ms": pct(times, 50) * 1000, "p95_ms": pct(times, 95) * 1000, "n": len(times)}
        b.res.cpu[key] = [{k: round(v / args.small * 1000, 3) for k, v in m.used.items()}]  # CPU-ms per file

    with b.rest() as http:
        sequential("small_single", lambda i: small_rest_single(http, folder, f"f{i}", content, retries))
        sequential("small_three", lambda i: small_rest_three(http, three, f"f{i}", content))
    b.res.raw["small_single_retries"] = retries[0]
    import httpx

    with httpx.Client(timeout=30) as http:
        sequential("small_copyparty", lambda i: small_peer_put(http, f"{b.copyparty.url}/small/f{i}.bin", content))
        nginx = f"http://127.0.0.1:{b.nginx.port}/put/small/f"
        sequential("small_nginx", lambda i: small_peer_put(http, f"{nginx}{i}.bin", content))
    await concurrent_small(b, content)


def timed_gets(http: Any, url: str, rounds: int, params: dict[str, str] | None = None) -> tuple[list[float], int]:
    """`rounds` GETs after 3 untimed, each timed to its last byte (httpx returns once the body is read)."""
    times, size = [], 0
    for i in range(rounds + 3):
        t = time.perf_counter()
        r = http.get(url, params=params)
        if i >= 3:
            times.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {r.status_code} {r.text[:200]}")
        size = len(r.content)
    return times, size


async def section_list(b: Bench) -> None:
    import httpx

    args, client = b.args, b.client
    n = args.entries
    client.relogin()
    folder = await client.folder(f"list-{n}")
    await common.fill_folder(client, folder, n)
    for root in (b.copyparty.vol / "list", b.base / "www" / "list" / "entries"):  # the same names as folders
        for i in range(n):
            (root / f"entry {i:05d}").mkdir(parents=True)
    client.relogin()
    rounds = args.list_rounds
    results: dict[str, Any] = {}

    def measure(key: str, fn: Callable[[], tuple[list[float], int]]) -> None:
        with b.meter() as m:
            times, size = fn()
        results[key] = {"p50_ms": pct(times, 50) * 1000, "p95_ms": pct(times, 95) * 1000, "bytes": size}
        b.res.cpu[f"list_{key}"] = [{k: round(v / (rounds + 3) * 1000, 3) for k, v in m.used.items()}]

    with b.rest() as http:
        params = {"page_size": str(n)}
        measure("rest", lambda: timed_gets(http, f"/api/v1/folders/{folder}/children", rounds, params))
        listed = ok_json(http.get(f"/api/v1/folders/{folder}/children", params=params), "list")
        if len(listed.get("nodes", [])) != n:
            raise RuntimeError(f"REST listed {len(listed.get('nodes', []))} of {n}")
        compact = {**params, "compact": "true"}  # the shared parent and owner once, set fields only
        measure("rest_compact", lambda: timed_gets(http, f"/api/v1/folders/{folder}/children", rounds, compact))
        listed = ok_json(http.get(f"/api/v1/folders/{folder}/children", params=compact), "list")
        if len(listed.get("nodes", [])) != n:
            raise RuntimeError(f"REST compact listed {len(listed.get('nodes', []))} of {n}")
        req = pb.ListChildrenRequest(folder_id=folder, page_size=n, compact=True)  # as the web app asks

        def grpc_web() -> tuple[list[float], int]:
            times, size = [], 0
            for i in range(rounds + 3):
                t = time.perf_counter()
                r = http.post(
                    "/flowdock.storage.v1.StorageService/ListChildren",
                    content=common.grpc_web_frame(req.SerializeToString()),
                    headers={**common.GRPC_WEB_HEADERS, "authorization": f"Bearer {client.token}"},
                )
                if i >= 3:
                    times.append(time.perf_counter() - t)
                answer = pb.ListChildrenResponse.FromString(common.grpc_web_parse(r.content, r.headers)[0])
                if len(answer.nodes) != n:
                    raise RuntimeError(f"grpc-web listed {len(answer.nodes)} of {n}")
                size = len(r.content)
            return times, size

        measure("grpcweb", grpc_web)
    with httpx.Client(timeout=30) as http:
        measure("copyparty", lambda: timed_gets(http, f"{b.copyparty.url}/list/", rounds, {"ls": ""}))
        listed_cp = http.get(f"{b.copyparty.url}/list/", params={"ls": ""}).json()
        if len(listed_cp["dirs"]) != n:
            raise RuntimeError(f"copyparty listed {len(listed_cp['dirs'])} of {n}")
        measure("nginx", lambda: timed_gets(http, f"http://127.0.0.1:{b.nginx.port}/list/entries/", rounds))
    b.res.raw["list"] = {"entries": n, "rounds": rounds, **results}


async def section_download(b: Bench) -> None:
    args, client = b.args, b.client
    data = Payload(args.mb * MiB)
    src = b.base / "www" / "download.bin"
    data.write(src)
    (b.copyparty.vol / "dl").mkdir()
    os.link(src, b.copyparty.vol / "dl" / "download.bin")  # the same inode: the same page cache pages
    client.relogin()
    folder = await client.folder("download")
    up = await native_upload(client, folder, "download.bin", data)
    urls = {
        "nginx": (f"http://127.0.0.1:{b.nginx.port}/download.bin", ""),
        "copyparty": (f"{b.copyparty.url}/dl/download.bin", ""),
        "rest": (f"{b.mesh.url}/api/v1/files/{up['node']}/content", "token"),
    }
    gib = data.size / GiB
    for run in range(args.runs):
        client.relogin()
        for url, token in urls.values():  # untimed: every source in the page cache (an upload may have dropped it)
            await asyncio.to_thread(curl_get, url, data.size, client.token if token else "")
        order = list(urls)
        for which in order if run % 2 == 0 else order[::-1]:
            url, token = urls[which]
            with b.meter() as m:
                seconds = await asyncio.to_thread(curl_get, url, data.size, client.token if token else "")
            b.record(f"down_{which}", seconds, m.used, gib)
    await client.purge(up["node"])
    src.unlink()


async def section_concurrent(b: Bench) -> None:
    args, client = b.args, b.client
    data = Payload(args.conc_mb * MiB)
    client.relogin()
    folder = await client.folder("concurrent")
    stubs = args.conc_uploads
    for i in range(stubs + 1):  # every connection open and warm before the clock starts
        await client.stub(i).GetQuota(pb.GetQuotaRequest(), metadata=client.md)
    os.sync()
    with b.meter() as m:
        single = await native_upload(client, folder, "single.bin", data, stub_i=stubs)
    b.res.cpu["conc_single"] = [m.used]
    await client.purge(single["node"])
    os.sync()
    with b.meter() as m:
        t = time.perf_counter()
        outcomes = await asyncio.gather(
            *(native_upload(client, folder, f"c{i:02d}.bin", data, stub_i=i) for i in range(stubs)),
            return_exceptions=True,
        )
        wall = time.perf_counter() - t
    b.res.cpu["conc_all"] = [m.used]
    done = [o for o in outcomes if isinstance(o, dict)]
    errors = [f"{type(o).__name__}: {str(o)[:200]}" for o in outcomes if not isinstance(o, dict)]
    for o in done:
        await client.purge(o["node"])
    b.res.raw["concurrent"] = {
        "uploads": stubs,
        "bytes_each": data.size,
        "single_s": single["seconds"],
        "wall_s": wall,
        "completed": len(done),
        "errors": len(errors),
        "error_samples": errors[:5],
        "each_p50_s": statistics.median(o["seconds"] for o in done) if done else 0.0,
        "each_max_s": max((o["seconds"] for o in done), default=0.0),
    }


async def section_storm(b: Bench) -> None:
    """One user lists a folder of --storm-entries (REST, page_size 1000) every 20 ms for --storm-seconds; then the
    same while --storm-users other users log in, --storm-rate logins per second in turn (REST login, each user from
    its own loopback address: other machines; a login refused because that user's previous one still hashes counts
    as refused)."""
    import httpx

    args, client = b.args, b.client
    client.relogin()
    folder = await client.folder("storm")
    await common.fill_folder(client, folder, args.storm_entries)
    others = await asyncio.gather(
        *(asyncio.to_thread(register_user, b.mesh.url, f"storm{i}", storm_address(i)) for i in range(args.storm_users))
    )
    client.relogin()

    def listing(seconds: float) -> list[float]:
        times = []
        with b.rest() as http:
            timed_gets(http, f"/api/v1/folders/{folder}/children", 0, {"page_size": "1000"})  # warm
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t = time.perf_counter()
                r = http.get(f"/api/v1/folders/{folder}/children", params={"page_size": "1000"})
                times.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise RuntimeError(f"listing under the storm: HTTP {r.status_code}")
                time.sleep(max(0.0, 0.02 - (time.perf_counter() - t)))
        return times

    with b.meter() as m:
        calm = await asyncio.to_thread(listing, args.storm_seconds)
    b.res.cpu["storm_calm"] = [{k: round(v / len(calm) * 1000, 3) for k, v in m.used.items()}]

    logins: list[float] = []
    failures: list[str] = []
    refused = [0]
    https = [  # one client per storm user, from that user's address
        httpx.Client(base_url=b.mesh.url, timeout=30, transport=httpx.HTTPTransport(local_address=storm_address(i)))
        for i in range(len(others))
    ]

    def one_login(i: int) -> None:
        t = time.perf_counter()
        try:
            r = https[i].post("/api/v1/auth/login", json={"email": others[i][0], "password": common.PASSWORD})
        except httpx.HTTPError as exc:
            failures.append(type(exc).__name__)
            return
        if r.status_code == 429:  # this user's previous login still hashing, or its address over its rate
            refused[0] += 1
        elif r.status_code != 200:
            failures.append(f"HTTP {r.status_code}")
        else:
            logins.append(time.perf_counter() - t)

    def storm(stop: threading.Event) -> tuple[int, float]:
        sent = 0
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            while not stop.is_set():
                due = start + sent / args.storm_rate
                if time.monotonic() < due:
                    stop.wait(due - time.monotonic())
                    continue
                pool.submit(one_login, sent % len(others))
                sent += 1
            seconds = time.monotonic() - start
        return sent, seconds

    stop = threading.Event()
    with b.meter() as m:
        storm_thread = asyncio.create_task(asyncio.to_thread(storm, stop))
        await asyncio.sleep(0.5)  # the storm is under way
        stormy = await asyncio.to_thread(listing, args.storm_seconds)
        stop.set()
        sent, storm_s = await storm_thread
    for http in https:
        http.close()
    b.res.cpu["storm_storm"] = [{k: round(v / len(stormy) * 1000, 3) for k, v in m.used.items()}]
    b.res.raw["storm"] = {
        "entries": args.storm_entries,
        "calm_p50_ms": pct(calm, 50) * 1000,
        "calm_p99_ms": pct(calm, 99) * 1000,
        "storm_p50_ms": pct(stormy, 50) * 1000,
        "storm_p99_ms": pct(stormy, 99) * 1000,
        "listings": [len(calm), len(stormy)],
        "logins_sent": sent,
        "logins_ok": len(logins),
        "login_failures": len(failures),
        "login_failure_samples": failures[:5],
        "logins_refused": refused[0],
        "storm_users": len(others),
        "login_p50_ms": pct(logins, 50) * 1000 if logins else 0.0,
        "storm_seconds": storm_s,
        "target_rate": args.storm_rate,
    }


# -- the table -----------------------------------------------------------------------------------------------------


def median_cpu(res: Results, key: str) -> dict[str, float] | None:
    items = res.cpu.get(key)
    if not items:
        return None
    return {k: statistics.median(d.get(k, 0.0) for d in items) for k in items[0]}


def table(args: argparse.Namespace, res: Results) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    raw = res.raw

    def row(key: str, what: str, value: str, ref: str = "", ratio: str = "", target: str = "", ok: bool | None = None,
            cpu: str = "") -> None:  # fmt: skip
        rows.append({"id": key, "measurement": what, "value": value, "reference": ref, "ratio": ratio,
                     "target": target, "verdict": "" if ok is None else common.verdict(ok), "cpu": cpu})  # fmt: skip

    def failed(section: str) -> str:
        return "FAILED: " + res.errors.get(section, "not measured")

    def cpu(key: str, unit: str) -> str:
        return common.cpu_text(median_cpu(res, key), unit)

    size = args.mb * MiB
    label = common.human_size(size)

    def rate(key: str, n: int = size) -> float | None:
        return n / statistics.median(raw[key]) / MB if raw.get(key) else None

    # uploads
    up_keys = ("up_ceiling", "up_copyparty", "up_nginx", "up_rest", "up_rest16", "up_grpcweb", "up_native")
    up = {k: rate(k) for k in up_keys}
    advised = common.human_size(raw.get("advised_chunk", 0))
    streamed = common.human_size(raw.get("stream_chunk", raw.get("advised_chunk", 0)))
    ceiling, copyparty = up["up_ceiling"], up["up_copyparty"]
    refs = [
        ("up_ceiling", f"{label} upload: AES-GCM+write+fsync in-process (ceiling, 1 MiB writes)"),
        ("up_copyparty", f"{label} upload: copyparty, one PUT (curl -T; sha512 inline, no fsync)"),
        ("up_nginx", f"{label} upload: nginx WebDAV, one PUT (curl -T; no fsync)"),
    ]
    for key, what in refs:
        row(key, what, f"{up[key]:.0f} MB/s" if up[key] else failed("upload"), cpu=cpu(key, "CPU-s/GiB"))

    def vs(key: str, ref: float | None, name: str) -> tuple[str, float | None]:
        value = up[key]
        return (f"{value / ref:.2f}x {name}", value / ref) if value and ref else ("", None)

    retries = raw.get("up_rest_retries", [])
    text, r1 = vs("up_rest", ceiling, "ceiling")
    text2, r2 = vs("up_rest", copyparty, "copyparty")
    value = f"{up['up_rest']:.0f} MB/s" if up["up_rest"] else failed("upload")
    if retries and max(retries):
        value += f" ({max(retries)} PUTs refused 429, retried)"
    row(
        "up_rest",
        f"{label} upload: REST, one PUT per advised chunk ({advised}), create → file id",
        value,
        "ceiling; copyparty",
        " · ".join(t for t in (text, text2) if t),
        f">= {TARGETS['rest_vs_ceiling']:.1f}x ceiling, >= {TARGETS['rest_vs_copyparty']:.1f}x copyparty",
        None if r1 is None or r2 is None else (r1 >= TARGETS["rest_vs_ceiling"] and r2 >= TARGETS["rest_vs_copyparty"]),
        cpu("up_rest", "CPU-s/GiB"),
    )
    text, r1 = vs("up_rest16", ceiling, "ceiling")
    big = common.human_size(raw.get("big_chunk", 16 * MiB))
    row(
        "up_rest16",
        f"{label} upload: REST, one PUT per {big} chunk, create → file id",
        f"{up['up_rest16']:.0f} MB/s" if up["up_rest16"] else failed("upload"),
        "ceiling",
        text,
        cpu=cpu("up_rest16", "CPU-s/GiB"),
    )
    for key, what, need in (
        ("up_grpcweb", f"grpc-web WriteUploadChunk ({advised} calls), create → file id", "grpcweb_vs_ceiling"),
        ("up_native", f"native bidi UploadStream ({streamed} messages), create → file id", "native_vs_ceiling"),
    ):
        text, r = vs(key, ceiling, "ceiling")
        row(
            key,
            f"{label} upload: {what}",
            f"{up[key]:.0f} MB/s" if up[key] else failed("upload"),
            "ceiling",
            text,
            f">= {TARGETS[need]:.1f}x ceiling",
            None if r is None else r >= TARGETS[need],
            cpu(key, "CPU-s/GiB"),
        )

    # finish
    if raw.get("finish_big") and raw.get("finish_small"):
        big_s, small_s = statistics.median(raw["finish_big"]), statistics.median(raw["finish_small"])
        per_gib = (big_s - small_s) / (size / GiB)
        row(
            "finish",
            f"FinishUpload → COMPLETED of {label} (scanning off), above a 1 KiB finish",
            f"{per_gib:.3f} s per GiB ({big_s:.3f} s vs {small_s * 1000:.1f} ms)",
            "1 KiB finish",
            "",
            f"<= {TARGETS['finish_s_per_gib']:.1f} s per GiB",
            per_gib <= TARGETS["finish_s_per_gib"],
            cpu("finish_big", "CPU-s"),
        )
    else:
        row("finish", f"FinishUpload of {label} (scanning off), above a 1 KiB finish", failed("finish"))

    # small files
    floor = raw.get("small_floor", {})
    single = raw.get("small_single")
    floor_text = f"floor {floor['plain']['p50_ms']:.2f} ms" if floor else ""
    if single:
        ok = single["p50_ms"] <= TARGETS["small_p50_ms"] and single["p95_ms"] <= TARGETS["small_p95_ms"]
        row(
            "small_single",
            "1 KiB file, REST CreateUpload with content (one call): latency, 1 client",
            f"p50 {single['p50_ms']:.2f} / p95 {single['p95_ms']:.2f} ms",
            floor_text,
            f"{single['p50_ms'] / floor['plain']['p50_ms']:.1f}x floor" if floor else "",
            f"p50 <= {TARGETS['small_p50_ms']}, p95 <= {TARGETS['small_p95_ms']:.0f} ms",
            ok,
            cpu("small_single", "CPU-ms/file"),
        )
    else:
        row("small_single", "1 KiB file, REST CreateUpload with content (one call)", failed("small"))
    for key, what in (
        ("plain", "plaintext create+write+fdatasync+rename+dir fsync"),
        ("enc", "EncryptedBlobStore"),
    ):
        f = floor.get(key)
        value = f"p50 {f['p50_ms']:.2f} / p95 {f['p95_ms']:.2f} ms" if f else failed("small")
        row(f"small_floor_{key}", f"1 KiB durable write in-process, {what} (floor, no network/DB)", value)
    for key, what in (
        ("small_three", "1 KiB file, REST create + PUT + finish (three calls): latency, 1 client"),
        ("small_copyparty", "1 KiB file, copyparty PUT (no fsync): latency, 1 client"),
        ("small_nginx", "1 KiB file, nginx WebDAV PUT (no fsync): latency, 1 client"),
    ):
        s = raw.get(key)
        value = f"p50 {s['p50_ms']:.2f} / p95 {s['p95_ms']:.2f} ms" if s else failed("small")
        row(key, what, value, cpu=cpu(key, "CPU-ms/file"))
    conc = raw.get("small_conc")
    if conc:
        value = f"{conc['files_per_s']:.0f} files/s (p50 {conc['p50_ms']:.1f} / p95 {conc['p95_ms']:.1f} ms)"
        if conc["errors"] or conc["rate_limited"]:
            value += f"; {conc['errors']} errors, {conc['rate_limited']} refused 429"
        row(
            "small_conc",
            f"1 KiB files, REST one call, {args.clients} concurrent clients (own user and address each)",
            value,
            "",
            "",
            f">= {TARGETS['files_per_s']:,.0f} files/s",
            conc["files_per_s"] >= TARGETS["files_per_s"] and conc["errors"] == 0,
            cpu("small_conc", "CPU-ms/file"),
        )
    else:
        row("small_conc", f"1 KiB files, {args.clients} concurrent clients", failed("small"))

    # listings
    lst = raw.get("list")
    n = args.entries
    if lst:
        rest, cp, web, ngx = lst["rest"], lst["copyparty"], lst["grpcweb"], lst["nginx"]
        per_entry = rest["bytes"] / n
        ok = rest["p50_ms"] <= cp["p50_ms"] and per_entry <= TARGETS["json_bytes_per_entry"]
        row(
            "list_rest",
            f"list {n:,} entries, REST, p50 (to last byte) and JSON per entry",
            f"p50 {rest['p50_ms']:.1f} / p95 {rest['p95_ms']:.1f} ms, {per_entry:.0f} B/entry",
            "copyparty",
            f"{rest['p50_ms'] / cp['p50_ms']:.2f}x copyparty's time",
            f"p50 <= copyparty, <= {TARGETS['json_bytes_per_entry']:.0f} B/entry",
            ok,
            cpu("list_rest", "CPU-ms/listing"),
        )
        if "rest_compact" in lst:  # runs before this option existed have no such row
            small = lst["rest_compact"]
            per_entry = small["bytes"] / n
            row(
                "list_rest_compact",
                f"list {n:,} entries, REST ?compact=true, p50 (to last byte) and JSON per entry",
                f"p50 {small['p50_ms']:.1f} / p95 {small['p95_ms']:.1f} ms, {per_entry:.0f} B/entry",
                "copyparty",
                f"{small['p50_ms'] / cp['p50_ms']:.2f}x copyparty's time",
                f"p50 <= copyparty, <= {TARGETS['json_bytes_per_entry']:.0f} B/entry",
                small["p50_ms"] <= cp["p50_ms"] and per_entry <= TARGETS["json_bytes_per_entry"],
                cpu("list_rest_compact", "CPU-ms/listing"),
            )
        row(
            "list_grpcweb",
            f"list {n:,} entries, grpc-web ListChildren (compact, as the web app), p50",
            f"p50 {web['p50_ms']:.1f} / p95 {web['p95_ms']:.1f} ms, {web['bytes'] / n:.0f} B/entry",
            "",
            "",
            f"p50 <= {TARGETS['grpcweb_list_p50_ms']:.0f} ms",
            web["p50_ms"] <= TARGETS["grpcweb_list_p50_ms"],
            cpu("list_grpcweb", "CPU-ms/listing"),
        )
        for key, what, s in (
            ("list_copyparty", "copyparty ?ls (JSON)", cp),
            ("list_nginx", "nginx autoindex JSON", ngx),
        ):
            row(
                key,
                f"list {n:,} entries, {what}, p50",
                f"p50 {s['p50_ms']:.1f} / p95 {s['p95_ms']:.1f} ms, {s['bytes'] / n:.0f} B/entry",
                cpu=cpu(key, "CPU-ms/listing"),
            )
    else:
        for key in ("list_rest", "list_grpcweb", "list_copyparty", "list_nginx"):
            row(key, f"list {n:,} entries ({key.split('_')[1]})", failed("list"))

    # downloads
    down = {k: rate(k) for k in ("down_nginx", "down_copyparty", "down_rest")}
    for key, what in (("down_nginx", "nginx sendfile → curl"), ("down_copyparty", "copyparty → curl")):
        row(key, f"{label} download: {what}", f"{down[key]:.0f} MB/s" if down[key] else failed("download"),
            cpu=cpu(key, "CPU-s/GiB"))  # fmt: skip
    if down["down_rest"] and down["down_nginx"] and down["down_copyparty"]:
        r1, r2 = down["down_rest"] / down["down_nginx"], down["down_rest"] / down["down_copyparty"]
        row(
            "down_rest",
            f"{label} download: REST GET /files/{{id}}/content → curl",
            f"{down['down_rest']:.0f} MB/s",
            "nginx; copyparty",
            f"{r1:.2f}x nginx · {r2:.2f}x copyparty",
            f">= {TARGETS['download_vs_nginx']:.1f}x nginx, >= {TARGETS['download_vs_copyparty']:.1f}x copyparty",
            r1 >= TARGETS["download_vs_nginx"] and r2 >= TARGETS["download_vs_copyparty"],
            cpu("down_rest", "CPU-s/GiB"),
        )
    else:
        row("down_rest", f"{label} download: REST", failed("download"))

    # many uploads at once
    c = raw.get("concurrent")
    if c:
        each = common.human_size(c["bytes_each"])
        single_rate = c["bytes_each"] / c["single_s"] / MB
        aggregate = c["completed"] * c["bytes_each"] / c["wall_s"] / MB
        row("conc_single", f"one {each} native upload alone, create → file id", f"{single_rate:.0f} MB/s",
            cpu=cpu("conc_single", "CPU-s"))  # fmt: skip
        row(
            "conc_all",
            f"{c['uploads']} x {each} native uploads at once, aggregate (create → file id)",
            f"{aggregate:.0f} MB/s, {c['errors']} errors "
            f"(each p50 {c['each_p50_s']:.1f} / max {c['each_max_s']:.1f} s)",
            "one alone",
            f"{aggregate / single_rate:.2f}x",
            f">= {TARGETS['concurrent_vs_single']:.1f}x, 0 errors",
            aggregate / single_rate >= TARGETS["concurrent_vs_single"] and c["errors"] == 0,
            cpu("conc_all", "CPU-s"),
        )
    else:
        row("conc_single", "one native upload alone", failed("concurrent"))
        row("conc_all", f"{args.conc_uploads} native uploads at once", failed("concurrent"))

    # login storm
    s = raw.get("storm")
    if s:
        row(
            "storm_calm",
            f"ListChildren (REST, {s['entries']} entries) every 20 ms, no storm",
            f"p50 {s['calm_p50_ms']:.1f} / p99 {s['calm_p99_ms']:.1f} ms (n={s['listings'][0]})",
            cpu=cpu("storm_calm", "CPU-ms/listing"),
        )
        ratio = s["storm_p99_ms"] / s["calm_p99_ms"]
        achieved = s["logins_ok"] / s["storm_seconds"]
        row(
            "storm",
            f"ListChildren p99 while other users log in ({s['target_rate']:.0f}/s asked)",
            f"p50 {s['storm_p50_ms']:.1f} / p99 {s['storm_p99_ms']:.1f} ms; logins {achieved:.0f}/s done "
            f"(p50 {s['login_p50_ms']:.0f} ms, {s['logins_refused']} refused 429, {s['login_failures']} failed)",
            "no storm",
            f"{ratio:.2f}x",
            f"p99 <= {TARGETS['storm_p99_ratio']:.0f}x",
            ratio <= TARGETS["storm_p99_ratio"],
            cpu("storm_storm", "CPU-ms/listing"),
        )
    else:
        row("storm_calm", "ListChildren p99 without a login storm", failed("storm"))
        row("storm", "ListChildren p99 under a login storm", failed("storm"))

    # memory
    rss = raw.get("rss")
    if rss:
        growth = (rss["peak"] - rss["idle"]) / MiB
        row(
            "rss",
            f"storage_svc RSS growth during a {common.human_size(rss['bytes'])} upload + finish (native)",
            f"peak {rss['peak'] / MiB:.0f} MiB, growth {growth:.0f} MiB",
            f"idle {rss['idle'] / MiB:.0f} MiB",
            "",
            f"growth <= {TARGETS['rss_growth_mib']:.0f} MiB",
            growth <= TARGETS["rss_growth_mib"],
        )
    else:
        row("rss", f"storage_svc RSS growth during a {common.human_size(args.rss_mb * MiB)} upload", failed("rss"))
    return [r for r in rows if row_section(r["id"]) in args.only]


def row_section(row_id: str) -> str:
    """The section (--only) a table row belongs to."""
    prefixes = {"up_": "upload", "down_": "download", "conc_": "concurrent", "list_": "list", "small_": "small"}
    return next((s for p, s in prefixes.items() if row_id.startswith(p)), row_id.split("_")[0])


# -- main ----------------------------------------------------------------------------------------------------------


async def run_sections(b: Bench) -> None:
    login_email = b.client.email
    common.login(b.mesh.url, login_email, register=True)
    b.client.relogin()
    functions = {
        "rss": section_rss,
        "upload": section_upload,
        "finish": section_finish,
        "small": section_small,
        "list": section_list,
        "download": section_download,
        "concurrent": section_concurrent,
        "storm": section_storm,
    }
    try:
        for name in SECTIONS:
            if name not in b.args.only:
                continue
            t = time.monotonic()
            try:
                await functions[name](b)
            except Exception as exc:  # report what was measured; say what failed
                first = (str(exc).strip().splitlines() or [""])[0]
                b.res.errors[name] = f"{type(exc).__name__}: {first[:200]}"
                traceback.print_exc()
            os.sync()
            print(f"  {name} done in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    finally:
        await b.client.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: 64 MiB transfers, 256 MiB RSS run (~1-2 min)"
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma list of sections: " + ",".join(SECTIONS))
    parser.add_argument("--mb", type=int, help="MiB per big transfer (1024; quick 64)")
    parser.add_argument("--rss-mb", type=int, help="MiB of the RSS upload (4096; quick 256)")
    parser.add_argument("--runs", type=int, help="runs of the big transfers and finish (median; 3, quick 1)")
    parser.add_argument("--small", type=int, help="1 KiB files timed one after another per path (300; quick 60)")
    parser.add_argument("--warmup", type=int, help="1 KiB files before timing (30; quick 10)")
    parser.add_argument("--clients", type=int, help="concurrent small-file clients (16)")
    parser.add_argument("--conc-files", type=int, help="1 KiB files the concurrent clients send (3000; quick 400)")
    parser.add_argument("--entries", type=int, help="entries of the listed folder (1000)")
    parser.add_argument("--list-rounds", type=int, help="listings timed per server (30; quick 15)")
    parser.add_argument("--conc-uploads", type=int, help="uploads at once (32)")
    parser.add_argument("--conc-mb", type=int, help="MiB each of them (64; quick 8)")
    parser.add_argument("--storm-rate", type=float, help="logins per second of the storm (50)")
    parser.add_argument(
        "--storm-seconds", type=float, help="seconds of listing without and with the storm (10; quick 4)"
    )
    parser.add_argument("--storm-users", type=int, help="users logging in, each from its own address (50)")
    parser.add_argument("--storm-entries", type=int, help="entries of the folder listed during the storm (100)")
    parser.add_argument("--db", default="", help="PostgreSQL base URL, e.g. postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--dir", default="", help="where the temp data goes (default: the system temp dir)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "paths.json"), help="JSON result path")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {','.join(SECTIONS)}")
    if args.clients > 250:
        parser.error("--clients: at most 250 (one loopback address each)")
    return args


def main() -> None:
    common.reexec_with_service_malloc()
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM as on Ctrl-C
    import logging

    logging.disable(logging.WARNING)  # the in-process keyring's first-use notice
    base = Path(tempfile.mkdtemp(prefix="flowdock-paths-bench-", dir=args.dir or None))
    db = common.bench_database(args.db)
    res = Results()
    mesh: common.Mesh | None = None
    nginx: common.Nginx | None = None
    copyparty: common.Copyparty | None = None
    started = time.monotonic()
    try:
        (base / "www" / "put").mkdir(parents=True)
        nginx = common.Nginx(base, base / "www")
        copyparty = common.Copyparty(base)
        mesh = common.Mesh.start(base / "data", base / "up.stderr", db, ENV)
        print(f"servers up in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        res.env = environment(args, mesh, nginx, copyparty)
        print(f"flowdock up ready at {mesh.url}; benchmarking in {base}", file=sys.stderr, flush=True)
        client = common.Client(mesh, f"paths-{uuid.uuid4().hex[:8]}@example.org")
        asyncio.run(run_sections(Bench(args, mesh, nginx, copyparty, base, res, client)))
    finally:
        stopping = time.monotonic()
        for server in (mesh, copyparty, nginx):
            if server is not None:
                server.stop()
        print(f"servers stopped in {time.monotonic() - stopping:.0f} s", file=sys.stderr, flush=True)
        shutil.rmtree(base, ignore_errors=True)
        common.drop_bench_databases(args.db, db)
    if common.CACHES_DROPPED:
        res.env["page cache before each upload"] = (
            "sync, clean cache dropped (vm.drop_caches=1), the source file re-read"
            if all(common.CACHES_DROPPED)
            else "sync only (no permission to drop the cache)"
        )
    res.env["wall seconds"] = round(time.monotonic() - started, 1)
    res.env["load average at end"] = common.load_average()
    rows = table(args, res)
    print("\nFlowDock paths benchmark, issue 15 (through `flowdock up` + Envoy, beside copyparty and nginx, loopback)")
    for key, value in res.env.items():
        print(f"  {key}: {value}")
    print("  MB/s = 10^6 bytes/s, KB = 1000 bytes; CPU: CPU-seconds per GiB moved (medians), CPU-ms per file or per")
    print("  listing, from /proc; client = this process; OTHER = CPU used meanwhile outside this benchmark")
    print()
    print(common.render(rows, "CPU per process"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"environment": res.env, "table": rows, "raw": res.raw, "cpu": res.cpu, "errors": res.errors}, indent=2
        )
    )
    print(f"\nJSON: {out}")
    if res.errors:
        print(f"errors: {res.errors}", file=sys.stderr)
        sys.exit(1)


def environment(
    args: argparse.Namespace, mesh: common.Mesh, nginx: common.Nginx, copyparty: common.Copyparty
) -> dict[str, Any]:
    return {
        **common.machine_environment(),
        "nginx": nginx.version.split("version: ")[-1],
        "copyparty": f"{copyparty.version} (PyPI; one process, sha512 of every PUT inline, no fsync)",
        "curl": common.command_version(["curl", "--version"]).split(" (")[0],
        "GLIBC_TUNABLES (client, services)": os.environ.get("GLIBC_TUNABLES", "(stock malloc)"),
        "database": "PostgreSQL (fresh database, dropped after)" if mesh.db else "SQLite (embedded)",
        "flowdock up processes": mesh.processes(),
        "gateway rate limits": "defaults: 200 requests/s per address and per user (burst 400), 2000/s in all",
        "virus scanning": mesh.virus_scanning,
        "mode": "quick" if args.quick else "full",
        "sections": ",".join(args.only),
        "runs (big transfers and finish, median; the order alternates)": args.runs,
        "data dir": str(mesh.data_dir),
        "load average at start": common.load_average(),
    }


if __name__ == "__main__":
    main()
