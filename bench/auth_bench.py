"""Auth benchmark: login p50/p95 (Argon2id dominates), refresh p50, the per-request cost of token
verification in the authentication interceptor (µs), and HTTP Basic as the WebDAV service checks it on every
request (AuthenticateBasic with an app password, beside the account password's Argon2 path), on this machine.

    python bench/auth_bench.py [--logins 40] [--refreshes 200] [--verifications 20000] [--db postgresql://...]

Login and refresh go through `flowdock up` (Envoy + auth_svc, REST, one client, sequential); AuthenticateBasic goes
to auth_svc directly with the `dav_svc` mesh identity, as the WebDAV service calls it; the interceptor cost is
measured in-process on the real CallInterceptor with warm key and session caches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start(data: Path, db: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "FLOWDOCK_AUTH_REQUIRE_VERIFIED_EMAIL": "false",
        "FLOWDOCK_AUTH_RATE_LOGIN_PER_IP": "1000000",
        "FLOWDOCK_AUTH_RATE_REGISTER_PER_IP": "1000000",
        # Only so the account password's Basic path can be measured beside the app password's (default: off).
        "FLOWDOCK_AUTH_BASIC_ALLOW_ACCOUNT_PASSWORD": "true",
        "FLOWDOCK_LOG_LEVEL": "warning",
    }
    argv = [sys.executable, "-m", "flowdock_runtime", "up", "--data-dir", str(data), "--port", "0"]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv[-1] = str(port)
    if db:
        argv += ["--db", db]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    info = data / "run" / "up.json"
    deadline = time.monotonic() + 120
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"flowdock up failed: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    return proc, json.loads(info.read_text())["url"]


def http_bench(url: str, logins: int, refreshes: int) -> dict[str, float]:
    email, password = f"bench{uuid.uuid4().hex[:8]}@example.org", "correct horse battery staple"
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": password}).status_code == 200
        for _ in range(3):  # warm-up
            c.post("/api/v1/auth/login", json={"email": email, "password": password})
        login_ms = []
        for _ in range(logins):
            t = time.perf_counter()
            r = c.post("/api/v1/auth/login", json={"email": email, "password": password})
            login_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
        refresh = r.json()["refreshToken"]
        refresh_ms = []
        for _ in range(refreshes):
            t = time.perf_counter()
            r = c.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
            refresh_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
            refresh = r.json()["refreshToken"]
        token = r.json()["accessToken"]
        me_ms = []
        for _ in range(refreshes):
            t = time.perf_counter()
            assert c.get("/api/v1/me", headers={"authorization": f"Bearer {token}"}).status_code == 200
            me_ms.append((time.perf_counter() - t) * 1000)
    return {
        "login_p50_ms": pct(login_ms, 50),
        "login_p95_ms": pct(login_ms, 95),
        "refresh_p50_ms": pct(refresh_ms, 50),
        "refresh_p95_ms": pct(refresh_ms, 95),
        "get_me_p50_ms": pct(me_ms, 50),
    }


def basic_bench(data: Path, url: str, rounds: int) -> dict[str, float]:
    """AuthenticateBasic p50/p95: an app password (SHA-256 + one indexed lookup) and the account password (Argon2id),
    sequential, the end client's address varied as the WebDAV service would report it."""
    import grpc

    from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
    from flowdock_kernel import mesh

    email, password = f"basic{uuid.uuid4().hex[:8]}@example.org", "correct horse battery staple"
    with httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": password}).status_code == 200
        token = c.post("/api/v1/auth/login", json={"email": email, "password": password}).json()["accessToken"]
        made = c.post(
            "/api/v1/me/app-passwords", json={"name": "bench"}, headers={"authorization": f"Bearer {token}"}
        ).json()
    folder = data / "mesh"
    mesh.issue(folder, "dav_svc")
    files = mesh.MeshTls.in_folder(folder, "dav_svc")
    creds = grpc.ssl_channel_credentials(
        files.ca_file.read_bytes(), files.key_file.read_bytes(), files.cert_file.read_bytes()
    )
    address = json.loads((data / "run" / "up.json").read_text())["services"]["auth"].split(",")[0]
    out: dict[str, float] = {}
    with grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", "auth_svc")]) as channel:
        stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
        for name, secret, n in (("app_password", made["secret"], rounds), ("account_password", password, 20)):
            times = []
            for i in range(n + 3):
                request = auth_pb2.AuthenticateBasicRequest(
                    email=email, password=secret, client_address=f"192.0.2.{i % 200}"
                )
                t = time.perf_counter()
                stub.AuthenticateBasic(request, timeout=30)
                if i >= 3:  # warm-up
                    times.append((time.perf_counter() - t) * 1000)
            out[f"basic_{name}_p50_ms"] = pct(times, 50)
            out[f"basic_{name}_p95_ms"] = pct(times, 95)
    out["basic_password_vs_app_x"] = out["basic_account_password_p50_ms"] / out["basic_app_password_p50_ms"]
    return out


def argon2_ms(rounds: int = 10) -> float:
    from auth_svc.adapters import Argon2Hasher

    hasher = Argon2Hasher(memory_kib=19456, time_cost=2, parallelism=1)
    stored = hasher.hash("correct horse battery staple")
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        hasher.verify(stored, "correct horse battery staple")
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def interceptor_us(n: int) -> dict[str, float]:
    """The real CallInterceptor (call context, metrics and authentication) on a protected method (keys and session
    answer cached): a token seen before (verified-token cache hit) and one seen for the first time (signature
    verified)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from flowdock_kernel.interceptors import CallInterceptor
    from flowdock_kernel.tokens import KeyCache, SessionCache, verify_access_token

    key = Ed25519PrivateKey.generate()
    keys = {"k1": key.public_key()}
    now = int(time.time())
    claims = {"iss": "flowdock", "aud": "flowdock", "sub": "u", "sid": "s", "role": "user",
              "iat": now, "nbf": now, "exp": now + 300}  # fmt: skip
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})

    async def fetch() -> Any:
        return keys

    async def alive(_sid: str) -> bool:
        return True

    def make(max_verified: int) -> CallInterceptor:
        return CallInterceptor(
            "bench",
            [],
            KeyCache(fetch, ttl=3600, sessions=SessionCache(alive, ttl=3600)),
            issuer="flowdock",
            audience="flowdock",
            max_verified=max_verified,
        )

    interceptor, cold = make(10_000), make(0)

    class Ctx:
        def invocation_metadata(self) -> Any:
            return (("authorization", f"Bearer {token}"),)

        def peer(self) -> str:
            return "ipv4:127.0.0.1:40000"

    async def handler(_request: Any, _context: Any) -> None:
        return None

    ctx = Ctx()
    for _ in range(200):
        await interceptor.intercept(handler, None, ctx, "/x.Y/Z")  # type: ignore[arg-type]
    t = time.perf_counter()
    for _ in range(n):
        await interceptor.intercept(handler, None, ctx, "/x.Y/Z")  # type: ignore[arg-type]
    full = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for _ in range(n):
        await cold.intercept(handler, None, ctx, "/x.Y/Z")  # type: ignore[arg-type]
    first_sight = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for _ in range(n):
        verify_access_token(token, keys, issuer="flowdock", audience="flowdock")
    verify = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for _ in range(n):
        await handler(None, ctx)
    bare = (time.perf_counter() - t) / n * 1e6
    return {
        "interceptor_us": full - bare,  # steady state: token already verified once by this process
        "interceptor_first_us": first_sight - bare,  # a token this process has not seen: signature checked
        "verify_only_us": verify,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--refreshes", type=int, default=200)
    parser.add_argument("--verifications", type=int, default=20000)
    parser.add_argument("--db", default="", help="PostgreSQL base URL (default: embedded SQLite)")
    args = parser.parse_args()
    results: dict[str, float] = {"argon2id_verify_ms": argon2_ms()}
    results.update(asyncio.run(interceptor_us(args.verifications)))
    with tempfile.TemporaryDirectory() as tmp:
        db = f"{args.db.rstrip('/')}/fdbench_{uuid.uuid4().hex[:6]}" if args.db else ""
        proc, url = start(Path(tmp), db)
        try:
            results.update(http_bench(url, args.logins, args.refreshes))
            results.update(basic_bench(Path(tmp), url, args.refreshes))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        if db:
            import psycopg

            with psycopg.connect(f"{args.db.rstrip('/')}/postgres", autocommit=True) as conn:
                for svc in ("auth", "storage", "share"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db.rsplit("/", 1)[1]}_{svc}" WITH (FORCE)')
    print(f"auth benchmark ({'PostgreSQL' if args.db else 'SQLite'}; {os.cpu_count()} CPUs)")
    for name, value in results.items():
        print(f"  {name:22s} {value:10.1f}")


if __name__ == "__main__":
    main()
