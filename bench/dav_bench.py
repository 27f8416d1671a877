"""WebDAV (/dav/) next to REST in the same `flowdock up` run (issue 20, item 3): a big PUT and GET by curl both ways,
and PROPFIND depth 1 of a 1,000-entry folder next to the REST listing of the same folder.

Targets: /dav/ PUT and GET >= 0.7x the REST path's MB/s; PROPFIND depth 1 p50 <= 2x the REST listing's p50.
REST upload = POST /api/v1/uploads + curl -T PUT ?offset=0 + finish (polled until COMPLETED); /dav/ PUT = one
curl -T (it creates, streams and finishes). Downloads: curl -o /dev/null of each path.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MB,
    Mesh,
    MiB,
    bench_database,
    curl,
    drop_bench_databases,
    load_average,
    login,
    pct,
    render,
    verdict,
)


def rest_upload(http: httpx.Client, token: str, url: str, path: Path, name: str) -> float:
    size = path.stat().st_size
    t = time.perf_counter()
    up = http.post("/api/v1/uploads", json={"parent_id": "root", "name": name, "size": size}).json()
    out = curl(
        [
            "-o",
            "/dev/null",
            "-T",
            str(path),
            "-H",
            f"authorization: Bearer {token}",
            f"{url}/api/v1/uploads/{up['uploadId']}?offset=0",
        ],
        3600,
    )
    assert out["http_code"] == "200", out
    state = http.post(f"/api/v1/uploads/{up['uploadId']}/finish", json={}).json()
    while state["state"] == "UPLOAD_STATE_FINISHING":
        time.sleep(0.01)
        state = http.get(f"/api/v1/uploads/{up['uploadId']}").json()
    assert state["state"] == "UPLOAD_STATE_COMPLETED", state
    return time.perf_counter() - t


def dav_upload(token: str, url: str, path: Path, name: str) -> float:
    t = time.perf_counter()
    out = curl(["-o", "/dev/null", "-T", str(path), "-H", f"authorization: Bearer {token}", f"{url}/dav/{name}"], 3600)
    assert out["http_code"] in ("201", "204"), out
    return time.perf_counter() - t


def download(token: str, target: str) -> float:
    out = curl(["-o", "/dev/null", "-H", f"authorization: Bearer {token}", target], 3600)
    assert out["http_code"] == "200", out
    return float(out["time_total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="MiB of the big transfer (default 1024 = 1 GiB)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each transfer (median)")
    parser.add_argument("--entries", type=int, default=1000, help="entries of the listed folder")
    parser.add_argument("--rounds", type=int, default=30, help="listings timed per path")
    parser.add_argument("--db", default="", help="PostgreSQL base URL, e.g. postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix="flowdock-dav-bench-"))
    db = bench_database(args.db)
    mesh: Mesh | None = None
    rows: list[dict[str, str]] = []
    try:
        mesh = Mesh.start(base / "data", base / "up.stderr", db, {"FLOWDOCK_AUTH_ACCESS_TOKEN_TTL_SECONDS": "7200"})
        token = login(mesh.url, "dav-bench@example.org", register=True)
        http = httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {token}"}, timeout=600)
        src = base / "big.bin"
        with open(src, "wb") as f:
            block = os.urandom(MiB)
            for _ in range(args.mb):
                f.write(block)
        size = args.mb * MiB
        up_rest, up_dav, down_rest, down_dav = [], [], [], []
        for run in range(args.runs):
            up_rest.append(rest_upload(http, token, mesh.url, src, f"rest-{run}.bin"))
            up_dav.append(dav_upload(token, mesh.url, src, f"dav-{run}.bin"))
        file_id = next(
            n["id"] for n in http.get("/api/v1/folders/root/children").json()["nodes"] if n["name"] == "rest-0.bin"
        )
        for _ in range(args.runs):
            down_rest.append(download(token, f"{mesh.url}/api/v1/files/{file_id}/content"))
            down_dav.append(download(token, f"{mesh.url}/dav/dav-0.bin"))

        def mbs(seconds: list[float]) -> float:
            return size / MB / statistics.median(seconds)

        for what, dav, rest in (("PUT", up_dav, up_rest), ("GET", down_dav, down_rest)):
            ratio = mbs(dav) / mbs(rest)
            rows.append(
                {
                    "measurement": f"{what} {args.mb} MiB, /dav/ vs REST",
                    "value": f"{mbs(dav):.0f} MB/s",
                    "reference": f"{mbs(rest):.0f} MB/s",
                    "ratio": f"{ratio:.2f}x",
                    "target": ">= 0.7x",
                    "verdict": verdict(ratio >= 0.7),
                    "cpu": "",
                }
            )
        folder = http.post("/api/v1/folders", json={"parent_id": "root", "name": "many"}).json()["id"]
        for i in range(args.entries):
            content = base64.b64encode(b"x" * 100).decode()
            r = http.post(
                "/api/v1/uploads", json={"parent_id": folder, "name": f"f{i:05d}.txt", "size": 100, "content": content}
            )
            assert r.status_code == 200, r.text
        dav_times, rest_times = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            r = http.request("PROPFIND", "/dav/many/", headers={"Depth": "1"})
            dav_times.append(time.perf_counter() - t)
            assert r.status_code == 207
            assert r.content.count(b"<D:response") + r.content.count(b"<ns0:response") >= 1
            t = time.perf_counter()
            token_ = ""
            while True:
                page = http.get(
                    f"/api/v1/folders/{folder}/children", params={"page_size": 1000, "page_token": token_}
                ).json()
                token_ = page.get("nextPageToken", "")
                if not token_:
                    break
            rest_times.append(time.perf_counter() - t)
        p_dav, p_rest = pct(dav_times, 50) * 1000, pct(rest_times, 50) * 1000
        rows.append(
            {
                "measurement": f"PROPFIND depth 1, {args.entries} entries, p50",
                "value": f"{p_dav:.1f} ms",
                "reference": f"{p_rest:.1f} ms (REST listing)",
                "ratio": f"{p_dav / p_rest:.2f}x",
                "target": "<= 2x",
                "verdict": verdict(p_dav <= 2 * p_rest),
                "cpu": "",
            }
        )
    finally:
        if mesh is not None:
            mesh.stop()
        shutil.rmtree(base, ignore_errors=True)
        drop_bench_databases(args.db, db)
    print("\nFlowDock WebDAV benchmark (through `flowdock up` + Envoy, loopback, curl)")
    print(f"  load average at end: {load_average()}; runs: {args.runs} (medians)")
    print(render(rows, cpu_title=""))


if __name__ == "__main__":
    main()
