"""Roles and admin RPCs (checked in auth_svc against the database, not only the token), `flowdock admin
create-user --admin`, disabling (ends every session at once), the activity log (own and everyone's), the
internal RecordEvents intake with the kernel's outbox surviving auth_svc being unreachable, and a grep of every
log of the run for secrets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock_kernel import audit, db
from flowdock_kernel.audit import remote_audit_sender
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import PASSWORD, Account, cli, login, make_admin, new_email, rest, user
from tests.support.mailbox import Mailbox, link_token
from tests.support.mesh import PG_URL, Running, drop_databases, free_port, need_postgres


def test_create_user_cli_refuses_weak_passwords_and_duplicates(auth_mesh: Running) -> None:
    weak = cli(auth_mesh, "admin", "create-user", "--email", new_email(), "--password-stdin", stdin="password\n")
    assert weak.returncode == 2 and "common" in weak.stderr and "Traceback" not in weak.stderr
    email = new_email()
    assert cli(auth_mesh, "admin", "create-user", "--email", email, "--password-stdin", stdin=PASSWORD).returncode == 0
    again = cli(auth_mesh, "admin", "create-user", "--email", email, "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1 and "already exists" in again.stderr
    promoted = cli(auth_mesh, "admin", "create-user", "--email", email, "--admin")
    assert promoted.returncode == 0 and "now an administrator" in promoted.stdout
    me = login(auth_mesh, Account(email, PASSWORD))
    with rest(auth_mesh, me.access_token) as c:
        assert c.get("/api/v1/me").json()["role"] == "ROLE_ADMIN"


def test_admin_rpcs_are_refused_to_users_on_every_protocol(auth_mesh: Running, mailbox: Mailbox) -> None:
    plain = user(auth_mesh, mailbox)
    with rest(auth_mesh, plain.access_token) as c:
        assert c.get("/api/v1/admin/users").status_code == 403
        assert c.get(f"/api/v1/admin/users/{c.get('/api/v1/me').json()['id']}").status_code == 403
        assert c.post("/api/v1/admin/users/x/role", json={"role": "ROLE_ADMIN"}).status_code == 403
        assert c.get("/api/v1/admin/activity").status_code == 403
    native = Native(native_channel(auth_mesh.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        native.auth.ListUsers(auth_pb2.ListUsersRequest(), metadata=[("authorization", f"Bearer {plain.access_token}")])
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(GrpcWebError) as web_exc:
        GrpcWeb(auth_mesh.url, plain.access_token).call(
            "flowdock.auth.v1.AuthService/ListUsers", auth_pb2.ListUsersRequest(), auth_pb2.ListUsersResponse
        )
    assert web_exc.value.status == grpc.StatusCode.PERMISSION_DENIED.value[0]
    with rest(auth_mesh) as c:
        assert c.get("/api/v1/admin/users").status_code == 401
    # Denied authorisations are in the trail, with actor and address.
    with rest(auth_mesh, plain.access_token) as c:
        denied = [e for e in c.get("/api/v1/me/activity").json()["events"] if e["kind"] == "authz.denied"]
    assert {e["details"]["action"] for e in denied} >= {"list_users", "get_user", "set_role", "list_activity"}
    assert all(e["ip"] and e["actorId"] == e["subjectId"] for e in denied)


def test_admin_lists_views_promotes_and_a_demoted_admins_token_no_longer_works(
    auth_mesh: Running, mailbox: Mailbox
) -> None:
    admin = make_admin(auth_mesh, fresh=True)  # demoted below
    tag = new_email().split("@")[0][:8]
    members = [register_email(auth_mesh, mailbox, f"{tag}{i}@example.org") for i in range(3)]
    with rest(auth_mesh, admin.access_token) as c:
        page1 = c.get("/api/v1/admin/users", params={"query": tag, "page_size": 2}).json()
        assert [u["email"] for u in page1["users"]] == members[:2] and page1["nextPageToken"]
        page2 = c.get(
            "/api/v1/admin/users", params={"query": tag, "page_size": 2, "page_token": page1["nextPageToken"]}
        ).json()
        assert [u["email"] for u in page2["users"]] == members[2:] and page2["nextPageToken"] == ""
        target = page1["users"][0]
        assert c.get(f"/api/v1/admin/users/{target['id']}").json()["email"] == members[0]
        assert c.get("/api/v1/admin/users/00000000-0000-0000-0000-000000000000").status_code == 404
        r = c.post(f"/api/v1/admin/users/{target['id']}/role", json={"role": "ROLE_ADMIN"})
        assert r.status_code == 200 and r.json()["role"] == "ROLE_ADMIN"
        assert c.post(f"/api/v1/admin/users/{target['id']}/role", json={"role": "ROLE_UNSPECIFIED"}).status_code == 400
    # The new admin demotes the first one; the first one's token still says role=admin, the service says no.
    second = login(auth_mesh, Account(members[0], PASSWORD))
    with rest(auth_mesh, second.access_token) as c:
        me_id = c.get(f"/api/v1/admin/users?query={admin.email}").json()["users"][0]["id"]
        assert c.post(f"/api/v1/admin/users/{me_id}/role", json={"role": "ROLE_USER"}).status_code == 200
    with rest(auth_mesh, admin.access_token) as c:
        assert c.get("/api/v1/admin/users").status_code == 403


def register_email(mesh: Running, mailbox: Mailbox, email: str) -> str:
    before = mailbox.count()
    with rest(mesh) as c:
        assert c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 200
        token = link_token(mailbox.wait(email, "Confirm", after=before))
        assert c.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 200
    return email


def test_disabling_a_user_ends_their_live_tokens_everywhere(auth_mesh: Running, mailbox: Mailbox) -> None:
    admin = make_admin(auth_mesh)
    victim = user(auth_mesh, mailbox)
    with rest(auth_mesh, victim.access_token) as c:
        victim_id = c.get("/api/v1/me").json()["id"]
        assert c.get("/api/v1/folders/root/children").status_code == 200
    with rest(auth_mesh, admin.access_token) as c:
        started = time.monotonic()
        assert c.get(f"/api/v1/admin/users/{victim_id}").json()["activeSessions"] == 1
        r = c.post(f"/api/v1/admin/users/{victim_id}/disabled", json={"disabled": True})
        assert r.status_code == 200 and r.json()["disabled"] is True
        admin_id = c.get("/api/v1/me").json()["id"]
        assert c.post(f"/api/v1/admin/users/{admin_id}/disabled", json={"disabled": True}).status_code == 400
    with rest(auth_mesh, victim.access_token) as c:
        while c.get("/api/v1/folders/root/children").status_code != 401:
            assert time.monotonic() - started < 5
            time.sleep(0.05)
        assert c.get("/api/v1/me").status_code == 401
    with rest(auth_mesh) as c:
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": victim.refresh_token}).status_code == 401
        r = c.post("/api/v1/auth/login", json={"email": victim.email, "password": victim.password})
        assert r.status_code == 401  # same answer as a wrong password
    with rest(auth_mesh, admin.access_token) as c:
        assert c.get(f"/api/v1/admin/users/{victim_id}").json()["activeSessions"] == 0  # every session ended
        assert c.post(f"/api/v1/admin/users/{victim_id}/disabled", json={"disabled": False}).status_code == 200
    login(auth_mesh, victim)


def test_activity_log_own_and_admin_filtered(auth_mesh: Running, mailbox: Mailbox) -> None:
    me = user(auth_mesh, mailbox)
    with rest(auth_mesh) as c:
        c.post("/api/v1/auth/login", json={"email": me.email, "password": "not the password"})
    with rest(auth_mesh, me.access_token) as c:
        c.post("/api/v1/me/password", json={"current_password": me.password, "new_password": "second passphrase"})
        events = c.get("/api/v1/me/activity", params={"page_size": 50}).json()["events"]
        my_id = c.get("/api/v1/me").json()["id"]
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["password.changed", "login.failed", "login.ok"]  # newest first
    assert {"register", "email.verified"} <= set(kinds)
    for e in events:
        assert e["subjectId"] == my_id and e["time"].endswith("Z") and e["ip"] and e["service"] == "auth"
    assert any(e["userAgent"].startswith("python-httpx") for e in events)
    with rest(auth_mesh, me.access_token) as c:
        page = c.get("/api/v1/me/activity", params={"page_size": 2}).json()
        nxt = c.get("/api/v1/me/activity", params={"page_size": 2, "page_token": page["nextPageToken"]}).json()
    assert [e["kind"] for e in page["events"] + nxt["events"]] == kinds[:4]
    admin = make_admin(auth_mesh)
    with rest(auth_mesh, admin.access_token) as c:
        mine = c.get("/api/v1/admin/activity", params={"subject_id": my_id, "kind_prefix": "login."}).json()
        assert [e["kind"] for e in mine["events"]] == ["login.failed", "login.ok"]
        # A time range (start inclusive, end exclusive), as RFC 3339 in the query string.
        window = {"subject_id": my_id, "kind_prefix": "login."}
        since = c.get("/api/v1/admin/activity", params={**window, "start_time": "2000-01-01T00:00:00Z"}).json()
        assert [e["kind"] for e in since["events"]] == ["login.failed", "login.ok"]
        newest = mine["events"][0]["time"]
        up_to = c.get("/api/v1/admin/activity", params={**window, "end_time": newest}).json()
        assert [e["kind"] for e in up_to["events"]] == ["login.ok"]
        later = c.get("/api/v1/admin/activity", params={**window, "start_time": "2999-01-01T00:00:00Z"}).json()
        assert later.get("events", []) == []
        everyone = c.get("/api/v1/admin/activity", params={"page_size": 200}).json()["events"]
        assert len({e["subjectId"] for e in everyone}) > 1


class Gate:
    """A TCP forwarder the test opens and closes: auth_svc 'down' (refused) and 'back' (forwarding)."""

    def __init__(self, target: str) -> None:
        self.host, port = target.split(":")
        self.target_port = int(port)
        self.port = free_port()
        self.server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


@contextlib.asynccontextmanager
async def outbox_engine(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A service database holding only `audit_outbox`, on SQLite (as storage_svc opens it) or PostgreSQL."""
    if backend == "postgres":
        need_postgres()
        name = f"fdtest_{uuid.uuid4().hex[:8]}_outbox"
        url = make_url(f"{PG_URL}/{name}").set(drivername="postgresql+psycopg")
    else:
        url = make_url(f"sqlite+aiosqlite:///{tmp_path / 'storage.db'}")
    db.ensure_database(url)
    engine = db.make_engine(url, sqlite_immediate=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(audit.metadata.create_all)
        yield engine
    finally:
        await engine.dispose()
        if backend == "postgres":
            drop_databases(name)


def _trail(mesh: Running, subject: str) -> list[dict[str, Any]]:
    admin = make_admin(mesh)
    with rest(mesh, admin.access_token) as c:
        return list(c.get("/api/v1/admin/activity", params={"subject_id": subject}).json()["events"])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_outbox_loses_no_event_while_auth_is_unreachable(
    auth_mesh: Running, tmp_path: Path, backend: str
) -> None:
    gate = Gate(auth_mesh.services["auth"])
    channel = auth_mesh.aio_channel("auth", "storage_svc", address=f"127.0.0.1:{gate.port}")
    subject = str(uuid.uuid4())
    async with outbox_engine(backend, tmp_path) as engine:
        first = audit.Outbox(engine, service="storage", send=remote_audit_sender(channel, timeout=1), min_backoff=0.1)
        # With a change: written by the change's own commit. Alone: its own transaction.
        events = first.buffer()
        ids = [events.record("storage.delete", actor="", subject=subject, details={"node_id": f"n{i}"}) for i in (0, 1)]
        async with engine.begin() as conn:
            await first.write(conn, events)
        ids.append(await first.record("storage.download", actor="", subject=subject, details={"node_id": "n2"}))
        # A change rolled back takes its events with it.
        undone = first.buffer()
        undone.record("storage.delete", actor="", subject=subject, details={"node_id": "never"})
        async with engine.connect() as conn:
            await first.write(conn, undone)
            await conn.rollback()
        first.start()
        await asyncio.sleep(0.5)  # auth unreachable: retries fail, nothing lost
        assert await first.pending() == 3
        await first.stop(final_flush_timeout=0.5)  # the "storage" process stops with events undelivered
        await gate.open()  # auth is back
        second = audit.Outbox(engine, service="storage", send=remote_audit_sender(channel, timeout=5), min_backoff=0.1)
        second.start()
        ids.append(await second.record("storage.restore", actor="", subject=subject))
        for _ in range(200):
            if not await second.pending():
                break
            await asyncio.sleep(0.05)
        assert await second.pending() == 0
        # A re-sent batch (acknowledgement lost) is stored once: ids are idempotent.
        await remote_audit_sender(channel)(
            [{"id": ids[0], "time": "2026-01-01T00:00:00+00:00", "kind": "storage.delete", "actor_id": "",
              "subject_id": subject, "ip": "", "user_agent": "", "service": "storage", "details": {}}]
        )  # fmt: skip
        await second.stop()
    await channel.close()
    await gate.close()
    trail = await asyncio.to_thread(_trail, auth_mesh, subject)
    assert sorted(e["id"] for e in trail) == sorted(ids)
    assert {e["service"] for e in trail} == {"storage"}
    assert {e["details"].get("node_id") for e in trail} == {"n0", "n1", "n2", None}


async def test_outbox_replicas_sharing_postgresql_never_send_the_same_event(auth_mesh: Running, tmp_path: Path) -> None:
    """Two storage replicas' relays over one PostgreSQL database, flushing at once while each send is slow: every
    event reaches the trail, and each is sent by one relay only (row locks, SKIP LOCKED)."""
    subject = str(uuid.uuid4())
    channel = auth_mesh.aio_channel("auth", "storage_svc")
    deliver = remote_audit_sender(channel)
    sent: dict[str, list[str]] = {"a": [], "b": []}

    def slow_sender(replica: str) -> audit.Sender:
        async def send(events: list[dict[str, Any]]) -> None:
            await asyncio.sleep(0.2)  # the other relay reads meanwhile
            await deliver(events)
            sent[replica] += [e["id"] for e in events]

        return send

    async with outbox_engine("postgres", tmp_path) as engine:
        a = audit.Outbox(engine, service="storage", send=slow_sender("a"), batch_size=10)
        b = audit.Outbox(engine, service="storage", send=slow_sender("b"), batch_size=10)
        events = a.buffer()
        ids = [events.record("storage.delete", actor="", subject=subject, details={"n": str(i)}) for i in range(40)]
        async with engine.begin() as conn:
            await a.write(conn, events)
        counts = await asyncio.gather(a.flush_once(), b.flush_once())
        assert await a.pending() == 0
    await channel.close()
    assert sum(counts) == 40 and min(counts) > 0, counts  # both relays worked, neither re-sent
    assert sorted(sent["a"] + sent["b"]) == sorted(ids)
    assert not set(sent["a"]) & set(sent["b"])
    trail = await asyncio.to_thread(_trail, auth_mesh, subject)
    assert sorted(e["id"] for e in trail) == sorted(ids)


async def test_outbox_adopts_events_an_earlier_version_left_in_its_file(auth_mesh: Running, tmp_path: Path) -> None:
    """Before the transactional outbox, each service queued events in <data_dir>/outbox/audit-<service>.db: what
    was left there on upgrade is delivered, once, and the file goes."""
    subject = str(uuid.uuid4())
    legacy = tmp_path / "outbox" / "audit-storage.db"
    legacy.parent.mkdir()
    old = sqlite3.connect(legacy)
    old.execute("CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, event TEXT)")
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for i, event_id in enumerate(ids):
        event = {
            "id": event_id,
            "time": "2026-11-01T10:00:00+00:00",
            "kind": "storage.delete",
            "actor_id": "",
            "subject_id": subject,
            "ip": "",
            "user_agent": "",
            "service": "storage",
            "details": {"n": str(i)},
        }
        old.execute("INSERT INTO pending (id, event) VALUES (?, ?)", (event_id, json.dumps(event)))
    old.commit()
    old.close()
    channel = auth_mesh.aio_channel("auth", "storage_svc")
    async with outbox_engine("sqlite", tmp_path) as engine:
        outbox = audit.Outbox(engine, service="storage", send=remote_audit_sender(channel))
        assert await outbox.adopt(legacy) == 2
        assert not legacy.exists()
        assert await outbox.adopt(legacy) == 0
        assert await outbox.flush_once() == 2
    await channel.close()
    trail = await asyncio.to_thread(_trail, auth_mesh, subject)
    assert sorted(e["id"] for e in trail) == sorted(ids)


def _link_and_download_secrets(mesh: Running, mailbox: Mailbox) -> list[str]:
    """Every storage and sharing credential used the ways clients send them, returned for the log search: a verify
    token, an mfa_token, a public-link token (in paths), a link password (in a body), link sessions (header, cookie
    and the ?session= query string browsers' old links use), a download-URL token (in a path)."""
    found: list[str] = []
    before = mailbox.count()
    email_addr = f"l{uuid.uuid4().hex[:10]}@example.org"
    with rest(mesh) as c:
        assert c.post("/api/v1/auth/register", json={"email": email_addr, "password": "link owner password"}).is_success
        verify = link_token(mailbox.wait(email_addr, "Confirm", after=before))
        assert c.post("/api/v1/auth/verify-email", json={"token": verify}).is_success
        owner = c.post("/api/v1/auth/login", json={"email": email_addr, "password": "link owner password"}).json()
    found += [verify, "link owner password", owner["accessToken"], owner["refreshToken"]]
    data = b"a file behind a link\n"
    with rest(mesh, owner["accessToken"]) as c:
        folder = c.post("/api/v1/folders", json={"parent_id": "root", "name": "Linked"}).json()["id"]
        up = c.post("/api/v1/uploads", json={"parent_id": folder, "name": "f.txt", "size": len(data)}).json()
        assert c.put(f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=data).is_success
        file_id = c.post(f"/api/v1/uploads/{up['uploadId']}/finish", json={}).json()["node"]["id"]
        made = c.post(f"/api/v1/files/{file_id}/download-url", json={}).json()
        download_token = made["url"].rsplit("/", 1)[-1]
        assert c.get(made["url"]).content == data
        link = c.post(
            "/api/v1/links",
            json={"node_id": folder, "permission": "LINK_PERMISSION_DOWNLOAD", "password": "the link password 1"},
        ).json()
    token = link["token"]
    base = f"/api/v1/public/links/{token}"
    with rest(mesh) as visitor:
        opened = visitor.post(f"{base}/open", json={"password": "the link password 1"}).json()
        cookie_session = opened["linkSession"]
        assert visitor.get(f"{base}/files/{file_id}/content").content == data  # the cookie
    with rest(mesh) as visitor:
        session = visitor.post(f"{base}/open", json={"password": "the link password 1"}).json()["linkSession"]
        visitor.cookies.clear()
        assert visitor.get(f"{base}/children", headers={"x-link-session": session}).is_success
        assert visitor.get(f"{base}/files/{file_id}/content", params={"session": session}).content == data
        assert visitor.get(f"/s/{token}").status_code in (200, 404)  # the web app's link page, if served
    found += [download_token, token, "the link password 1", cookie_session, session]
    return found


def _app_password_secrets(mesh: Running, email: str, token: str) -> list[str]:
    """An app password made, used over HTTP Basic as the WebDAV service checks it (right and wrong), and its access
    token: the secrets that flow carries."""
    with rest(mesh, token) as c:
        made = c.post("/api/v1/me/app-passwords", json={"name": "webdav"})
    assert made.status_code == 200, made.text
    secret = str(made.json()["secret"])
    wrong = "wxyz" + secret[4:] if not secret.startswith("wxyz") else "abcd" + secret[4:]
    with mesh.channel("auth", "dav_svc") as channel:
        stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
        done = stub.AuthenticateBasic(
            auth_pb2.AuthenticateBasicRequest(email=email, password=secret, client_address="192.0.2.8"), timeout=30
        )
        with pytest.raises(grpc.RpcError):
            stub.AuthenticateBasic(
                auth_pb2.AuthenticateBasicRequest(email=email, password=wrong, client_address="192.0.2.8"), timeout=30
            )
    return [secret, secret.replace("-", ""), wrong, done.access_token]


def test_no_secret_reaches_any_log_or_the_audit_trail(auth_mesh: Running, mailbox: Mailbox) -> None:
    """A full run of every secret-bearing flow, then every log of the mesh is searched for each secret."""
    secrets: list[str] = []
    me = user(auth_mesh, mailbox)
    secrets += [me.password, me.access_token, me.refresh_token]
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/refresh", json={"refresh_token": me.refresh_token})
        secrets += [r.json()["accessToken"], r.json()["refreshToken"]]
        c.post("/api/v1/auth/login", json={"email": me.email, "password": "a wrong guess of a password"})
        secrets.append("a wrong guess of a password")
    secrets += _app_password_secrets(auth_mesh, me.email, r.json()["accessToken"])
    from tests.support.accounts import answer, challenge, enable_totp

    codes = enable_totp(auth_mesh, me)
    secrets += [me.totp_secret, *codes]
    code = me.totp(1)
    mfa_token = challenge(auth_mesh, me)
    assert answer(auth_mesh, mfa_token, code) == 200
    assert answer(auth_mesh, challenge(auth_mesh, me), codes[0]) == 200
    secrets.append(mfa_token)
    before = mailbox.count()
    with rest(auth_mesh) as c:
        c.post("/api/v1/auth/password-recovery", json={"email": me.email})
        reset = link_token(mailbox.wait(me.email, "Reset", after=before))
        c.post("/api/v1/auth/reset-password", json={"token": reset, "new_password": "the newest passphrase"})
    secrets += [reset, "the newest passphrase"]
    secrets += _link_and_download_secrets(auth_mesh, mailbox)
    time.sleep(1.0)  # let the services flush their log lines
    # Envoy writes its access log in batches: wait for a marker request sent last to be in gateway.log.
    marker = f"/api/v1/log-flush-marker-{uuid.uuid4().hex}"
    httpx.get(auth_mesh.url + marker)
    deadline = time.monotonic() + 15
    while marker not in (auth_mesh.data_dir / "logs" / "gateway.log").read_text(errors="replace"):
        assert time.monotonic() < deadline, "the gateway's access log was not written"
        time.sleep(0.2)
    logs = {p.name: p.read_text(errors="replace") for p in (auth_mesh.data_dir / "logs").glob("*.log")}
    assert {"auth.log", "storage.log", "share.log", "gateway.log"} <= set(logs)
    for secret in secrets:
        assert len(secret) >= 6
        for name, text in logs.items():
            assert secret not in text, f"a secret reached {name}"
    admin = make_admin(auth_mesh)
    with rest(auth_mesh, admin.access_token) as c:
        trail = c.get("/api/v1/admin/activity", params={"page_size": 200}).text
    for secret in secrets:
        assert secret not in trail
    # TOTP codes are 6 digits (could collide with anything numeric): checked in the trail and auth log only.
    assert f'"{code}"' not in logs["auth.log"] and f'"{code}"' not in trail
