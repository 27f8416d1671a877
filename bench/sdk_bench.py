"""SDK transfer throughput through Envoy next to the raw generated stubs, same file size, same run.

    python bench/sdk_bench.py [--mb 256] [--runs 3] [--server http://127.0.0.1:8080]

Without --server it starts its own `flowdock up` (SQLite, virus scanning off, in a temporary directory).
raw: the generated stubs on one grpc.aio channel, bytes from memory, 1 MiB UploadStream chunks (the SHA-256
declared at CreateUpload is computed before the clock starts), FinishUpload + polling; DownloadFile into memory.
sdk: `flowdock_sdk.AsyncClient.upload` / `download` of a file on disk: it hashes the file first, streams it,
finishes; downloads write a temp file, hash, fsync and rename. Medians of --runs; MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowdock.storage.v1 import storage_pb2 as pb  # noqa: E402
from flowdock.storage.v1 import storage_pb2_grpc  # noqa: E402
from flowdock_sdk import AsyncClient  # noqa: E402
from flowdock_sdk._session import RpcSession  # noqa: E402

MB = 1_000_000
MiB = 1024 * 1024
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "FLOWDOCK_AUTH_REQUIRE_VERIFIED_EMAIL": "false",
        "FLOWDOCK_STORAGE_VIRUS_SCAN": "off",
        "FLOWDOCK_AUTH_RATE_LOGIN_PER_IP": "100000",
        "FLOWDOCK_AUTH_RATE_REGISTER_PER_IP": "100000",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdock_cli", "up", "--data-dir", str(data), "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info = data / "run" / "up.json"
    deadline = time.monotonic() + 120
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("flowdock up did not start")
        time.sleep(0.1)
    return proc, str(json.loads(info.read_text())["url"])


async def raw_round(host_port: str, token: str, data: bytes, sha: str, name: str) -> tuple[float, float]:
    md = (("authorization", f"Bearer {token}"),)
    opts = [("grpc.max_send_message_length", 64 * MiB), ("grpc.max_receive_message_length", 64 * MiB)]
    async with grpc.aio.insecure_channel(host_port, options=opts) as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        t0 = time.perf_counter()
        up = await stub.CreateUpload(
            pb.CreateUploadRequest(parent_id="root", name=name, size=len(data), sha256=sha), metadata=md
        )

        async def chunks():  # type: ignore[no-untyped-def]
            for off in range(0, len(data), MiB):
                yield pb.UploadStreamRequest(upload_id=up.upload_id, offset=off, data=data[off : off + MiB])

        async for _ack in stub.UploadStream(chunks(), metadata=md):
            pass
        done = await stub.FinishUpload(pb.FinishUploadRequest(upload_id=up.upload_id), metadata=md)
        while done.state == pb.UPLOAD_STATE_FINISHING:
            await asyncio.sleep(0.05)
            done = await stub.GetUpload(pb.GetUploadRequest(upload_id=up.upload_id), metadata=md)
        assert done.state == pb.UPLOAD_STATE_COMPLETED, done.failure
        upload_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = 0
        async for part in stub.DownloadFile(pb.DownloadFileRequest(file_id=done.node.id), metadata=md):
            got += len(part.data)
        download_s = time.perf_counter() - t0
        assert got == len(data)
        await stub.DeleteNode(pb.DeleteNodeRequest(node_id=done.node.id), metadata=md)
        await stub.EmptyTrash(pb.EmptyTrashRequest(), metadata=md)
    return upload_s, download_s


async def sdk_round(client: AsyncClient, path: Path, out: Path, folder: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    [node] = await client.upload(path, folder)
    upload_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await client.download(node, out / f"{folder.strip('/')}.bin")
    download_s = time.perf_counter() - t0
    await client.delete(folder)
    await client.empty_trash()
    return upload_s, download_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", default="", help="an already running gateway (default: start flowdock up)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        proc = None
        url = args.server
        if not url:
            proc, url = start(tmp / "data")
        try:
            email = f"bench{uuid.uuid4().hex[:8]}@example.org"
            async with AsyncClient(url) as anonymous:
                await anonymous.register(email, PASSWORD)
            data = os.urandom(args.mb * MiB)
            sha = hashlib.sha256(data).hexdigest()
            path = tmp / "bench.bin"
            path.write_bytes(data)
            out = tmp / "out"
            out.mkdir()
            results: dict[str, list[tuple[float, float]]] = {"raw": [], "sdk": []}
            raw = RpcSession(url, email=email, password=PASSWORD)  # the same account's token for the raw stubs
            async with AsyncClient(url, email=email, password=PASSWORD) as client:
                await client.authenticate()
                for run in range(args.runs):
                    token = await raw.token()
                    results["raw"].append(
                        await raw_round(url.removeprefix("http://"), token, data, sha, f"raw-{run}.bin")
                    )
                    results["sdk"].append(await sdk_round(client, path, out, f"/sdk-{run}"))
                    for f in out.iterdir():
                        f.unlink()
            await raw.close()
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    size_mb = args.mb * MiB / MB
    print(f"{args.mb} MiB file, {args.runs} runs, medians, through Envoy (native gRPC), MB/s = 10^6 B/s")
    print(f"{'path':<6} {'upload MB/s':>12} {'download MB/s':>14}")
    rates = {}
    for name, rows in results.items():
        up = size_mb / statistics.median(r[0] for r in rows)
        down = size_mb / statistics.median(r[1] for r in rows)
        rates[name] = (up, down)
        print(f"{name:<6} {up:>12.1f} {down:>14.1f}")
    print(f"sdk/raw: upload {rates['sdk'][0] / rates['raw'][0]:.2f}, download {rates['sdk'][1] / rates['raw'][1]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
