"""Load and soak through `flowdock up` + Envoy (issue 18 item 7): concurrent uploads and listings for a fixed time.

    python bench/load_bench.py                                   # 32 uploads of 64 MiB + 200 listings at once, 60 s
    python bench/load_bench.py --db postgresql://postgres@127.0.0.1:5432
    python bench/load_bench.py --soak 1800                       # the 30-minute soak: RSS of every process
    python bench/load_bench.py --blob-store s3                   # the same on a Swift all-in-one (S3 blob store)

Starts `flowdock up --no-scan` (a fresh temp data dir, a free loopback port, its defaults otherwise) and runs, all at
once until the time is up:
- `--uploaders` clients each uploading a `--upload-mb` file again and again (then deleting and purging it, so the disk
  stays bounded): even ones over native gRPC (CreateUpload, one UploadStream at the advised message size,
  FinishUpload, GetUpload until COMPLETED), odd ones over REST (CreateUpload, one PUT per advised chunk, finish);
  every file's SHA-256 and size are checked;
- `--listers` clients listing a folder of `--entries` entries again and again, half over REST
  (GET /api/v1/folders/{id}/children) and half over grpc-web (ListChildren, as the web app asks), the entry count
  checked each time.
Every client is its own machine as the gateway sees it: its own loopback address (127.0.x.y; native gRPC clients
excepted, as grpcio cannot choose a source address: they share 127.0.0.1, each on its own connection) and, for
uploaders, its own account (listers share `--list-users` accounts): the gateway's per-address and per-user rate
limits apply to each.
A refusal by those limits (HTTP 429 or RESOURCE_EXHAUSTED with Retry-After) is waited out as a client must and counted
apart; it is an error only if it is not honoured, which this bench always does. Every other failure (HTTP status,
gRPC status, timeout, a wrong size or hash, a wrong entry count) is an error, counted by class and printed.

RSS (VmRSS) of every process — each storage/auth/share replica, Envoy, `flowdock up` — is sampled every
`--sample-seconds`; growth is the median of the last minute's samples minus the median of the first minute's (a
quarter of the run each when it is shorter than four minutes), against `--rss-bound-mib` (64 MiB per process: the
RSS target storage_bench holds one 4 GiB upload to; a leak of a few KiB per request crosses it within the 30-minute
soak, while allocator caches and connection pools settle in the first minute). CPU per process from /proc over
the run (bench/_common.CpuMeter).

`--blob-store s3` starts an OpenStack Swift all-in-one first (tests/support/swift.py, the one the tests and
s3_bench.py use: proxy with s3api, account, container, one object server, memcached, on free loopback ports under
the temp dir) and gives `flowdock up` storage_blob_backend = s3 on a new bucket; Swift's processes are metered and
sampled with the rest (CPU "swift", RSS "swift", printed but not judged: not FlowDock's), and after the run the
objects left in the bucket are counted (every upload was purged and listed folders hold no bytes: 0 is right; a
staged object left behind is a leak).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common as common  # noqa: E402
from bench._common import MB, GiB, MiB, pct  # noqa: E402
from bench.paths_bench import Payload, register_user, stream_chunk, with_retry  # noqa: E402
from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402
from tests.support.swift import SwiftCluster, running_swift, swift_missing  # noqa: E402

ENV = {"FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(1024 * GiB)}
TOKEN_SECONDS = 240.0  # access tokens live 5 minutes: clients log in again before that (a soak lasts 30)
RETRY_CAP = 5.0  # longest Retry-After waited (the gateway says 1 s)
OBJECT_STORE_PROCESSES = ("swift",)  # sampled and metered with the rest, not judged


def address(i: int) -> str:
    """The i-th simulated client's own loopback address: 127.0.1.1, 127.0.1.2, ... (127.0.0.1 is the bench's)."""
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


@dataclass
class User:
    """An account, logged in from its own address; `token()` logs in again before the access token expires."""

    url: str
    email: str
    address: str
    access: str
    since: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    refresh_after: float = TOKEN_SECONDS
    refused: list[int] = field(default_factory=lambda: [0])  # logins refused 429 and retried
    logins: int = 0  # logins again after the first

    async def token(self) -> str:
        async with self.lock:
            if time.monotonic() - self.since > self.refresh_after:
                self.access = await asyncio.to_thread(self._login)
                self.since = time.monotonic()
                self.logins += 1
        return self.access

    def _login(self) -> str:
        """Log in again from the client's own address, waiting out refusals (auth_svc hashes one password at a
        time per client address: every client refreshing from 127.0.0.1 at once was refused, seen in a soak)."""
        import httpx

        creds = {"email": self.email, "password": common.PASSWORD}
        transport = httpx.HTTPTransport(local_address=self.address)
        with httpx.Client(base_url=self.url, timeout=60, transport=transport) as http:
            r = with_retry(partial(http.post, "/api/v1/auth/login", json=creds), self.refused)
        if r.status_code != 200:
            raise RuntimeError(f"login from {self.address}: HTTP {r.status_code} {r.text[:200]}")
        return str(r.json()["accessToken"])


@dataclass
class Tally:
    """What the clients saw: latencies per kind, errors by class (with a sample each), rate-limit waits."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    rate_limited: Counter[str] = field(default_factory=Counter)
    bytes_up: int = 0

    def ok(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)

    def error(self, kind: str, exc: BaseException) -> None:
        klass = f"{kind}: {error_class(exc)}"
        self.errors[klass] += 1
        self.samples.setdefault(klass, str(exc)[:300])


class RateLimited(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"rate limited, retry after {seconds} s")
        self.seconds = seconds


def error_class(exc: BaseException) -> str:
    import grpc
    import httpx

    if isinstance(exc, grpc.aio.AioRpcError):
        return f"gRPC {exc.code().name}"
    if isinstance(exc, httpx.HTTPError):
        return f"httpx {type(exc).__name__}"
    if isinstance(exc, HttpStatus):
        return f"HTTP {exc.status}"
    if isinstance(exc, common.GrpcWebError):
        return f"grpc-web {str(exc).split(':')[0]}"
    return type(exc).__name__


class HttpStatus(Exception):
    def __init__(self, status: int, what: str, text: str) -> None:
        super().__init__(f"{what}: HTTP {status} {text[:200]}")
        self.status = status


def retry_after(headers: Any) -> float:
    try:
        return min(RETRY_CAP, float(headers.get("retry-after", "1") or 1))
    except ValueError:
        return 1.0


async def honouring(kind: str, tally: Tally, call: Callable[[], Awaitable[Any]]) -> Any:
    """`call()` again after each rate-limit refusal, once its Retry-After has passed (counted, not an error)."""
    while True:
        try:
            return await call()
        except RateLimited as limited:
            tally.rate_limited[kind] += 1
            await asyncio.sleep(limited.seconds)


# -- clients ---------------------------------------------------------------------------------------------------------


async def rest_json(http: Any, user: User, method: str, path: str, what: str, **kw: Any) -> dict[str, Any]:
    """One REST call with the user's current access token (asked per call, as a client must: a 64 MiB upload under
    load outlasts the minute between a token's refresh and its expiry — seen in the soak as UNAUTHENTICATED)."""
    headers = {"authorization": f"Bearer {await user.token()}"}
    r = await http.request(method, path, headers=headers, **kw)
    if r.status_code == 429:
        raise RateLimited(retry_after(r.headers))
    if r.status_code != 200:
        raise HttpStatus(r.status_code, what, r.text)
    return dict(r.json())


async def rest_upload(http: Any, tally: Tally, user: User, parent: str, name: str, data: Payload) -> str:
    """Create, one PUT per advised chunk, finish, poll until COMPLETED; returns the node id."""
    call = partial(rest_json, http, user)
    body = {"parentId": parent, "name": name, "size": data.size}
    up = await honouring("upload", tally, lambda: call("POST", "/api/v1/uploads", "CreateUpload", json=body))
    upload_id, offset = up["uploadId"], 0
    for piece in data.pieces(int(up["chunkSize"])):
        put = partial(
            call,
            "PUT",
            f"/api/v1/uploads/{upload_id}",
            "PUT chunk",
            params={"offset": str(offset)},
            content=piece,
        )
        ack = await honouring("upload", tally, put)
        offset += len(piece)
        if int(ack["committedSize"]) != offset:
            raise RuntimeError(f"committed {ack['committedSize']} after sending up to {offset}")
    finish = partial(call, "POST", f"/api/v1/uploads/{upload_id}/finish", "Finish", json={})
    done = await honouring("upload", tally, finish)
    while done["state"] == "UPLOAD_STATE_FINISHING":
        await asyncio.sleep(0.1)
        done = await honouring("upload", tally, lambda: call("GET", f"/api/v1/uploads/{upload_id}", "GetUpload"))
    if done["state"] != "UPLOAD_STATE_COMPLETED":
        raise RuntimeError(f"REST upload ended {done['state']}: {done.get('failure', '')}")
    node = done["node"]
    if (node.get("sha256"), int(node.get("size", 0))) != (data.sha256, data.size):
        raise RuntimeError(f"REST upload stored {node.get('size')} bytes, sha256 {node.get('sha256')}")
    return str(node["id"])


async def rest_purge(http: Any, tally: Tally, user: User, node_id: str) -> None:
    call = partial(rest_json, http, user)
    await honouring("upload", tally, partial(call, "DELETE", f"/api/v1/nodes/{node_id}", "Delete"))
    await honouring("upload", tally, partial(call, "DELETE", f"/api/v1/trash/{node_id}", "Purge"))


def grpc_limited(exc: Any) -> RateLimited | None:
    import grpc

    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        md = dict(exc.trailing_metadata() or ()) | dict(exc.initial_metadata() or ())
        if "retry-after" in md or "x-envoy-ratelimited" in md or "rate limit" in (exc.details() or "").lower():
            return RateLimited(retry_after(md))
    return None


async def native(user: User, method: Any, request: Any, deadline_s: float) -> Any:
    """One unary call with the user's current access token (asked per call, as rest_json)."""
    try:
        return await method(request, metadata=[("authorization", f"Bearer {await user.token()}")], timeout=deadline_s)
    except Exception as exc:
        limited = grpc_limited(exc)
        if limited is not None:
            raise limited from exc
        raise


async def native_upload(stub: Any, tally: Tally, user: User, parent: str, name: str, data: Payload) -> str:
    req = pb.CreateUploadRequest(parent_id=parent, name=name, size=data.size)
    up = await honouring("upload", tally, lambda: native(user, stub.CreateUpload, req, 120))

    async def stream() -> int:
        def requests() -> Any:
            offset = 0
            for piece in data.pieces(stream_chunk(up)):
                yield pb.UploadStreamRequest(upload_id=up.upload_id if offset == 0 else "", offset=offset, data=piece)
                offset += len(piece)

        committed = 0
        md = [("authorization", f"Bearer {await user.token()}")]
        try:
            async for ack in stub.UploadStream(requests(), metadata=md, timeout=max(600.0, data.size / MB)):
                committed = ack.committed_size
        except Exception as exc:
            limited = grpc_limited(exc)
            if limited is not None:
                raise limited from exc
            raise
        return committed

    committed = await honouring("upload", tally, stream)
    if committed != data.size:
        raise RuntimeError(f"committed {committed} of {data.size}")
    finish = pb.FinishUploadRequest(upload_id=up.upload_id)
    done = await honouring("upload", tally, lambda: native(user, stub.FinishUpload, finish, 600))
    get = pb.GetUploadRequest(upload_id=up.upload_id)
    while done.state == pb.UPLOAD_STATE_FINISHING:
        await asyncio.sleep(0.1)
        done = await honouring("upload", tally, lambda: native(user, stub.GetUpload, get, 60))
    if done.state != pb.UPLOAD_STATE_COMPLETED:
        raise RuntimeError(f"native upload ended {pb.UploadState.Name(done.state)}: {done.failure}")
    if done.node.sha256 != data.sha256 or done.node.size != data.size:
        raise RuntimeError(f"native upload stored {done.node.size} bytes, sha256 {done.node.sha256}")
    return str(done.node.id)


async def native_purge(stub: Any, tally: Tally, user: User, node_id: str) -> None:
    delete, purge = pb.DeleteNodeRequest(node_id=node_id), pb.PurgeTrashRequest(node_id=node_id)
    await honouring("upload", tally, lambda: native(user, stub.DeleteNode, delete, 60))
    await honouring("upload", tally, lambda: native(user, stub.PurgeTrash, purge, 60))


async def uploader(i: int, user: User, url: str, data: Payload, tally: Tally, until: float) -> None:
    """Upload, check, delete and purge, again and again until `until`: native gRPC if `i` is even, else REST."""
    import grpc
    import httpx

    transport = httpx.AsyncHTTPTransport(local_address=address(i))
    host_port = url.removeprefix("http://")
    options = [
        ("grpc.max_send_message_length", common.BIG_MESSAGE),
        ("grpc.max_receive_message_length", common.BIG_MESSAGE),
        ("grpc.use_local_subchannel_pool", 1),  # a connection of its own
    ]
    async with httpx.AsyncClient(base_url=url, timeout=600, transport=transport) as http:
        channel = grpc.aio.insecure_channel(host_port, options=options)
        stub = storage_stub(channel)
        n = 0
        try:
            while time.monotonic() < until:
                kind = "upload native" if i % 2 == 0 else "upload REST"
                t = time.perf_counter()
                try:
                    name = f"load-{i:03d}-{n:05d}.bin"
                    if i % 2 == 0:
                        node = await native_upload(stub, tally, user, "root", name, data)
                    else:
                        node = await rest_upload(http, tally, user, "root", name, data)
                    tally.ok(kind, time.perf_counter() - t)
                    tally.bytes_up += data.size
                    if i % 2 == 0:
                        await native_purge(stub, tally, user, node)
                    else:
                        await rest_purge(http, tally, user, node)
                except Exception as exc:
                    tally.error(kind, exc)
                    await asyncio.sleep(0.5)  # a failing client does not spin
                n += 1
        finally:
            await channel.close()


def storage_stub(channel: Any) -> Any:
    from flowdock.storage.v1 import storage_pb2_grpc

    return storage_pb2_grpc.StorageServiceStub(channel)


async def lister(i: int, user: User, folder: str, url: str, entries: int, tally: Tally, until: float) -> None:
    """List `folder` again and again until `until`: REST if `i` is even, else grpc-web (compact, as the web app)."""
    import httpx

    transport = httpx.AsyncHTTPTransport(local_address=address(i))
    kind = "list REST" if i % 2 == 0 else "list grpc-web"
    req = pb.ListChildrenRequest(folder_id=folder, page_size=1000, compact=True).SerializeToString()
    async with httpx.AsyncClient(base_url=url, timeout=120, transport=transport) as http:

        async def rest() -> int:
            r = await http.get(
                f"/api/v1/folders/{folder}/children",
                params={"page_size": "1000"},
                headers={"authorization": f"Bearer {await user.token()}"},
            )
            if r.status_code == 429:
                raise RateLimited(retry_after(r.headers))
            if r.status_code != 200:
                raise HttpStatus(r.status_code, "ListChildren", r.text)
            return len(r.json().get("nodes", []))

        async def grpc_web() -> int:
            r = await http.post(
                "/flowdock.storage.v1.StorageService/ListChildren",
                content=common.grpc_web_frame(req),
                headers={**common.GRPC_WEB_HEADERS, "authorization": f"Bearer {await user.token()}"},
            )
            if r.status_code == 429 or r.headers.get("grpc-status") == "8":
                raise RateLimited(retry_after(r.headers))
            if r.status_code != 200:
                raise HttpStatus(r.status_code, "ListChildren (grpc-web)", r.text)
            return len(pb.ListChildrenResponse.FromString(common.grpc_web_parse(r.content, r.headers)[0]).nodes)

        call = rest if i % 2 == 0 else grpc_web
        while time.monotonic() < until:
            t = time.perf_counter()
            try:
                got = await honouring("list", tally, call)
                if got != entries:
                    raise RuntimeError(f"listed {got} of {entries} entries")
                tally.ok(kind, time.perf_counter() - t)
            except Exception as exc:
                tally.error(kind, exc)
                await asyncio.sleep(0.5)


# -- RSS -------------------------------------------------------------------------------------------------------------


def watched(mesh: common.Mesh, others: dict[str, list[int]]) -> dict[str, list[int]]:
    """Every process whose RSS is sampled: each replica by its name, Envoy (the processes under its launcher, and the
    launcher), `flowdock up` itself, and `others` (the object store's processes, when the bench started one)."""
    procs = {name: [pid] for name, pid in mesh.pids.items() if name != "gateway"}
    procs["envoy"] = [mesh.pids["gateway"], *mesh.envoy_pids]
    procs["flowdock up"] = [mesh.proc.pid]
    return procs | others


def bucket_left(swift: SwiftCluster, bucket: str) -> dict[str, int]:
    """Objects in the bucket by first path part (uploads/, data/, blobs/). Swift's auth may refuse for a while
    after a load (memcached error-limited): tried again for up to 90 s, then the failure is the answer."""
    import httpx

    deadline = time.monotonic() + 90
    while True:
        try:
            return dict(Counter(name.split("/", 1)[0] for name in swift.objects(bucket)))
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                return {f"(could not list: {exc})": 1}
            time.sleep(2)


def swift_pids(swift: SwiftCluster) -> list[int]:
    """Every process of the bench's Swift (its servers and memcached, and any worker they forked)."""
    pids = [p.pid for p in swift.procs.values()]
    return pids + [child for pid in pids for child in common.descendants(pid)]


class RssLog:
    """VmRSS (MiB, summed over a name's processes) of every watched process every `every` seconds, in a thread."""

    def __init__(self, procs: dict[str, list[int]], every: float) -> None:
        import threading

        self.procs = procs
        self.every = every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while True:
            row: dict[str, float] = {}
            for name, pids in self.procs.items():
                total = 0
                for pid in pids:
                    with contextlib.suppress(OSError, KeyError):
                        total += common.proc_status(pid)["VmRSS"]
                row[name] = total / MiB
            self.samples.append((time.monotonic() - start, row))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> RssLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def curve(self, parts: int = 6) -> dict[str, list[float | None]]:
        """Per process: the median of each `parts`-th of the run (None: no sample in it), so a plateau (or a slope)
        shows, not just the ends."""
        end = self.samples[-1][0] if self.samples else 0.0
        out: dict[str, list[float | None]] = {}
        for name in self.procs:
            out[name] = []
            for k in range(parts):
                lo, hi = end * k / parts, end * (k + 1) / parts
                part = [r[name] for t, r in self.samples if lo <= t <= hi]
                out[name].append(round(statistics.median(part), 1) if part else None)
        return out

    def growth(self, window: float) -> dict[str, dict[str, float]]:
        """Per process: median of the first `window` seconds, of the last, growth, peak."""
        end = self.samples[-1][0] if self.samples else 0.0
        out = {}
        for name in self.procs:
            first = [r[name] for t, r in self.samples if t <= window] or [0.0]
            last = [r[name] for t, r in self.samples if t >= end - window] or [0.0]
            out[name] = {
                "first_mib": statistics.median(first),
                "last_mib": statistics.median(last),
                "growth_mib": statistics.median(last) - statistics.median(first),
                "peak_mib": max((r[name] for _, r in self.samples), default=0.0),
            }
        return out


# -- the run ---------------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, mesh: common.Mesh, others: dict[str, list[int]]) -> dict[str, Any]:
    url = mesh.url
    print(f"registering {args.uploaders} uploaders and {args.list_users} listing accounts", file=sys.stderr, flush=True)
    sem = asyncio.Semaphore(4)  # Argon2 on a shared machine: a few at a time

    async def account(prefix: str, i: int) -> User:
        async with sem:
            email, token = await asyncio.to_thread(register_user, url, prefix, address(i))
        return User(url, email, address(i), token, refresh_after=args.token_seconds)

    uploaders = await asyncio.gather(*(account("up", i) for i in range(args.uploaders)))
    list_users = await asyncio.gather(*(account("ls", args.uploaders + i) for i in range(args.list_users)))
    folders = []
    for user in list_users:  # each listing account's folder of --entries entries (paced as the gateway allows)
        client = common.Client(mesh, user.email, user.access)
        folder = await client.folder("listed")
        await common.fill_folder(client, folder, args.entries, workers=4)
        await client.close()
        folders.append(folder)
    data = Payload(args.upload_mb * MiB)
    tally = Tally()
    duration = float(args.soak or args.seconds)
    print(
        f"load: {args.uploaders} uploaders x {args.upload_mb} MiB, {args.listers} listers of {args.entries} entries, "
        f"{duration:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    load_start = common.load_average()
    meter_pids = mesh.meter_pids() | others
    with common.CpuMeter(meter_pids) as meter, RssLog(watched(mesh, others), args.sample_seconds) as rss:
        t = time.perf_counter()
        until = time.monotonic() + duration
        base = args.uploaders + args.list_users
        await asyncio.gather(
            *(uploader(i, uploaders[i], url, data, tally, until) for i in range(args.uploaders)),
            *(
                lister(
                    base + i,
                    list_users[i % args.list_users],
                    folders[i % args.list_users],
                    url,
                    args.entries,
                    tally,
                    until,
                )
                for i in range(args.listers)
            ),
        )
        wall = time.perf_counter() - t
    window = min(60.0, duration / 4)
    return {
        "seconds": wall,
        "load_at_start": load_start,
        "load_at_end": common.load_average(),
        "latencies": tally.latencies,
        "errors": dict(tally.errors),
        "error_samples": tally.samples,
        "rate_limited": {
            k: n
            for k, n in {**tally.rate_limited, "login": sum(u.refused[0] for u in [*uploaders, *list_users])}.items()
            if n
        },
        "logins": sum(u.logins for u in [*uploaders, *list_users]),
        "bytes_up": tally.bytes_up,
        "cpu": meter.used,
        "rss_window_s": window,
        "rss": rss.growth(window),
        "rss_curve": rss.curve(),
        "rss_samples": len(rss.samples),
    }


def table(args: argparse.Namespace, raw: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    seconds = raw["seconds"]

    def row(key: str, what: str, value: str, target: str = "", ok: bool | None = None, cpu: str = "") -> None:
        rows.append(
            {
                "id": key,
                "measurement": what,
                "value": value,
                "reference": "",
                "ratio": "",
                "target": target,
                "verdict": "" if ok is None else common.verdict(ok),
                "cpu": cpu,
            }
        )

    errors = raw["errors"]
    for kind in ("upload native", "upload REST", "list REST", "list grpc-web"):
        lat = raw["latencies"].get(kind, [])
        failed = sum(n for k, n in errors.items() if k.startswith(kind + ":"))
        unit, scale = ("s", 1.0) if kind.startswith("upload") else ("ms", 1000.0)
        value = (
            f"{len(lat)} done, p50 {pct(lat, 50) * scale:.{1 if unit == 's' else 0}f} / "
            f"p99 {pct(lat, 99) * scale:.{1 if unit == 's' else 0}f} {unit}, {failed} errors"
            if lat
            else f"0 done, {failed} errors"
        )
        what = f"{kind} ({'per file' if unit == 's' else 'per listing'})"
        key = kind.lower().replace(" ", "_").replace("-", "")
        row(key, what, value, "> 0 done, 0 errors", bool(lat) and failed == 0)
    done = sum(len(v) for k, v in raw["latencies"].items() if k.startswith("upload"))
    row(
        "upload_rate",
        f"uploads of {args.upload_mb} MiB, all clients",
        f"{done} files, {raw['bytes_up'] / seconds / MB:.0f} MB/s over {seconds:.0f} s",
    )
    listed = sum(len(v) for k, v in raw["latencies"].items() if k.startswith("list"))
    row("list_rate", "listings, all clients", f"{listed / seconds:.0f} listings/s")
    total_errors = sum(errors.values())
    classes = ", ".join(f"{k} x{n}" for k, n in sorted(errors.items()))
    row(
        "errors",
        "errors of every class (printed below)",
        f"{total_errors}" + (f": {classes}" if errors else ""),
        "0",
        total_errors == 0,
    )
    limited = raw["rate_limited"]
    waits = ", ".join(f"{k} {n}" for k, n in sorted(limited.items()))
    row(
        "rate_limited",
        "rate-limit refusals waited out (Retry-After honoured)",
        f"{sum(limited.values())}" + (f" ({waits})" if limited else ""),
    )
    cpu = raw["cpu"]
    row("cpu", "CPU-seconds per process over the run", f"{seconds:.0f} s wall", cpu=common.cpu_text(cpu, "s"))
    bound = args.rss_bound_mib
    window = raw["rss_window_s"]
    for name, g in raw["rss"].items():
        # A verdict only for a soak: in a short run the first window is the ramp-up (buffers, pools and caches
        # filling as the clients connect), not a leak; the row is still printed. The object store's processes are
        # printed, never judged: they are not FlowDock's.
        ours = name not in OBJECT_STORE_PROCESSES
        row(
            f"rss_{name.replace(' ', '_').replace('-', '_')}",
            f"RSS {name}: median of the last {window:.0f} s - of the first {window:.0f} s",
            f"{g['growth_mib']:+.1f} MiB ({g['first_mib']:.0f} -> {g['last_mib']:.0f} MiB, peak {g['peak_mib']:.0f})",
            (f"<= {bound:g} MiB" if args.soak else f"(soak: <= {bound:g} MiB)") if ours else "(not FlowDock's)",
            g["growth_mib"] <= bound if args.soak and ours else None,
        )
    if "bucket_left" in raw:
        left = raw["bucket_left"]
        kinds = ", ".join(f"{k}/ {n}" for k, n in sorted(left.items()))
        row(
            "bucket_left",
            "objects left in the bucket after the run (every upload purged)",
            f"{sum(left.values())}" + (f" ({kinds})" if left else ""),
            "0",
            not left,
        )
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs (60)")
    parser.add_argument("--soak", type=float, default=0.0, help="soak: run this many seconds instead (1800 = 30 min)")
    parser.add_argument("--uploaders", type=int, default=32, help="concurrent uploading clients (32)")
    parser.add_argument("--upload-mb", type=int, default=64, help="MiB of each upload (64)")
    parser.add_argument("--listers", type=int, default=200, help="concurrent listing clients (200)")
    parser.add_argument("--list-users", type=int, default=20, help="accounts the listing clients share (20)")
    parser.add_argument("--entries", type=int, default=100, help="entries of each listed folder (100)")
    parser.add_argument(
        "--token-seconds", type=float, default=TOKEN_SECONDS, help="log in again after this long (240; tokens live 300)"
    )
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling interval (5)")
    parser.add_argument("--rss-bound-mib", type=float, default=64.0, help="allowed RSS growth per process (64)")
    parser.add_argument("--db", default="", help="PostgreSQL base URL, e.g. postgresql://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--blob-store",
        choices=("local", "s3"),
        default="local",
        help="where storage_svc keeps the bytes: local disk (default) or S3 on a Swift all-in-one this bench starts",
    )
    parser.add_argument("--dir", default="", help="where the temp data goes (default: the system temp dir)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "load.json"), help="JSON result path")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (the services' logs) afterwards")
    args = parser.parse_args()
    if args.uploaders + args.list_users + args.listers > 250 * 250:
        parser.error("too many clients for the loopback addresses")
    if args.list_users < 1 or args.list_users > args.listers:
        parser.error("--list-users: between 1 and --listers")
    if args.blob_store == "s3" and (problem := swift_missing()):
        parser.error(f"--blob-store s3 needs Swift: {problem}")
    return args


def main() -> None:
    common.reexec_with_service_malloc()
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix="flowdock-load-bench-", dir=args.dir or None))
    db = common.bench_database(args.db)
    mesh: common.Mesh | None = None
    started = time.monotonic()
    env: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    failure = ""
    stores = contextlib.ExitStack()
    swift: SwiftCluster | None = None
    bucket = ""
    try:
        settings = dict(ENV)
        store = "local disk (encrypted blobs in the data dir)"
        if args.blob_store == "s3":
            swift = stores.enter_context(running_swift(base / "swift"))
            bucket = swift.new_bucket()
            settings |= swift.s3_env(bucket)
            store = (
                f"S3 (storage_blob_backend = s3, bucket {bucket}) on an OpenStack Swift all-in-one at "
                f"{swift.endpoint} started by the bench in {swift.start_seconds:.1f} s: proxy with s3api, account, "
                "container, 1 object server (1 replica), memcached, one process each (workers = 0), same cores"
            )
        mesh = common.Mesh.start(base / "data", base / "up.stderr", db, settings)
        env = {
            **common.machine_environment(),
            "GLIBC_TUNABLES (client, services)": os.environ.get("GLIBC_TUNABLES", "(stock malloc)"),
            "database": "PostgreSQL (fresh database, dropped after)" if mesh.db else "SQLite (embedded)",
            "blob store": store,
            "flowdock up processes": mesh.processes(),
            "gateway rate limits": "defaults: 200 requests/s per address and per user (burst 400), 2000/s in all",
            "virus scanning": mesh.virus_scanning,
            "mode": f"soak {args.soak:.0f} s" if args.soak else f"load {args.seconds:.0f} s",
            "clients": f"{args.uploaders} uploaders ({args.upload_mb} MiB files, native and REST alternating), "
            f"{args.listers} listers ({args.entries} entries, REST and grpc-web alternating, {args.list_users} "
            "accounts), each client from its own loopback address",
            "data dir": str(mesh.data_dir),
        }
        print(f"flowdock up ready at {mesh.url}; load in {base}", file=sys.stderr, flush=True)
        raw = asyncio.run(run(args, mesh, {"swift": swift_pids(swift)} if swift else {}))
        env["load average at start of the load"] = raw["load_at_start"]
        env["load average at end of the load"] = raw["load_at_end"]
        env["services restarted by flowdock up"] = "; ".join(mesh.restarts) or "none"
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if mesh is not None:
            mesh.stop()
        try:
            if swift is not None and raw:  # what the stopped mesh left in the bucket (staged or blob objects)
                raw["bucket_left"] = bucket_left(swift, bucket)
        finally:
            stores.close()
        if args.keep:
            print(f"kept {base} (logs in data/logs/)", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
        common.drop_bench_databases(args.db, db)
        if failure:
            print(f"load bench failed: {failure}", file=sys.stderr)
    env["wall seconds"] = round(time.monotonic() - started, 1)
    rows = table(args, raw)
    print("\nFlowDock load benchmark, issue 18 item 7 (through `flowdock up` + Envoy, loopback)")
    for key, value in env.items():
        print(f"  {key}: {value}")
    print("  MB/s = 10^6 bytes/s; CPU from /proc over the run; client = this process; OTHER = outside the benchmark")
    print()
    print(common.render(rows, "CPU per process"))
    if args.soak:
        print("\nRSS over the run (MiB, median of each sixth of it):")
        for name, medians in raw["rss_curve"].items():
            print(f"  {name:<14} " + "  ".join(f"{m:7.1f}" if m is not None else "      -" for m in medians))
    if raw["errors"]:
        print("\nerrors by class (one sample each):")
        for klass, n in sorted(raw["errors"].items()):
            print(f"  {klass} x{n}: {raw['error_samples'][klass]}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "table": rows, "raw": raw}, indent=2, default=str))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
