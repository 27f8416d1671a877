"""Several hosts, simulated (issue 18 item 3): each host a network namespace of its own with its own PID namespace
(tests/support/netns.py), on a private 10.213.0.0/24 LAN that exists only between them.

    db      PostgreSQL (a private cluster) and an OpenStack Swift all-in-one (the S3 blob store)
    app1    auth_svc, storage_svc, share_svc: one replica each, plain `python -m <svc> serve`
    app2    the same, with the same settings (keys, secrets, database URL, S3 settings)
    edge    Envoy (`python -m gateway serve`), upstreams = both app hosts' replicas
    client  the test's HTTP client (its sockets are opened there: setns)

An upload begun through app1's storage replica (app2's paused meanwhile, so Envoy sends it there) is finished
through app2 after every process on app1 is killed with SIGKILL: nothing acknowledged is lost, the file is
byte-exact, and tokens, download URLs and public-link sessions issued on app1 keep working through app2. A second
upload whose chunk was in flight on app1 at that moment is held by app1's dead writer until its lease lapses (app2
cannot prove a process on another host dead), answering 409 with Retry-After meanwhile, then finishes too.
No replica keeps state another needs: each host has its own data folder, and what must match is handed to both
as the same settings and files (docs/scaling.md, "Deployment on several hosts").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.mesh import SCAN_OFF, TEST_AUTH_ENV
from tests.support.netns import NETWORK, Host, Hosts, simulated_hosts
from tests.support.pgcluster import private_postgres
from tests.support.swift import SwiftCluster, need_swift, running_swift

MiB = 1024 * 1024
PASSWORD = "correct horse battery"
LINK_PASSWORD = "link pass phrase"
SERVICES = ("auth", "share", "storage")
#: Every app host uses the same ports (each has its own addresses): one plain list of processes per host.
GRPC_PORT = {"auth": 7001, "storage": 7002, "share": 7003}
METRICS_PORT = {"auth": 9101, "storage": 9102, "share": 9103}
GATEWAY_PORT = 8080
ADMIN_PORT = 9901  # Envoy's admin interface, on the edge host's own loopback
APPS = ("app1", "app2")
START_SECONDS = 120.0


@dataclass
class Deployment:
    hosts: Hosts
    swift: SwiftCluster
    bucket: str
    root: Path
    db_url: str
    timings: dict[str, float]

    def host(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def url(self) -> str:
        return f"http://{self.hosts['edge'].address}:{GATEWAY_PORT}"

    def data_dir(self, host: str) -> Path:
        return self.root / host / "data"

    def log(self, host: str, service: str) -> str:
        return (self.root / host / "logs" / f"{service}.log").read_text(errors="replace")

    def envoy_endpoints(self, cluster: str) -> dict[str, str]:
        """Envoy's view of one cluster's endpoints: `address:port` -> "healthy" or its failure flags."""
        with self.hosts["edge"].entered():
            text = httpx.get(f"http://127.0.0.1:{ADMIN_PORT}/clusters", timeout=5).text
        out = {}
        for line in text.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster and parts[2] == "health_flags":
                out[parts[1]] = parts[3]
        return out


def endpoint(host: Host, service: str) -> str:
    return f"{host.address}:{GRPC_PORT[service]}"


def replicas(hosts: Hosts, service: str) -> str:
    """`host:port,host:port` of a service on every app host: what callers (services, Envoy) are given."""
    return ",".join(endpoint(hosts[name], service) for name in APPS)


def make_secrets(folder: Path) -> None:
    """What every replica must share, made once (as an operator would, then hand the same files to every host): the
    mesh CA and certificates, auth's secrets key (seals signing keys and TOTP secrets in its database), storage's
    keyring (KEKs wrapping every file's data key) and the download-URL signing key."""
    from auth_svc.secretbox import SecretBox
    from flowdock_kernel.mesh import ensure_mesh
    from storage_svc.adapters import HmacUrlSigner
    from storage_svc.keyring import Keyring

    ensure_mesh(folder / "mesh")
    (folder / "mesh" / "ca.key").unlink()  # issuing is done: no host gets the CA's key
    SecretBox.from_file(folder / "auth-secrets.key")
    Keyring(folder / "keyring.json")
    HmacUrlSigner(folder / "url.key")


def host_env(d: Deployment, host: Host, service: str) -> dict[str, str]:
    """One service's settings on one host. Shared by every replica: the database URL, the S3 settings, the secrets
    (same files), the callers' addresses. Per host: its listen address, data folder and ready file."""
    secrets = d.root / host.name / "secrets"
    return {
        **os.environ,
        **TEST_AUTH_ENV,
        **SCAN_OFF,
        **d.swift.s3_env(d.bucket),
        "FLOWDOCK_DB_URL": d.db_url,
        "FLOWDOCK_AUTH_SECRETS_KEY_FILE": str(secrets / "auth-secrets.key"),
        "FLOWDOCK_STORAGE_KEYRING_PATH": str(secrets / "keyring.json"),
        "FLOWDOCK_STORAGE_URL_KEY_FILE": str(secrets / "url.key"),
        "FLOWDOCK_MESH_CA_FILE": str(secrets / "mesh" / "ca.pem"),
        "FLOWDOCK_MESH_CERT_FILE": str(secrets / "mesh" / f"{service}_svc.pem"),
        "FLOWDOCK_MESH_KEY_FILE": str(secrets / "mesh" / f"{service}_svc.key"),
        "FLOWDOCK_AUTH_ADDRESS": replicas(d.hosts, "auth"),
        "FLOWDOCK_SHARE_ADDRESS": replicas(d.hosts, "share"),
        "FLOWDOCK_STORAGE_ADDRESS": replicas(d.hosts, "storage"),
        "FLOWDOCK_AUTH_PUBLIC_URL": d.url,
        "FLOWDOCK_SHARE_PUBLIC_URL": d.url,
        "FLOWDOCK_STORAGE_UPLOAD_CHUNK_BYTES": str(MiB),
        # Per host:
        "FLOWDOCK_DATA_DIR": str(d.data_dir(host.name)),
        "FLOWDOCK_LISTEN_HOST": host.address,
        "FLOWDOCK_GRPC_PORT": str(GRPC_PORT[service]),
        "FLOWDOCK_METRICS_PORT": str(METRICS_PORT[service]),
        "FLOWDOCK_READY_FILE": str(d.data_dir(host.name) / "run" / f"{service}.json"),
        "FLOWDOCK_LOG_FORMAT": "json",
    }


def start_app_host(d: Deployment, host: Host) -> None:
    """The three services on `host`, each a plain process; returns once all serve."""
    began = time.monotonic()
    # The same files on every app host; of the mesh, the CA certificate and the identities it runs only.
    own = {"ca.pem", *(f"{s}_svc.{ext}" for s in SERVICES for ext in ("pem", "key"))}
    shutil.copytree(
        d.root / "secrets",
        d.root / host.name / "secrets",
        ignore=lambda folder, names: [n for n in names if Path(folder).name == "mesh" and n not in own],
    )
    for sub in ("data/run", "logs"):
        (d.root / host.name / sub).mkdir(parents=True, exist_ok=True)
    for service in SERVICES:
        host.popen(
            [sys.executable, "-m", f"{service}_svc", "serve"],
            env=host_env(d, host, service),
            log=d.root / host.name / "logs" / f"{service}.log",
        )
    deadline = time.monotonic() + START_SECONDS
    for service in SERVICES:
        ready = d.data_dir(host.name) / "run" / f"{service}.json"
        while not ready.exists():
            dead = [p for p in host.procs if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, (
                f"{service} on {host.name} did not start:\n{d.log(host.name, service)[-3000:]}"
            )
            time.sleep(0.1)
    d.timings[f"{host.name}: 3 services serving"] = time.monotonic() - began


def start_edge(d: Deployment) -> None:
    """Envoy on the edge host, every app host's replicas as its upstreams; returns once it routes to them all."""
    began = time.monotonic()
    edge = d.hosts["edge"]
    secrets = d.root / "edge" / "secrets"
    (secrets / "mesh").mkdir(parents=True)
    for name in ("ca.pem", "gateway.pem", "gateway.key"):  # the gateway's identity only
        shutil.copy2(d.root / "secrets" / "mesh" / name, secrets / "mesh" / name)
    (d.root / "edge" / "run").mkdir()
    argv = [
        sys.executable, "-m", "gateway", "serve",
        "--listen-host", edge.address, "--port", str(GATEWAY_PORT),
        "--admin-host", "127.0.0.1", "--admin-port", str(ADMIN_PORT),
        "--run-dir", str(d.root / "edge" / "run"),
        "--mesh-ca", str(secrets / "mesh" / "ca.pem"),
        "--mesh-cert", str(secrets / "mesh" / "gateway.pem"),
        "--mesh-key", str(secrets / "mesh" / "gateway.key"),
    ] + [f"--upstream={service}={replicas(d.hosts, service)}" for service in SERVICES]  # fmt: skip
    env = {**os.environ, "FLOWDOCK_DATA_DIR": str(d.root / "edge" / "data")}
    proc = edge.popen(argv, env=env, log=d.root / "edge" / "gateway.log")
    deadline = time.monotonic() + START_SECONDS
    views: dict[str, dict[str, str]] = {}
    while True:
        assert proc.poll() is None, (d.root / "edge" / "gateway.log").read_text()[-3000:]
        try:
            views = {s: d.envoy_endpoints(s) for s in SERVICES}
            if all(list(v.values()) == ["healthy", "healthy"] for v in views.values()) and jwks_fetched(d):
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"Envoy never saw every replica healthy: {views}"
        time.sleep(0.2)
    d.timings["edge: Envoy routing to both app hosts"] = time.monotonic() - began


def jwks_fetched(d: Deployment) -> bool:
    with d.hosts["edge"].entered():
        text = httpx.get(f"http://127.0.0.1:{ADMIN_PORT}/stats?filter=jwks_fetch_success", timeout=5).text
    return any(int(line.rsplit(":", 1)[1]) > 0 for line in text.splitlines() if ":" in line)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    need_swift()
    began = time.monotonic()
    with simulated_hosts(["db", *APPS, "edge", "client"]) as hosts:
        db = hosts["db"]
        on_db = ["ip", "netns", "exec", db.netns]
        with (
            private_postgres(host=db.address, prefix=on_db, trust=[NETWORK]) as pg,
            running_swift(tmp_path / "swift", host=db.address, prefix=on_db, around=db.entered) as swift,
        ):
            d = Deployment(hosts, swift, swift.new_bucket(), tmp_path, f"{pg.url}/fdmh", {})
            d.timings["db: PostgreSQL and Swift"] = time.monotonic() - began
            make_secrets(tmp_path / "secrets")
            for name in APPS:  # app1 first: its services create the databases' schemas, app2's find them current
                start_app_host(d, hosts[name])
            start_edge(d)
            try:
                yield d
            finally:
                for name in (*APPS, "edge"):
                    hosts[name].kill_all()


class Client:
    """A REST client on the client host, talking to Envoy on the edge host (every socket opened there)."""

    def __init__(self, d: Deployment) -> None:
        self.host = d.hosts["client"]
        self.http = httpx.Client(base_url=d.url, timeout=30)
        self.token = ""

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        with self.host.entered():
            return self.http.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def until_ok(self, method: str, path: str, timeout: float = 60, **kw: Any) -> tuple[Any, float]:
        """The call, repeated while the mesh answers 502/503 (a host just died); its answer and how long it took."""
        began = time.monotonic()
        while True:
            r = self.call(method, path, **kw)
            if r.status_code == 200:
                return r.json(), time.monotonic() - began
            assert r.status_code in (502, 503, 504), f"{method} {path}: {r.status_code} {r.text}"
            assert time.monotonic() - began < timeout, f"{method} {path}: still {r.status_code} {r.text}"
            time.sleep(0.2)

    def finish(self, upload_id: str) -> dict[str, Any]:
        state = self.ok("POST", f"/api/v1/uploads/{upload_id}/finish", json={})
        deadline = time.monotonic() + 60
        while state["state"] == "UPLOAD_STATE_FINISHING" and time.monotonic() < deadline:
            time.sleep(0.1)
            state = self.ok("GET", f"/api/v1/uploads/{upload_id}")
        return dict(state)


class InFlight:
    """A REST chunk sent in a thread of its own that stops after its first bytes and waits, so the replica
    serving it holds the upload's writer lease when its host dies."""

    def __init__(self, c: Client, upload_id: str, offset: int, data: bytes) -> None:
        self.release = threading.Event()
        self.outcome: httpx.Response | Exception | None = None
        self._args = (c, upload_id, offset, data)
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        data = self._args[3]
        yield data[: 256 * 1024]
        self.release.wait(120)
        yield data[256 * 1024 :]

    def _send(self) -> None:
        c, upload_id, offset, _ = self._args
        try:
            with c.host.entered(), httpx.Client(base_url=c.http.base_url, timeout=120) as http:
                self.outcome = http.put(
                    f"/api/v1/uploads/{upload_id}",
                    params={"offset": offset},
                    content=self._body(),
                    headers={"authorization": f"Bearer {c.token}"},
                )
        except Exception as exc:  # the host serving it dies: any transport error is the expected end
            self.outcome = exc

    def end(self) -> httpx.Response | Exception | None:
        self.release.set()
        self._thread.join(120)
        return self.outcome


def writer_of(d: Deployment, upload_id: str) -> str | None:
    """The upload's writer lease token in storage's database (None: nobody holds it)."""
    import psycopg

    with d.hosts["client"].entered(), psycopg.connect(f"{d.db_url}_storage", connect_timeout=5) as conn:
        row = conn.execute("SELECT writer FROM uploads WHERE id = %s", (upload_id,)).fetchone()
    return None if row is None else row[0]


def calls(d: Deployment, host: str, service: str, method: str) -> int:
    """How many `method` calls one replica answered OK (its call log lines)."""
    lines = (json.loads(x) for x in d.log(host, service).splitlines() if x.startswith("{"))
    return sum(1 for x in lines if x.get("method", "").endswith(method) and x.get("code") == "OK")


def wait_endpoint(d: Deployment, cluster: str, address: str, healthy: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (d.envoy_endpoints(cluster).get(address) == "healthy") != healthy:
        assert time.monotonic() < deadline, f"{cluster} {address} never {'healthy' if healthy else 'unhealthy'}"
        time.sleep(0.2)


def test_upload_begun_on_one_host_finishes_on_another_after_the_first_dies(deployment: Deployment) -> None:
    d = deployment
    app1, app2 = d.hosts["app1"], d.hosts["app2"]
    c = Client(d)
    email = f"m{uuid.uuid4().hex[:10]}@example.org"
    c.ok("POST", "/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    login = c.ok("POST", "/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    c.token = login["accessToken"]

    # Both hosts serve: Envoy balances every service over them.
    for _ in range(12):
        c.ok("GET", "/api/v1/me")
        c.ok("GET", "/api/v1/folders/root/children")
    for host in APPS:
        assert calls(d, host, "storage", "ListChildren") > 0, f"{host}'s storage replica got no call"
        assert calls(d, host, "auth", "GetMe") + calls(d, host, "auth", "CheckSession") > 0, host

    # A file finished before the failure, and an upload begun on app1 only (app2's storage paused meanwhile).
    before = os.urandom(300_000)
    small = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "before.bin", "size": len(before)})
    c.ok("PUT", f"/api/v1/uploads/{small['uploadId']}", params={"offset": 0}, content=before)
    before_node = c.finish(small["uploadId"])["node"]
    # A password-protected public link, opened a few times: Envoy balances the opens over both share replicas, so
    # some link sessions are signed on app1 (the key is in share's database, not on a host).
    link = c.ok(
        "POST",
        "/api/v1/links",
        json={"node_id": before_node["id"], "permission": "LINK_PERMISSION_DOWNLOAD", "password": LINK_PASSWORD},
    )
    opened_on_app1 = calls(d, "app1", "share", "OpenLink")
    sessions = [
        c.ok("POST", f"/api/v1/public/links/{link['token']}/open", json={"password": LINK_PASSWORD})["linkSession"]
        for _ in range(4)
    ]
    assert calls(d, "app1", "share", "OpenLink") > opened_on_app1, "no link session was made on app1"
    data = os.urandom(5 * MiB + 12345)
    cut_data = os.urandom(3 * MiB + 99)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "moved.bin", "size": len(data)})
    paused = app2.find("storage_svc")
    os.kill(paused, signal.SIGSTOP)
    try:
        wait_endpoint(d, "storage", endpoint(app2, "storage"), healthy=False)
        written_on_app2 = calls(d, "app2", "storage", "UploadContent")
        written_on_app1 = calls(d, "app1", "storage", "UploadContent")
        acknowledged = 0
        for off in range(0, 3 * MiB, MiB):
            r = c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": off}, content=data[off : off + MiB])
            acknowledged = int(r["committedSize"])
            assert acknowledged == off + MiB
        # A download URL signed on app1 (checked by whichever replica serves it later).
        signed = c.ok("POST", f"/api/v1/files/{before_node['id']}/download-url", json={})["url"]
        # A second upload: one chunk acknowledged, the next one in flight on app1 when app1 dies.
        cut = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "cut.bin", "size": len(cut_data)})
        c.ok("PUT", f"/api/v1/uploads/{cut['uploadId']}", params={"offset": 0}, content=cut_data[:MiB])
        in_flight = InFlight(c, cut["uploadId"], MiB, cut_data[MiB : 2 * MiB])
        deadline = time.monotonic() + 30
        while writer_of(d, cut["uploadId"]) is None:
            assert time.monotonic() < deadline, "the in-flight chunk never reached app1's storage_svc"
            time.sleep(0.1)
    finally:
        os.kill(paused, signal.SIGCONT)
    assert calls(d, "app2", "storage", "UploadContent") == written_on_app2, "a chunk reached app2"
    assert calls(d, "app1", "storage", "UploadContent") == written_on_app1 + 4  # 3 of the first, 1 of the second
    wait_endpoint(d, "storage", endpoint(app2, "storage"), healthy=True)

    # app1 dies: every process on it, SIGKILL.
    killed = app1.kill_all()
    died = time.monotonic()
    assert killed, "nothing ran on app1"
    state, _ = c.until_ok("GET", f"/api/v1/uploads/{up['uploadId']}")
    d.timings["after app1's death: first answer through app2"] = time.monotonic() - died
    assert int(state["committedSize"]) == acknowledged, "an acknowledged offset was lost"
    for off in range(acknowledged, len(data), MiB):
        r, _ = c.until_ok(
            "PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": off}, content=data[off : off + MiB]
        )
        assert int(r["committedSize"]) == min(off + MiB, len(data))
    done = c.finish(up["uploadId"])
    assert done["state"] == "UPLOAD_STATE_COMPLETED", done
    node = done["node"]
    assert node["sha256"] == hashlib.sha256(data).hexdigest()
    d.timings["after app1's death: upload finished through app2"] = time.monotonic() - died

    assert calls(d, "app2", "storage", "UploadContent") > written_on_app2
    with d.hosts["client"].entered():
        got = httpx.get(d.url + signed, timeout=30)  # no Authorization: the URL is the credential
    assert got.status_code == 200 and got.content == before, "app2 refused a download URL app1 signed"
    for session in sessions:
        with d.hosts["client"].entered():
            got = httpx.get(
                f"{d.url}/api/v1/public/links/{link['token']}/files/{before_node['id']}/content",
                headers={"x-link-session": session},
                timeout=30,
            )
        assert got.status_code == 200 and got.content == before, f"a link session made before: {got.status_code}"

    # The upload whose chunk was cut: the chunk never was acknowledged (the client saw an error, not 200), the one
    # before it was and is kept. Its writer died with app1, which app2 cannot prove from another host (another
    # PID namespace): the lease lapses by time, meanwhile the upload answers 409 saying when to try again.
    outcome = in_flight.end()
    assert not (isinstance(outcome, httpx.Response) and outcome.status_code == 200), outcome
    state = c.ok("GET", f"/api/v1/uploads/{cut['uploadId']}")
    assert int(state["committedSize"]) == MiB, "the acknowledged chunk was lost, or the cut one counted"
    held = 0
    while True:
        r = c.call("PUT", f"/api/v1/uploads/{cut['uploadId']}", params={"offset": MiB}, content=cut_data[MiB:])
        if r.status_code == 200:
            break
        assert r.status_code == 409 and "another connection is writing" in r.text, f"{r.status_code} {r.text}"
        assert 1 <= int(r.headers["retry-after"]) <= 60, r.headers  # when to look again, not a hammering loop
        held += 1
        assert time.monotonic() - died < 90, "the dead host's lease never lapsed"
        time.sleep(1)
    assert held, "a lease held on another host was taken over without proof its holder is gone"
    d.timings["after app1's death: lease of its cut chunk lapsed"] = time.monotonic() - died
    assert int(r.json()["committedSize"]) == len(cut_data)
    done = c.finish(cut["uploadId"])
    assert done["state"] == "UPLOAD_STATE_COMPLETED" and done["node"]["sha256"] == hashlib.sha256(cut_data).hexdigest()

    got = c.call("GET", f"/api/v1/files/{node['id']}/content")
    assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    got = c.call("GET", f"/api/v1/files/{done['node']['id']}/content")
    assert got.status_code == 200 and got.content == cut_data
    got = c.call("GET", f"/api/v1/files/{before_node['id']}/content")
    assert got.status_code == 200 and got.content == before, "a file finished on app1 is gone"
    assert sorted(n["name"] for n in c.ok("GET", "/api/v1/folders/root/children")["nodes"]) == [
        "before.bin",
        "cut.bin",
        "moved.bin",
    ]
    assert not [n for n in d.swift.objects(d.bucket) if n.startswith("uploads/")], "staging left in the store"

    # Tokens issued on app1 keep working through app2; logging in and refreshing too.
    assert c.ok("GET", "/api/v1/me")["email"] == email
    refreshed = c.ok("POST", "/api/v1/auth/refresh", json={"refresh_token": login["refreshToken"]})
    c.token = refreshed["accessToken"]
    assert c.ok("GET", "/api/v1/me")["email"] == email
    again = c.ok("POST", "/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    c.token = again["accessToken"]
    assert c.ok("GET", "/api/v1/folders/root/children")["nodes"]
    for service in SERVICES:
        assert d.envoy_endpoints(service)[endpoint(app1, service)] != "healthy"

    print("\nmulti-host timings (s), on the shared 2-core machine:")
    for what, seconds in d.timings.items():
        print(f"  {what:<55} {seconds:6.1f}")
