"""The web app in Chromium against the native Python SDK, through one `flowdock up` in the same run (issue 12).

    python bench/browser_bench.py [--size 1G] [--runs 1] [--entries 1000] [--rounds 10]
    python bench/browser_bench.py --size 64M --rounds 5          # a quick look (~1 min)

Starts its own `flowdock up` (fresh temp data dir, a free loopback port, `--no-scan`, the built app from
clients/web/dist), creates a verified account with `flowdock admin create-user`, and drives Debian's Chromium
(/usr/bin/chromium, never a downloaded browser) with the workspace's Playwright through bench/browser_bench.mjs:
1. --size (default 1 GiB) upload through the app's own file picker and upload queue (grpc-web: CreateUpload, unary
   WriteUploadChunk calls at the server's advised chunk size, FinishUpload, GetUpload until COMPLETED), timed from
   choosing the file to the queue row saying Done; and its download through the toolbar's Download button (the
   app's short-lived download URL; a browser download saved to disk), timed from the click to the last byte written.
   Next to them, in the same run, the native Python SDK (`flowdock_sdk.AsyncClient.upload` / `.download`: native
   gRPC through the same Envoy) moving the same file. CPU seconds per GiB of Envoy, storage_svc, the browser
   (Chromium's processes) and the others, from /proc.
2. First render of a folder of --entries entries (made with CreateFolder calls, setup): --rounds full navigations
   (`page.goto('/files/<id>')`, session in its cookie) after two warm-ups, each timed in the page from the
   navigation's start to the frame that shows the first rows; and the ListChildren call's own time (resource timing).
3. The JavaScript the browser loads for the first page (`/`, cold cache): the script responses Chromium received,
   fetched again with `accept-encoding: gzip` to count their gzip bytes.

Prints the environment and one table (measured, target, PASS/MISS); writes both, with every raw figure, to
bench/out/browser.json. MB/s = 10^6 bytes/s, KB = 1000 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common as common  # noqa: E402  (/proc helpers, clients, the environment block)
from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402
from flowdock_runtime.supervisor import MALLOC_TUNABLES  # noqa: E402

MB = 1_000_000
MiB = 1024 * 1024
GiB = 1024 * MiB
PASSWORD = common.PASSWORD
SCRIPT = ROOT / "bench" / "browser_bench.mjs"
WEB_DIST = ROOT / "clients" / "web" / "dist"
ENV = {  # one client IP logging in repeatedly; mail verification stays on (the account is made verified)
    "FLOWDOCK_AUTH_RATE_LOGIN_PER_IP": "1000000",
    "FLOWDOCK_AUTH_RATE_REGISTER_PER_IP": "1000000",
    "FLOWDOCK_AUTH_RATE_TOTP_PER_IP": "1000000",
    "FLOWDOCK_STORAGE_DEFAULT_QUOTA_BYTES": str(1024 * GiB),
    "FLOWDOCK_LOG_LEVEL": "warning",
}
TARGETS = {"upload_ratio": 0.5, "render_ms": 300.0, "initial_js_kb": 250.0}


def parse_size(text: str) -> int:
    """`1G`, `64M`, `512K` (binary units) or bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGkmg]?)(?:i?[Bb])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"size: {text!r} is not a size like 1G, 64M or 8388608")
    value = float(m.group(1)) * {"": 1, "K": 1024, "M": MiB, "G": GiB}[m.group(2).upper()]
    if value < 1:
        raise argparse.ArgumentTypeError("size: must be at least 1 byte")
    return int(value)


def write_source(path: Path, size: int) -> str:
    """`size` bytes: 64 random MiB repeated, each MiB stamped with its index (a chunk sent twice or to the wrong offset
    changes the digest); written and fsync'd here, SHA-256 returned."""
    blocks = [bytearray(os.urandom(MiB)) for _ in range(min(64, -(-size // MiB)))]
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left, n = size, 0
        while left > 0:
            block = blocks[n % len(blocks)]
            block[:8] = n.to_bytes(8, "little")
            part = bytes(block[: min(left, MiB)])
            f.write(part)
            digest.update(part)
            left -= len(part)
            n += 1
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest()


def warm(path: Path) -> None:
    """Before each upload (untimed): write back what earlier steps left dirty and read the source once, so the
    browser and the SDK both read it from the page cache."""
    os.sync()
    with open(path, "rb") as f:
        while f.read(8 * MiB):
            pass


# -- CPU accounting ------------------------------------------------------------------------------------------------


class Meter:
    """CPU seconds per side between two snapshots: services, Envoy, the browser (every process under the Playwright
    driver), the driver itself, this process (the native SDK) and OTHER (the rest of the machine)."""

    def __init__(self, mesh: common.Mesh, node_pid: int) -> None:
        self.mesh = mesh
        self.node_pid = node_pid
        self.start: dict[str, dict[int, float]] = {}
        self.used: dict[str, float] = {}

    def _groups(self) -> dict[str, list[int]]:
        groups = self.mesh.meter_pids()
        groups["browser"] = common.descendants(self.node_pid) if self.node_pid else []
        groups["driver"] = [self.node_pid] if self.node_pid else []
        return groups

    def _snap(self) -> dict[str, dict[int, float]]:
        snap = {name: {p: common.cpu_seconds(p) for p in pids} for name, pids in self._groups().items()}
        me = resource.getrusage(resource.RUSAGE_SELF)
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        snap["client"] = {0: me.ru_utime + me.ru_stime}
        snap["machine"] = {0: (sum(ticks) - ticks[3] - ticks[4]) / common.CLK_TCK}
        return snap

    def __enter__(self) -> Meter:
        self.start = self._snap()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snap()
        used = {
            name: round(sum(v - self.start.get(name, {}).get(p, 0.0) for p, v in pids.items()), 3)
            for name, pids in end.items()
        }
        used["other"] = round(max(0.0, used.pop("machine") - sum(used.values())), 3)
        # Chromium by process type (renderer: the page's JavaScript; utility: the network service; main: the browser
        # process), in the JSON only: which part of the browser the bytes cost.
        for p, v in end.get("browser", {}).items():
            key = f"browser:{chromium_type(p)}"
            used[key] = round(used.get(key, 0.0) + v - self.start.get("browser", {}).get(p, 0.0), 3)
        self.used = used


def chromium_type(pid: int) -> str:
    """Chromium rewrites its title into argv[0] with spaces: read `--type=` and `--utility-sub-type=` from the whole."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    kind = re.search(r"--type=(\S+)", cmdline)
    if kind is None:
        return "main"
    sub = re.search(r"--utility-sub-type=(\S+)", cmdline)
    return f"{kind.group(1)} {sub.group(1).rsplit('.', 1)[-1]}" if sub else kind.group(1)


# -- the system under test -----------------------------------------------------------------------------------------


def start_mesh(data_dir: Path, stderr_path: Path, public_port: int) -> common.Mesh:
    argv = [sys.executable, "-m", "flowdock_runtime", "up", "--data-dir", str(data_dir), "--port", str(public_port)]
    argv += ["--no-scan", "--web-dir", str(WEB_DIST)]
    env = {**os.environ, **ENV, "FLOWDOCK_AUTH_PUBLIC_URL": f"http://127.0.0.1:{public_port}"}
    env.pop("GLIBC_TUNABLES", None)  # flowdock up sets the services' own
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
    url = str(info["url"])
    return common.Mesh(proc, url, url.removeprefix("http://"), data_dir, info["pids"], stderr_path, "")


def create_user(data_dir: Path, email: str) -> None:
    """A verified account, as an operator makes one (`flowdock admin create-user`)."""
    argv = [sys.executable, "-m", "flowdock_runtime", "admin", "create-user", "--data-dir", str(data_dir)]
    argv += ["--email", email, "--password-stdin"]
    r = subprocess.run(argv, input=PASSWORD, capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise SystemExit(f"flowdock admin create-user failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


# -- results -------------------------------------------------------------------------------------------------------


@dataclass
class Results:
    env: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, value: Any, used: dict[str, float] | None = None) -> None:
        self.raw.setdefault(key, []).append(value)
        if used is not None:
            self.cpu.setdefault(key, []).append(used)


@dataclass
class Bench:
    args: argparse.Namespace
    mesh: common.Mesh
    base: Path
    source: Path
    sha256: str
    email: str
    res: Results
    client: Any = None  # flowdock_sdk.AsyncClient
    node_pid: int = 0
    native_nodes: dict[int, Any] = field(default_factory=dict)

    def meter(self) -> Meter:
        return Meter(self.mesh, self.node_pid)

    async def native_upload(self, run: int) -> None:
        warm(self.source)
        with self.meter() as m:
            t = time.perf_counter()
            nodes = await self.client.upload(self.source, f"/native-r{run}")
            seconds = time.perf_counter() - t
        assert len(nodes) == 1, nodes
        assert nodes[0].size == self.args.size, nodes
        self.native_nodes[run] = nodes[0]
        self.res.add("native_upload_s", seconds, m.used)
        print(f"  native SDK upload: {self.args.size / seconds / MB:.0f} MB/s", file=sys.stderr, flush=True)

    async def native_download(self, run: int) -> None:
        os.sync()
        dest = self.base / f"native-download-{run}.bin"
        with self.meter() as m:
            t = time.perf_counter()
            await self.client.download(self.native_nodes[run], dest)
            seconds = time.perf_counter() - t
        size = dest.stat().st_size
        dest.unlink()
        assert size == self.args.size, f"native download wrote {size} bytes of {self.args.size}"
        self.res.add("native_download_s", seconds, m.used)
        print(f"  native SDK download: {self.args.size / seconds / MB:.0f} MB/s", file=sys.stderr, flush=True)


async def setup(bench: Bench, runs: list[dict[str, Any]]) -> str:
    """The folders: one per run for each side, and the --entries folder (CreateFolder calls, paced below the gateway's
    rate limit). Returns the listing folder's id; learns the server's advised chunk size."""
    client = common.Client(bench.mesh, bench.email)
    client.relogin()
    try:
        for run in runs:
            run["folderId"] = await client.folder(f"browser-r{run['index']}")
        listing = await client.folder(f"{bench.args.entries} entries")
        t = time.perf_counter()
        await common.fill_folder(client, listing, bench.args.entries)
        bench.res.env["listing setup"] = (
            f"{bench.args.entries} folders by CreateFolder in {time.perf_counter() - t:.1f} s (paced at 150/s)"
        )
        up = await client.stub().CreateUpload(
            pb.CreateUploadRequest(parent_id="root", name="probe.bin", size=bench.args.size), metadata=client.md
        )
        bench.res.env["advised chunk (server)"] = (
            f"{common.human_size(up.chunk_size)} (max {common.human_size(up.max_chunk_size)}); "
            "the app sends it as advised"
        )
        bench.res.raw["chunk_size"] = up.chunk_size
        await client.stub().AbortUpload(pb.AbortUploadRequest(upload_id=up.upload_id), metadata=client.md)
    finally:
        await client.close()
    return listing


async def drive_browser(bench: Bench) -> None:
    """Run the Node script; answer its `ready` lines after the CPU snapshot (and the native reference, alternating
    which side goes first from run to run)."""
    from flowdock_sdk import AsyncClient

    args = bench.args
    runs = [{"index": i} for i in range(args.runs)]
    listing = await setup(bench, runs)
    bench.client = AsyncClient(bench.mesh.url, email=bench.email, password=PASSWORD, timeout=600)
    config = {
        "url": bench.mesh.url,
        "email": bench.email,
        "password": PASSWORD,
        "source": str(bench.source),
        "chromium": args.chromium,
        "runs": runs,
        "listFolderId": listing,
        "listRounds": args.rounds,
        "listWarmup": 2,
        "timeoutMs": int(max(300.0, args.size / (2 * MB)) * 1000),
    }
    cfg = bench.base / "browser.json"
    cfg.write_text(json.dumps(config))
    # Playwright's downloads and Chromium's profile. A short path of its own: Chromium's singleton socket lives there
    # and a unix socket path has at most 107 bytes (a deep --dir made Chromium abort at launch).
    tmp = Path(tempfile.mkdtemp(prefix="fdbb-"))
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}  # the browser as people run it
    env["TMPDIR"] = str(tmp)
    err = await asyncio.to_thread(open, bench.base / "node.stderr", "wb")
    with err:
        proc = await asyncio.create_subprocess_exec(
            args.node,
            str(SCRIPT),
            str(cfg),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
            limit=64 * MiB,
        )
    bench.node_pid = proc.pid
    assert proc.stdout is not None
    assert proc.stdin is not None
    meter: Meter | None = None
    finished = False
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=config["timeoutMs"] / 1000 + 120)
            if not line:
                break
            msg = json.loads(line)
            event, phase, run = msg["event"], msg.get("phase", ""), msg.get("run", 0)
            if event == "started":
                bench.res.env["chromium"] = f"{msg['browser']} ({args.chromium}, headless)"
                bench.res.env["playwright"] = f"{msg['playwright']} (clients/ lock file), node {msg['node']}"
            elif event == "scripts":
                bench.res.raw["scripts"] = msg["scripts"]
            elif event == "logged-in":
                print("browser logged in; measuring", file=sys.stderr, flush=True)
            elif event == "ready":
                native_first = native_first_of(run)
                if phase == "browser-upload":
                    if native_first:
                        await bench.native_upload(run)
                    warm(bench.source)
                elif phase == "browser-download":
                    if native_first:
                        await bench.native_download(run)
                    os.sync()
                meter = bench.meter().__enter__()
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            elif event == "done":
                assert meter is not None
                meter.__exit__()
                if phase == "listing":
                    bench.res.raw["listing"] = msg["results"]
                    bench.res.cpu["listing"] = [meter.used]
                    continue
                bench.res.add(f"{phase.replace('-', '_')}_s", msg["seconds"], meter.used)
                speed = args.size / msg["seconds"] / MB
                print(f"  {phase}: {speed:.0f} MB/s", file=sys.stderr, flush=True)
                if phase == "browser-upload":
                    calls = {k: msg[k] for k in ("chunks", "otherCalls", "chunkMs", "chunkGapMs")}
                    bench.res.add("browser_upload_calls", calls)
                    if not native_first_of(run):
                        await bench.native_upload(run)
            elif event == "checked":
                ok = msg["bytes"] == args.size and msg["sha256"] == bench.sha256
                assert ok, f"browser download: {msg['bytes']} bytes, sha256 {msg['sha256']} (expected {bench.sha256})"
                if not native_first_of(run):
                    await bench.native_download(run)
            elif event == "finished":
                finished = True
            elif event == "error":
                raise RuntimeError(f"browser script: {msg['message']}")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await bench.client.close()
        await asyncio.to_thread(shutil.rmtree, tmp, True)
    # The script's own word, not only its exit status: once (of several 1 GiB runs) asyncio's child watcher lost the
    # status ("Unknown child process pid ..., will report returncode 255") after every phase had reported.
    if not finished:
        tail = (bench.base / "node.stderr").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"browser script exited {proc.returncode}: {tail}")


def native_first_of(run: int) -> bool:
    return run % 2 == 0


def initial_js(bench: Bench) -> None:
    """The gzip size of every script Chromium fetched for `/`, as the gateway sends it to a gzip-only client."""
    import httpx

    rows = []
    with httpx.Client(timeout=30) as c:
        for s in bench.res.raw.get("scripts", []):
            sizes: dict[str, int] = {}
            for enc in ("gzip", "identity"):
                # raw bytes: what went over the wire (httpx would decode transparently)
                with c.stream("GET", s["url"], headers={"accept-encoding": enc}) as r:
                    raw = b"".join(r.iter_raw())
                    assert r.status_code == 200, (s["url"], r.status_code)
                    assert r.headers.get("content-encoding", "identity") == enc, (s["url"], r.headers)
                    sizes[enc] = len(raw)
            rows.append({**s, **sizes})
    bench.res.raw["initial_js"] = rows


# -- the table -----------------------------------------------------------------------------------------------------


def cpu_text(used: dict[str, float] | None, per: float, unit: str) -> str:
    if not used:
        return ""
    names = [("envoy", "envoy"), ("storage", "svc"), ("browser", "browser"), ("driver", "playwright")]
    names += [("client", "client"), ("mesh", "auth+share"), ("other", "OTHER")]
    parts = [f"{label} {used[k] / per:.2f}" for k, label in names if k in used and (used[k] >= 0.005 or k == "other")]
    return " · ".join(parts) + f" {unit}"


def median_cpu(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(d.get(k, 0.0) for d in items) for k in items[0]} if items else {}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def row(measurement: str, value: str, reference: str = "", ratio: str = "", target: str = "", ok: bool | None = None,
        cpu: str = "") -> dict[str, str]:  # fmt: skip
    return {
        "measurement": measurement,
        "value": value,
        "reference": reference,
        "ratio": ratio,
        "target": target,
        "verdict": "" if ok is None else verdict(ok),
        "cpu": cpu,
    }


def table(args: argparse.Namespace, res: Results) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    size, gib = args.size, args.size / GiB
    label = common.human_size(size)
    chunk = common.human_size(res.raw.get("chunk_size", 0))
    speeds: dict[str, float] = {}
    for key in ("native_upload_s", "browser_upload_s", "native_download_s", "browser_download_s"):
        if res.raw.get(key):
            speeds[key] = size / statistics.median(res.raw[key]) / MB

    def transfer(key: str, measurement: str, ref_key: str = "", target: str = "", need: float = 0.0) -> None:
        if key not in speeds:
            rows.append(row(measurement, "FAILED: " + res.errors.get("transfers", "not measured")))
            return
        ratio = speeds[key] / speeds[ref_key] if ref_key in speeds else 0.0
        rows.append(
            row(
                measurement,
                f"{speeds[key]:.0f} MB/s ({statistics.median(res.raw[key]):.1f} s)",
                "native SDK" if ref_key else "",
                f"{ratio:.2f}x" if ref_key in speeds else "",
                target,
                (ratio >= need) if target and ref_key in speeds else None,
                cpu_text(median_cpu(res.cpu.get(key, [])), gib, "CPU-s/GiB"),
            )
        )

    transfer(
        "browser_upload_s",
        f"{label} upload, Chromium, app's file picker → grpc-web WriteUploadChunk ({chunk}) → Done",
        "native_upload_s",
        f">= {TARGETS['upload_ratio']:.2f}x",
        TARGETS["upload_ratio"],
    )
    calls = res.raw.get("browser_upload_calls", [])
    if calls and calls[-1]["chunkMs"]:
        ms, gaps = calls[-1]["chunkMs"], calls[-1]["chunkGapMs"] or [0.0]
        rows.append(
            row(
                f"  … each WriteUploadChunk call ({calls[-1]['chunks']} calls; resource timing, last run)",
                f"p50 {statistics.median(ms):.1f} / p95 {common.pct(ms, 95):.1f} ms; "
                f"gap to the next p50 {statistics.median(gaps):.1f} ms",
            )
        )
    split = median_cpu(res.cpu.get("browser_upload_s", []))
    kinds = {k.split(":", 1)[1]: v for k, v in split.items() if k.startswith("browser:") and v / gib >= 0.05}
    if kinds:
        text = " · ".join(f"{k} {v / gib:.2f}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        rows.append(row("  … Chromium's CPU by process during the upload", f"{text} CPU-s/GiB"))
    transfer("native_upload_s", f"{label} upload, native Python SDK (UploadStream, incl. its SHA-256 pass) → done")
    transfer(
        "browser_download_s", f"{label} download, Chromium, app's Download button → file on disk", "native_download_s"
    )
    transfer("native_download_s", f"{label} download, native Python SDK (DownloadFile → file, SHA-256, fsync)")

    listing = [r for r in res.raw.get("listing", []) if not r["warmup"]]
    if listing:
        painted = [r["paintedAt"] for r in listing]
        p50, p95 = statistics.median(painted), common.pct(painted, 95)
        per = len(res.raw["listing"])
        loaded = min(r["rowCount"] for r in listing)
        rows.append(
            row(
                f"first render of a {args.entries:,}-entry folder: goto /files/<id> → first rows painted",
                f"p50 {p50:.0f} / p95 {p95:.0f} ms (n={len(listing)})",
                "",
                "",
                f"p50 <= {TARGETS['render_ms']:.0f} ms",
                p50 <= TARGETS["render_ms"],
                cpu_text(res.cpu["listing"][0], per / 1000, "CPU-ms/navigation"),
            )
        )
        # No per-process split here: Chromium may replace the page's renderer between navigations, and a process
        # that exits inside the phase takes its CPU time with it (the JSON keeps the split of those that lived).
        rows_in = [r["rowsAt"] for r in listing]
        rows.append(
            row(
                f"  … first rows in the DOM ({loaded} entries loaded, {listing[0]['rowsRendered']} rows rendered)",
                f"p50 {statistics.median(rows_in):.0f} / p95 {common.pct(rows_in, 95):.0f} ms",
            )
        )
        lists = [min((c for c in r["calls"] if c["method"].endswith("/ListChildren")), key=lambda c: c["start"])
                 for r in listing]  # fmt: skip
        ms = [c["ms"] for c in lists]
        rows.append(
            row(
                "  … its grpc-web ListChildren call (resource timing, request → last byte)",
                f"p50 {statistics.median(ms):.0f} / p95 {common.pct(ms, 95):.0f} ms "
                f"({lists[0]['bytes'] / 1000:.0f} KB)",
            )
        )
        # the critical path before the listing: document, script evaluation, session restore (Refresh, GetMe)
        dcl = statistics.median(r["domContentLoadedMs"] for r in listing)
        refresh = [c["start"] for r in listing for c in r["calls"] if c["method"].endswith("/Refresh")]
        sent = statistics.median(c["start"] for c in lists)
        done = statistics.median(c["end"] for c in lists)
        rows.append(
            row(
                "  … the path to it (p50, ms after navigation start)",
                f"DOMContentLoaded {dcl:.0f} · Refresh sent {statistics.median(refresh) if refresh else 0:.0f} · "
                f"ListChildren sent {sent:.0f}, answered {done:.0f}",
            )
        )
    else:
        rows.append(row(f"first render of a {args.entries:,}-entry folder", "FAILED: not measured"))

    scripts = res.raw.get("initial_js", [])
    if scripts:
        gz = sum(s["gzip"] for s in scripts) / 1000
        rows.append(
            row(
                f"initial JavaScript of / ({len(scripts)} scripts), gzip",
                f"{gz:.1f} KB (raw {sum(s['identity'] for s in scripts) / 1000:.0f} KB)",
                "",
                "",
                f"<= {TARGETS['initial_js_kb']:.0f} KB",
                gz <= TARGETS["initial_js_kb"],
            )
        )
        encodings = sorted({s["encoding"] for s in scripts})
        rows.append(
            row(
                f"  … as Chromium received it ({'/'.join(encodings)}, body bytes)",
                f"{sum(s['body'] for s in scripts) / 1000:.1f} KB",
            )
        )
    else:
        rows.append(row("initial JavaScript of /", "FAILED: not measured"))
    return rows


def render(rows: list[dict[str, str]]) -> str:
    cols = [("measurement", "measurement"), ("value", "result"), ("reference", "reference"), ("ratio", "ratio")]
    cols += [("target", "target"), ("verdict", ""), ("cpu", "CPU (per GiB moved or per navigation)")]
    width = {k: max(len(title), *(len(r[k]) for r in rows)) for k, title in cols}
    lines = ["| " + " | ".join(title.ljust(width[k]) for k, title in cols) + " |"]
    lines.append("|" + "|".join("-" * (width[k] + 2) for k, _ in cols) + "|")
    lines += ["| " + " | ".join(r[k].ljust(width[k]) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


def environment(args: argparse.Namespace, mesh: common.Mesh) -> dict[str, Any]:
    return {
        **common.machine_environment(),
        "database": "SQLite (embedded)",
        "virus scanning": "OFF: flowdock up --no-scan (no clamd in the bench)",
        "app": f"{WEB_DIST} (built by `npm --prefix clients run build`), served by flowdock up --web-dir",
        "native client malloc": os.environ.get("GLIBC_TUNABLES", "stock (as an SDK user runs it)"),
        "size": common.human_size(args.size),
        "runs (transfers, median; the side that goes first alternates)": args.runs,
        "data dir": str(mesh.data_dir),
        "load average at start": common.load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=GiB, help="transfer size: 1G (default), 64M, 8M, ...")
    parser.add_argument("--runs", type=int, default=1, help="transfer runs (median; the first side alternates)")
    parser.add_argument("--entries", type=int, default=1000, help="entries of the folder whose first render is timed")
    parser.add_argument("--rounds", type=int, default=10, help="timed navigations (after 2 warm-ups)")
    parser.add_argument("--chromium", default=os.environ.get("FLOWDOCK_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--node", default=shutil.which("node") or "node")
    parser.add_argument("--tuned-client", action="store_true", help="run the native SDK with flowdock up's malloc")
    parser.add_argument("--dir", default="", help="where the temp data goes (default: the system temp dir)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "browser.json"), help="JSON result path")
    args = parser.parse_args()
    if args.tuned_client and os.environ.get("GLIBC_TUNABLES") != MALLOC_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES})
    if not (WEB_DIST / "index.html").exists():
        raise SystemExit(f"{WEB_DIST} has no build: run `npm ci --prefix clients && npm --prefix clients run build`")
    if not Path(args.chromium).exists():
        raise SystemExit(f"no Chromium at {args.chromium} (Debian: apt-get install chromium; never a download)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    base = Path(tempfile.mkdtemp(prefix="flowdock-browser-bench-", dir=args.dir or None))
    res = Results()
    mesh: common.Mesh | None = None
    started = time.monotonic()
    try:
        source = base / f"bench-{args.size}.bin"
        sha = write_source(source, args.size)
        mesh = start_mesh(base / "data", base / "up.stderr", common.free_port())
        res.env = environment(args, mesh)
        email = f"browser-bench-{uuid.uuid4().hex[:8]}@example.org"
        create_user(mesh.data_dir, email)
        print(f"flowdock up ready at {mesh.url}; benchmarking in {base}", file=sys.stderr, flush=True)
        bench = Bench(args, mesh, base, source, sha, email, res)
        try:
            asyncio.run(drive_browser(bench))
        except Exception as exc:  # report what was measured; say what failed
            res.errors["transfers"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            traceback.print_exc()
        with contextlib.suppress(Exception):
            initial_js(bench)
    finally:
        if mesh is not None:
            # A restart inside a measured transfer skews its figures: the table says so rather than hiding it.
            res.env["restarts during the run"] = "; ".join(mesh.restarts) or "none"
            mesh.stop()
        shutil.rmtree(base, ignore_errors=True)
    res.env["wall seconds"] = round(time.monotonic() - started, 1)
    res.env["load average at end"] = common.load_average()
    rows = table(args, res)
    print("\nFlowDock browser benchmark (Chromium + the web app vs the native Python SDK, one `flowdock up`, loopback)")
    for key, value in res.env.items():
        print(f"  {key}: {value}")
    print("  MB/s = 10^6 bytes/s, KB = 1000 bytes; CPU: CPU-seconds per GiB moved (medians) or CPU-ms per navigation;")
    print("  browser = every Chromium process, playwright = its Node driver, client = this process (the native SDK),")
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
    if res.errors:
        print(f"errors: {res.errors}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
