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
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    AUTH_ENV,
    CACHES_DROPPED,
    MB,
    Client,
    CpuMeter,
    Mesh,
    MiB,
    Nginx,
    Results,
    RssSampler,
    bench_database,
    ceiling,
    command_version,
    cpu_text,
    curl,
    drop_bench_databases,
    fill_folder,
    load_average,
    login,
    machine_environment,
    pct,
    proc_status,
    quiesce,
    reexec_with_service_malloc,
    render,
    small_floor,
    verdict,
    write_source,
)
from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402

# -- 1. big transfers --------------------------------------------------------------------------------------------


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


def environment(mesh: Mesh, nginx: Nginx, args: argparse.Namespace) -> dict[str, Any]:
    return {
        **machine_environment(),
        "nginx": nginx.version.split("version: ")[-1],
        "curl": command_version(["curl", "--version"]).split(" (")[0],
        "GLIBC_TUNABLES (client, services)": os.environ.get("GLIBC_TUNABLES", "(stock malloc)"),
        "database": "PostgreSQL" if mesh.db else "SQLite (embedded)",
        "service log level": AUTH_ENV["FLOWDOCK_LOG_LEVEL"] + " (Envoy access log on, as flowdock up runs it)",
        "gateway rate limit": "200 requests/s, burst 400 (gateway default, unchanged: caps request-rate rows)",
        "virus scanning": mesh.virus_scanning,
        "data dir": str(mesh.data_dir),
        "runs (big transfers, median)": args.runs,
        "load average at start": load_average(),
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
    reexec_with_service_malloc()
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
    db = bench_database(args.db)
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
        drop_bench_databases(args.db, db)
    if CACHES_DROPPED:
        res.env["page cache before each upload"] = (
            "sync, clean cache dropped (vm.drop_caches=1), curl's source re-read"
            if all(CACHES_DROPPED)
            else "sync only (no permission to drop the cache: results depend on what earlier work left cached)"
        )
    res.env["wall seconds"] = round(time.monotonic() - started, 1)
    res.env["load average at end"] = load_average()
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
