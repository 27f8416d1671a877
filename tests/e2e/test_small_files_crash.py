"""Group commit keeps its promise (issue 15): storage_svc is killed (SIGKILL) while 16 clients send small files
in one call each through the gateway. After a restart on the same data, every file whose CreateUpload answered OK
is there byte-exact, and every file that is there at all is whole (none half-visible: listed without its bytes,
or with someone else's)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.accounts import MESH_PASSWORD
from tests.support.mesh import PG_URL, Running, drop_databases, need_postgres, start_up, stop_up

CLIENTS = 16
USERS = 4


def _login(mesh: Running, email: str, *, register: bool) -> str:
    with httpx.Client(base_url=mesh.url, timeout=60) as c:
        creds = {"email": email, "password": MESH_PASSWORD}
        if register:
            assert c.post("/api/v1/auth/register", json=creds).status_code == 200
        r = c.post("/api/v1/auth/login", json=creds)
        assert r.status_code == 200, r.text
        return str(r.json()["accessToken"])


def _kill_all(mesh: Running) -> None:
    """storage_svc first (the crash under test), then the rest of the server, as a power cut would leave it."""
    os.kill(mesh.pids["storage"], signal.SIGKILL)
    for pid in mesh.pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    mesh.proc.kill()
    mesh.proc.communicate()


def _listing(mesh: Running, token: str) -> dict[str, str]:
    """name → file id of everything in the user's root."""
    found: dict[str, str] = {}
    page = ""
    with httpx.Client(base_url=mesh.url, timeout=60, headers={"authorization": f"Bearer {token}"}) as c:
        while True:
            r = c.get("/api/v1/folders/root/children", params={"pageSize": "1000", "pageToken": page})
            assert r.status_code == 200, r.text
            body = r.json()
            found.update({n["name"]: n["id"] for n in body.get("nodes", [])})
            page = body.get("nextPageToken", "")
            if not page:
                return found


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_small_files_survive_kill_9(tmp_path: Path, backend: str) -> None:
    db_url = prefix = ""
    if backend == "postgres":
        need_postgres()
        prefix = f"fdsmall_{uuid.uuid4().hex[:8]}"
        db_url = f"{PG_URL}/{prefix}"
    data_dir = tmp_path / "data"
    mesh = start_up(data_dir, backend, db_url)
    restarted: Running | None = None
    try:
        emails = [f"s{uuid.uuid4().hex[:10]}@example.org" for _ in range(USERS)]
        tokens = [_login(mesh, e, register=True) for e in emails]
        sent: dict[tuple[int, str], bytes] = {}  # (user, name) → the bytes sent, acknowledged or not
        acked: set[tuple[int, str]] = set()
        lock = threading.Lock()
        stop = threading.Event()

        def client(i: int) -> None:
            user = i % USERS
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{2 + i}")
            headers = {"authorization": f"Bearer {tokens[user]}"}
            with httpx.Client(base_url=mesh.url, headers=headers, timeout=30, transport=transport) as c:
                n = 0
                while not stop.is_set():
                    name, content = f"c{i:02d}-{n:05d}.bin", os.urandom(1024)
                    n += 1
                    with lock:
                        sent[(user, name)] = content
                    body = {"parentId": "root", "name": name, "size": 1024}
                    body["content"] = base64.b64encode(content).decode()
                    try:
                        r = c.post("/api/v1/uploads", json=body)
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 200 and r.json().get("state") == "UPLOAD_STATE_COMPLETED":
                        with lock:
                            acked.add((user, name))
                    elif r.status_code == 429:
                        time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_all(mesh)  # mid-flight: some clients are waiting for answers that never come
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert len(acked) >= 50, f"only {len(acked)} files acknowledged before the kill"

        (data_dir / "run" / "up.json").unlink()
        restarted = start_up(data_dir, backend, db_url)
        for user, email in enumerate(emails):
            token = _login(restarted, email, register=False)
            listed = _listing(restarted, token)
            mine = {name for u, name in acked if u == user}
            assert mine <= set(listed), f"acknowledged but lost: {sorted(mine - set(listed))[:5]}"
            with httpx.Client(base_url=restarted.url, timeout=60, headers={"authorization": f"Bearer {token}"}) as c:
                for name, file_id in listed.items():
                    assert (user, name) in sent, f"a file nobody sent: {name}"
                    got = c.get(f"/api/v1/files/{file_id}/content")
                    assert got.status_code == 200, f"{name} is listed but not readable: {got.text}"
                    assert got.content == sent[(user, name)], f"{name} is listed with other bytes"
    finally:
        if restarted is not None:
            code, err = stop_up(restarted)
            assert code == 0, err
        elif mesh.proc.poll() is None:
            _kill_all(mesh)
        if prefix:
            drop_databases(prefix)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_acknowledged_chunks_of_three_call_small_files_survive_kill_9(tmp_path: Path, backend: str) -> None:
    """The three calls (issue 15 item 3: a whole small file in one PUT is written once as its final blob and
    completes the upload): storage_svc is killed while clients create, PUT and finish 1 KiB files, half of them in
    one PUT (the small-file path), half in two (the resumable path). After a restart, every upload whose PUT was
    acknowledged finishes with exactly the bytes sent, and every acknowledged offset is still committed."""
    db_url = prefix = ""
    if backend == "postgres":
        need_postgres()
        prefix = f"fdthree_{uuid.uuid4().hex[:8]}"
        db_url = f"{PG_URL}/{prefix}"
    data_dir = tmp_path / "data"
    mesh = start_up(data_dir, backend, db_url)
    restarted: Running | None = None
    try:
        email = f"t{uuid.uuid4().hex[:10]}@example.org"
        token = _login(mesh, email, register=True)
        sent: dict[str, bytes] = {}  # upload id → the bytes sent
        acked: dict[str, int] = {}  # upload id → the highest offset a PUT acknowledged
        lock = threading.Lock()
        stop = threading.Event()

        def client(i: int) -> None:
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{2 + i}")
            headers = {"authorization": f"Bearer {token}"}
            with httpx.Client(base_url=mesh.url, headers=headers, timeout=30, transport=transport) as c:
                n = 0
                while not stop.is_set():
                    content, n = os.urandom(1024), n + 1
                    cuts = [0, 1024] if n % 2 else [0, 400, 1024]  # one PUT, or two
                    try:
                        r = c.post("/api/v1/uploads", json={"parentId": "root", "name": f"t{i}-{n}", "size": 1024})
                        if r.status_code != 200:
                            time.sleep(0.05)
                            continue
                        uid = r.json()["uploadId"]
                        with lock:
                            sent[uid] = content
                        for a, b in itertools.pairwise(cuts):
                            put = c.put(f"/api/v1/uploads/{uid}", params={"offset": a}, content=content[a:b])
                            if put.status_code != 200:
                                return  # the server is going down (Envoy answers for a killed service)
                            with lock:
                                acked[uid] = int(put.json()["committedSize"])
                        c.post(f"/api/v1/uploads/{uid}/finish", json={})
                    except httpx.HTTPError:
                        return  # the server is gone

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_all(mesh)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert len(acked) >= 20, f"only {len(acked)} chunks acknowledged before the kill"
        whole = [u for u, off in acked.items() if off == 1024]
        assert whole, "no upload was acknowledged whole before the kill"

        (data_dir / "run" / "up.json").unlink()
        restarted = start_up(data_dir, backend, db_url)
        token = _login(restarted, email, register=False)
        with httpx.Client(base_url=restarted.url, timeout=60, headers={"authorization": f"Bearer {token}"}) as c:
            for uid, offset in acked.items():
                assert offset in (400, 1024), f"{uid}: a PUT acknowledged {offset}"
                state = c.get(f"/api/v1/uploads/{uid}")
                assert state.status_code == 200, state.text
                assert int(state.json()["committedSize"]) >= offset, f"{uid}: acknowledged {offset}, lost"
                if offset < 1024:
                    continue
                done = c.post(f"/api/v1/uploads/{uid}/finish", json={})
                assert done.status_code == 200, done.text
                body = done.json()
                assert body["state"] == "UPLOAD_STATE_COMPLETED", body
                got = c.get(f"/api/v1/files/{body['node']['id']}/content")
                assert got.status_code == 200 and got.content == sent[uid], f"{uid}: other bytes"
    finally:
        if restarted is not None:
            code, err = stop_up(restarted)
            assert code == 0, err
        elif mesh.proc.poll() is None:
            _kill_all(mesh)
        if prefix:
            drop_databases(prefix)
