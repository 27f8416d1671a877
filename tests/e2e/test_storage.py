"""storage_svc features through the gateway: tree, trash, versions, quota, search, finishing, housekeeping."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from flowdock.storage.v1 import storage_pb2 as S
from flowdock.storage.v1 import storage_pb2_grpc
from tests.e2e.protocols import Native, native_channel
from tests.support.accounts import admin_token
from tests.support.mesh import Running, mesh_fixture
from tests.support.storage_client import Client

MiB = 1024 * 1024


def test_compact_listing_states_shared_values_once(store: Running) -> None:
    """`compact=true` leaves each entry's parent and owner to the response, and over REST prints set fields only;
    the plain listing keeps printing every field."""
    c = Client(store)
    top = c.folder("Compact")
    sub = c.folder("sub", top)
    c.upload("a.txt", b"abc", top)
    full = c.ok("GET", f"/api/v1/folders/{top}/children")
    owner = full["ownerId"]
    assert full["parentId"] == top and full["nextPageToken"] == "" and owner
    assert [(n["name"], n["parentId"], n["ownerId"], n["size"], n["sha256"]) for n in full["nodes"]] == [
        ("sub", top, owner, "0", ""),
        ("a.txt", top, owner, "3", hashlib.sha256(b"abc").hexdigest()),
    ]
    compact = c.ok("GET", f"/api/v1/folders/{top}/children", params={"compact": "true"})
    assert (compact["parentId"], compact["ownerId"], "nextPageToken" in compact) == (top, owner, False)
    folder, file = compact["nodes"]
    assert set(folder) == {"id", "name", "kind", "createTime", "modifyTime"} and folder["id"] == sub
    assert file["size"] == "3" and "parentId" not in file and "ownerId" not in file
    for n in full["nodes"]:  # the same entries once the shared values are filled back in
        del n["parentId"], n["ownerId"]
        for key in [k for k, v in n.items() if v in ("", "0")]:
            del n[key]
    assert compact["nodes"] == full["nodes"]
    page = c.ok("GET", f"/api/v1/folders/{sub}/children", params={"compact": "true"})
    assert page == {"parentId": sub, "ownerId": owner}  # an empty page: no "nodes" (proto3 JSON default)
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    plain = native.storage.ListChildren(S.ListChildrenRequest(folder_id="root"), metadata=md)
    packed = native.storage.ListChildren(S.ListChildrenRequest(folder_id="root", compact=True), metadata=md)
    assert plain.parent_id == packed.parent_id != "" and plain.owner_id == packed.owner_id == owner
    assert {(n.parent_id, n.owner_id) for n in plain.nodes} == {(plain.parent_id, owner)}
    assert {(n.parent_id, n.owner_id) for n in packed.nodes} == {("", "")}
    for n in packed.nodes:
        n.parent_id, n.owner_id = packed.parent_id, packed.owner_id
    assert list(packed.nodes) == list(plain.nodes)


def test_listing_pages_sorts_and_breadcrumbs(store: Running) -> None:
    c = Client(store)
    top = c.folder("Top")
    for i in range(12):
        c.folder(f"dir {i:02d}", top)
    for i, size in enumerate([5, 1, 3]):
        c.upload(f"File {i}.txt", b"x" * size, top)
    seen: list[str] = []
    token = ""
    while True:
        page = c.ok("GET", f"/api/v1/folders/{top}/children", params={"page_size": 5, "page_token": token})
        seen += [n["name"] for n in page["nodes"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert seen == [f"dir {i:02d}" for i in range(12)] + ["File 0.txt", "File 1.txt", "File 2.txt"]
    by_size = c.children(top, order_by="ORDER_BY_SIZE", page_size=100)
    assert by_size[12:] == ["File 1.txt", "File 2.txt", "File 0.txt"]  # folders first, then by size
    desc = c.children(top, order_by="ORDER_BY_SIZE", descending=True, page_size=100)
    assert desc[12:] == ["File 0.txt", "File 2.txt", "File 1.txt"]
    deep = c.folder("Deeper", c.folder("dir 00x", top))
    crumbs = c.ok("GET", f"/api/v1/nodes/{deep}/path")["nodes"]
    assert [n["name"] for n in crumbs] == ["", "Top", "dir 00x", "Deeper"]
    r = c.http.get(f"/api/v1/folders/{top}/children", params={"page_token": "garbage!"})
    assert r.status_code == 400
    assert r.json()["details"][0]["fieldViolations"][0]["field"] == "page_token"


def test_rename_move_conflicts_and_cycles(store: Running) -> None:
    c = Client(store)
    a = c.folder("A")
    b = c.folder("B", a)
    c.folder("Taken")
    f = c.upload("note.txt", b"hello")["node"]["id"]
    renamed = c.ok("PATCH", f"/api/v1/nodes/{f}", json={"name": "Note renamed.txt"})
    assert renamed["name"] == "Note renamed.txt"
    moved = c.ok("PATCH", f"/api/v1/nodes/{f}", json={"parent_id": b})
    assert moved["parentId"] == b
    assert c.children(b) == ["Note renamed.txt"]
    r = c.http.patch(f"/api/v1/nodes/{a}", json={"parent_id": b})
    assert r.status_code == 400
    assert "into itself" in r.json()["message"]
    r = c.http.patch(f"/api/v1/nodes/{a}", json={"name": "taken"})  # case-insensitive clash
    assert r.status_code == 409
    renamed = c.ok("PATCH", f"/api/v1/nodes/{a}", json={"name": "taken", "on_conflict": "ON_CONFLICT_RENAME"})
    assert renamed["name"] == "taken (1)"
    r = c.http.patch(f"/api/v1/nodes/{f}", json={"name": "../x"})
    assert r.status_code == 400
    root = c.ok("GET", "/api/v1/nodes/root")
    r = c.http.delete(f"/api/v1/nodes/{root['id']}")
    assert r.status_code == 400


def test_copy_file_and_tree_is_charged_and_byte_exact(store: Running) -> None:
    c = Client(store)
    src = c.folder("Src")
    sub = c.folder("Sub", src)
    one, two = os.urandom(3000), os.urandom(5000)
    c.upload("one.bin", one, src)
    c.upload("two.bin", two, sub)
    used = c.quota()["usedBytes"]
    dst = c.folder("Dst")
    tree = c.ok("POST", f"/api/v1/nodes/{src}/copy", json={"parent_id": dst})
    assert tree["name"] == "Src"
    assert c.quota()["usedBytes"] == used + 8000
    copied = {n["name"]: n for n in c.ok("GET", f"/api/v1/folders/{tree['id']}/children")["nodes"]}
    assert set(copied) == {"Sub", "one.bin"}
    assert c.content(copied["one.bin"]["id"]) == one
    sub_copy = c.ok("GET", f"/api/v1/folders/{copied['Sub']['id']}/children")["nodes"]
    assert c.content(sub_copy[0]["id"]) == two
    beside = c.ok("POST", f"/api/v1/nodes/{copied['one.bin']['id']}/copy", json={})
    assert beside["name"] == "one (1).bin"
    r = c.http.post(f"/api/v1/nodes/{src}/copy", json={"parent_id": sub})
    assert r.status_code == 400


def test_trash_restore_purge_and_quota(store: Running) -> None:
    c = Client(store)
    docs = c.folder("Docs")
    inner = c.folder("Inner", docs)
    data = os.urandom(10_000)
    fid = c.upload("a.bin", data, inner)["node"]["id"]
    used = c.quota()["usedBytes"]
    c.ok("DELETE", f"/api/v1/nodes/{docs}")
    assert "Docs" not in c.children()
    assert c.http.get(f"/api/v1/nodes/{fid}").status_code == 404  # below a trashed folder: gone from view
    trash = c.ok("GET", "/api/v1/trash")["entries"]
    assert [(e["node"]["name"], int(e["size"])) for e in trash] == [("Docs", 10_000)]
    q = c.quota()
    assert q["usedBytes"] == used
    assert q["trashBytes"] == 10_000  # trashed bytes still count
    assert c.ok("POST", f"/api/v1/trash/{docs}/restore", json={})["name"] == "Docs"
    assert c.content(fid) == data
    # Restore into a taken name, and restore when the original folder is itself trashed.
    c.ok("DELETE", f"/api/v1/nodes/{inner}")
    c.folder("Inner", docs)
    assert c.ok("POST", f"/api/v1/trash/{inner}/restore", json={})["name"] == "Inner (1)"
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    c.ok("DELETE", f"/api/v1/nodes/{docs}")
    restored = c.ok("POST", f"/api/v1/trash/{fid}/restore", json={})
    assert restored["parentId"] == c.ok("GET", "/api/v1/nodes/root")["id"]
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    freed = c.ok("DELETE", f"/api/v1/trash/{fid}")
    assert int(freed["freedBytes"]) == 10_000
    assert c.quota()["usedBytes"] == used - 10_000
    assert c.http.post(f"/api/v1/trash/{fid}/restore", json={}).status_code == 404
    c.upload("b.bin", b"y" * 100)
    c.ok("DELETE", f"/api/v1/nodes/{c.ok('GET', '/api/v1/folders/root/children')['nodes'][-1]['id']}")
    c.ok("DELETE", "/api/v1/trash")
    assert c.ok("GET", "/api/v1/trash") == {"entries": [], "nextPageToken": ""}
    assert c.quota()["trashBytes"] == 0


def test_versions_download_restore_and_retention(store: Running) -> None:
    c = Client(store)
    contents = [os.urandom(100 + i) for i in range(5)]
    fid = c.upload("doc.txt", contents[0])["node"]["id"]
    for data in contents[1:]:
        again = c.upload("doc.txt", data, on_conflict="ON_CONFLICT_NEW_VERSION")
        assert again["node"]["id"] == fid
    versions = c.ok("GET", f"/api/v1/files/{fid}/versions")["versions"]
    assert [int(v["number"]) for v in versions] == [5, 4, 3]  # 3 kept
    assert versions[0]["current"] is True
    assert c.content(fid) == contents[4]
    assert c.content(fid, version=versions[2]["id"]) == contents[2]
    q = c.quota()
    assert q["versionBytes"] == len(contents[3]) + len(contents[2])
    restored = c.ok("POST", f"/api/v1/files/{fid}/versions/{versions[2]['id']}/restore", json={})
    assert restored["sha256"] == hashlib.sha256(contents[2]).hexdigest()
    assert c.content(fid) == contents[2]
    assert [int(v["number"]) for v in c.ok("GET", f"/api/v1/files/{fid}/versions")["versions"]] == [6, 5, 4]
    r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "doc.txt", "size": 1})
    assert r.status_code == 409


def test_search_is_case_insensitive_filtered_paginated_and_live_only(store: Running) -> None:
    c = Client(store)
    reports = c.folder("Reports 2024")
    c.upload("Quarterly REPORT.pdf", b"x" * 500, reports)
    c.upload("report-final.docx", b"x" * 50)
    c.upload("photo.jpg", b"x" * 10)
    gone = c.upload("old report.txt", b"x")["node"]["id"]
    c.ok("DELETE", f"/api/v1/nodes/{gone}")
    found = c.ok("GET", "/api/v1/search", params={"query": "RePoRt"})["nodes"]
    assert {n["name"] for n in found} == {"Quarterly REPORT.pdf", "report-final.docx", "Reports 2024"}
    files = c.ok("GET", "/api/v1/search", params={"query": "report", "kind": "NODE_KIND_FILE", "min_size": 100})
    assert [n["name"] for n in files["nodes"]] == ["Quarterly REPORT.pdf"]
    assert [n["name"] for n in c.ok("GET", "/api/v1/search", params={"query": "ph"})["nodes"]] == ["photo.jpg"]
    page = c.ok("GET", "/api/v1/search", params={"query": "report", "page_size": 2})
    rest = c.ok(
        "GET", "/api/v1/search", params={"query": "report", "page_size": 2, "page_token": page["nextPageToken"]}
    )
    assert len(page["nodes"]) == 2
    assert len(rest["nodes"]) == 1
    assert c.http.get("/api/v1/search", params={"query": "%"}).json()["nodes"] == []
    other = Client(store)
    assert other.ok("GET", "/api/v1/search", params={"query": "report"})["nodes"] == []
    assert c.http.get("/api/v1/search?query=%20%20").status_code == 400
    assert c.http.get("/api/v1/search").status_code == 400


def test_folder_upload_keeps_structure(store: Running) -> None:
    c = Client(store)
    base = c.folder("Album")
    for path in ["2024/summer/a.jpg", "2024/summer/b.jpg", "2024/c.jpg", "d.jpg"]:
        up = c.ok("POST", "/api/v1/uploads", json={"parent_id": base, "relative_path": path, "size": 3})
        c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"abc")
        assert c.finish(up["uploadId"])["state"] == "UPLOAD_STATE_COMPLETED"
    assert c.children(base) == ["2024", "d.jpg"]
    y2024 = c.ok("GET", f"/api/v1/folders/{base}/children")["nodes"][0]["id"]
    assert c.children(y2024) == ["summer", "c.jpg"]
    r = c.http.post("/api/v1/uploads", json={"parent_id": base, "relative_path": "../escape.txt", "size": 1})
    assert r.status_code == 400


def test_large_upload_finishes_in_the_background(store: Running) -> None:
    c = Client(store)
    data = os.urandom(3 * MiB + 5)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "big.bin", "size": len(data)})
    c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=data)
    first = c.ok("POST", f"/api/v1/uploads/{up['uploadId']}/finish", json={})
    assert first["state"] in ("UPLOAD_STATE_FINISHING", "UPLOAD_STATE_COMPLETED")
    assert first["state"] == "UPLOAD_STATE_FINISHING"  # over the 1 MiB inline limit of this fixture
    done = c.finish(up["uploadId"])
    assert done["state"] == "UPLOAD_STATE_COMPLETED"
    assert c.content(done["node"]["id"]) == data
    assert c.ok("POST", f"/api/v1/uploads/{up['uploadId']}/finish", json={})["node"]["id"] == done["node"]["id"]


def test_checksum_mismatch_fails_and_releases_quota(store: Running) -> None:
    c = Client(store)
    for size in (100, 2 * MiB):  # inline and background
        data = os.urandom(size)
        before = c.quota()
        up = c.ok(
            "POST",
            "/api/v1/uploads",
            json={"parent_id": "root", "name": f"bad{size}", "size": size, "sha256": "0" * 64},
        )
        assert c.quota()["reservedBytes"] == before["reservedBytes"] + size
        c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=data)
        done = c.finish(up["uploadId"])
        assert done["state"] == "UPLOAD_STATE_FAILED"
        assert "SHA-256" in done["failure"]
        after = c.quota()
        assert after["reservedBytes"] == before["reservedBytes"]
        assert after["usedBytes"] == before["usedBytes"]
        assert f"bad{size}" not in c.children()


def test_quota_is_reserved_at_creation_and_races_cannot_overspend(store: Running) -> None:
    c = Client(store)
    limit = c.quota()["limitBytes"]
    assert limit == 64 * MiB
    r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "huge", "size": limit + 1})
    assert r.status_code == 403  # not 429, which clients retry
    assert r.headers["x-flowdock-error-reason"] == "STORAGE_QUOTA_EXCEEDED"
    assert "storage_quota_bytes" in r.text
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    size = 40 * MiB  # two of these cannot both fit in 64 MiB

    async def race() -> list[grpc.StatusCode]:
        async with grpc.aio.insecure_channel(store.host_port) as channel:
            stub = storage_pb2_grpc.StorageServiceStub(channel)

            async def one(i: int) -> grpc.StatusCode:
                try:
                    await stub.CreateUpload(
                        S.CreateUploadRequest(parent_id="root", name=f"race{i}", size=size), metadata=md
                    )
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

            return list(await asyncio.gather(*(one(i) for i in range(4))))

    codes = asyncio.run(race())
    assert sorted(c.name for c in codes) == ["OK", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    q = c.quota()
    assert q["reservedBytes"] == size
    listing = native.storage.ListChildren(S.ListChildrenRequest(folder_id="root"), metadata=md).nodes
    assert list(listing) == []  # reservations are not files


def test_abort_releases_the_reservation(store: Running) -> None:
    c = Client(store)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "tmp", "size": 5000})
    assert c.quota()["reservedBytes"] == 5000
    c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"z" * 100)
    c.ok("DELETE", f"/api/v1/uploads/{up['uploadId']}")
    assert c.quota()["reservedBytes"] == 0
    assert c.http.get(f"/api/v1/uploads/{up['uploadId']}").status_code == 404


def test_another_users_ids_are_not_found_on_every_storage_route(store: Running) -> None:
    owner, stranger = Client(store), Client(store)
    folder = owner.folder("Mine")
    fid = owner.upload("secret.txt", b"top secret", folder)["node"]["id"]
    version = owner.ok("GET", f"/api/v1/files/{fid}/versions")["versions"][0]["id"]
    up = owner.ok("POST", "/api/v1/uploads", json={"parent_id": folder, "name": "wip", "size": 10})["uploadId"]
    gone = owner.folder("Gone")
    owner.ok("DELETE", f"/api/v1/nodes/{gone}")
    probes = [
        ("GET", f"/api/v1/nodes/{folder}", None),
        ("GET", f"/api/v1/nodes/{folder}/path", None),
        ("GET", f"/api/v1/folders/{folder}/children", None),
        ("PATCH", f"/api/v1/nodes/{fid}", {"name": "x"}),
        ("DELETE", f"/api/v1/nodes/{fid}", None),
        ("POST", f"/api/v1/nodes/{fid}/copy", {"parent_id": "root"}),
        ("POST", "/api/v1/folders", {"parent_id": folder, "name": "intrude"}),
        ("POST", "/api/v1/uploads", {"parent_id": folder, "name": "intrude", "size": 1}),
        ("GET", f"/api/v1/files/{fid}/content", None),
        ("GET", f"/api/v1/files/{fid}/versions", None),
        ("POST", f"/api/v1/files/{fid}/versions/{version}/restore", {}),
        ("GET", f"/api/v1/uploads/{up}", None),
        ("PUT", f"/api/v1/uploads/{up}?offset=0", None),
        ("POST", f"/api/v1/uploads/{up}/finish", {}),
        ("DELETE", f"/api/v1/uploads/{up}", None),
        ("POST", f"/api/v1/trash/{gone}/restore", {}),
        ("DELETE", f"/api/v1/trash/{gone}", None),
    ]
    for method, path, body in probes:
        kw: dict[str, Any] = {"json": body} if body is not None else {}
        if method == "PUT":
            kw = {"content": b"0123456789"}
        r = stranger.http.request(method, path, **kw)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert owner.content(fid) == b"top secret"
    assert owner.ok("GET", f"/api/v1/uploads/{up}")["committedSize"] == "0"


def test_internal_admin_service_is_not_routed_and_checks_the_role(store: Running) -> None:
    c = Client(store)
    native = Native(native_channel(store.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        storage_pb2_grpc.StorageAdminServiceStub(native.channel).GetUserQuota(
            S.GetUserQuotaRequest(user_id="x"), metadata=[("authorization", f"Bearer {c.token}")]
        )
    assert exc.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
    direct = store.channel("storage", "auth_svc")
    admin_stub = storage_pb2_grpc.StorageAdminServiceStub(direct)
    with pytest.raises(grpc.RpcError) as exc:
        admin_stub.GetUserQuota(S.GetUserQuotaRequest(user_id="x"), metadata=[("authorization", f"Bearer {c.token}")])
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    me = c.ok("GET", "/api/v1/me")["id"]
    admin = admin_token(store)
    quota = admin_stub.SetQuota(
        S.SetQuotaRequest(user_id=me, limit_bytes=1000), metadata=[("authorization", f"Bearer {admin}")]
    )
    assert quota.limit_bytes == 1000
    r = c.http.post("/api/v1/uploads", json={"parent_id": "root", "name": "x", "size": 1001})
    assert r.status_code == 403
    direct.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def janitor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    env = {
        "FLOWDOCK_STORAGE_UPLOAD_EXPIRY_HOURS": str(2 / 3600),
        "FLOWDOCK_STORAGE_TRASH_DAYS": str(2 / 86400),
        "FLOWDOCK_STORAGE_HOUSEKEEPING_SECONDS": "0.5",
    }
    yield from mesh_fixture(request, tmp_path_factory, "janitor", env=env, db_prefix="fdst")


def test_abandoned_uploads_expire_and_old_trash_is_purged(janitor: Running) -> None:
    c = Client(janitor)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "abandoned", "size": 1000})
    c.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"q" * 400)
    fid = c.upload("old.txt", b"w" * 300)["node"]["id"]
    c.ok("DELETE", f"/api/v1/nodes/{fid}")
    data = b"inline"
    small = c.ok(
        "POST",
        "/api/v1/uploads",
        json={"parent_id": "root", "name": "small", "size": len(data), "content": base64.b64encode(data).decode()},
    )
    assert c.ok("GET", f"/api/v1/uploads/{small['uploadId']}")["state"] == "UPLOAD_STATE_COMPLETED"
    c.ok("DELETE", f"/api/v1/nodes/{small['node']['id']}")
    assert c.quota()["reservedBytes"] == 1000
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        q = c.quota()
        if q["reservedBytes"] == 0 and q["usedBytes"] == 0:
            break
        time.sleep(0.3)
    assert c.quota() == {
        "usedBytes": 0,
        "reservedBytes": 0,
        "limitBytes": c.quota()["limitBytes"],
        "trashBytes": 0,
        "versionBytes": 0,
    }
    assert c.http.get(f"/api/v1/uploads/{up['uploadId']}").status_code == 404
    assert c.http.get(f"/api/v1/uploads/{small['uploadId']}").status_code == 404  # a finished upload expires too
    assert c.ok("GET", "/api/v1/trash")["entries"] == []
    staging = janitor.data_dir / "storage" / "staging"
    assert not (staging / up["uploadId"]).exists()


def test_storage_events_reach_the_owners_activity_log(store: Running) -> None:
    c = Client(store)
    folder = c.folder("Evented")
    fid = c.upload("e.txt", b"one")["node"]["id"]
    c.upload("e.txt", b"two", on_conflict="ON_CONFLICT_NEW_VERSION")
    c.content(fid)
    c.ok("PATCH", f"/api/v1/nodes/{fid}", json={"name": "f.txt"})
    c.ok("PATCH", f"/api/v1/nodes/{fid}", json={"parent_id": folder})
    c.ok("POST", f"/api/v1/nodes/{fid}/copy", json={})
    old = c.ok("GET", f"/api/v1/files/{fid}/versions")["versions"][-1]["id"]
    c.ok("POST", f"/api/v1/files/{fid}/versions/{old}/restore", json={})
    c.ok("DELETE", f"/api/v1/nodes/{folder}")
    c.ok("POST", f"/api/v1/trash/{folder}/restore", json={})
    c.ok("DELETE", f"/api/v1/nodes/{folder}")
    c.ok("DELETE", f"/api/v1/trash/{folder}")
    wanted = {
        "storage.upload",
        "storage.download",
        "storage.rename",
        "storage.move",
        "storage.copy",
        "storage.version_restore",
        "storage.delete",
        "storage.restore",
        "storage.purge",
    }
    deadline = time.monotonic() + 20
    kinds: set[str] = set()
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not wanted <= kinds:
        events = c.ok("GET", "/api/v1/me/activity", params={"page_size": 100})["events"]
        kinds = {e["kind"] for e in events}
        time.sleep(0.3)
    assert wanted <= kinds, wanted - kinds
    download = next(e for e in events if e["kind"] == "storage.download")
    login = next(e for e in events if e["kind"].startswith("login"))
    assert download["ip"]
    assert download["ip"] == login["ip"]  # the address the gateway reported, as auth_svc saw it too
    assert download["service"] == "storage"
    assert download["details"]["node_id"] == fid


def test_small_files_upload_in_one_call(store: Running) -> None:
    c = Client(store)
    data = os.urandom(1024)
    done = c.ok(
        "POST",
        "/api/v1/uploads",
        json={"parent_id": "root", "name": "tiny.bin", "size": len(data), "content": base64.b64encode(data).decode()},
    )
    assert done["state"] == "UPLOAD_STATE_COMPLETED"
    assert c.content(done["node"]["id"]) == data
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    up = native.storage.CreateUpload(
        S.CreateUploadRequest(parent_id="root", name="tiny2.bin", size=3, content=b"abc"), metadata=md
    )
    assert up.state == S.UPLOAD_STATE_COMPLETED
    assert up.node.size == 3
    # Its upload id answers like any upload's, for its creator only.
    again = native.storage.GetUpload(S.GetUploadRequest(upload_id=up.upload_id), metadata=md)
    assert (again.state, again.node.id, again.committed_size, again.size) == (up.state, up.node.id, 3, 3)
    assert c.ok("GET", f"/api/v1/uploads/{done['uploadId']}")["node"]["id"] == done["node"]["id"]
    other = Client(store)
    assert other.http.get(f"/api/v1/uploads/{done['uploadId']}").status_code == 404
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.CreateUpload(
            S.CreateUploadRequest(parent_id="root", name="t3", size=5, content=b"abc"), metadata=md
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.CreateUpload(
            S.CreateUploadRequest(parent_id="root", name="t4", size=5 * MiB, content=b"x" * 5 * MiB), metadata=md
        )
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "storage_inline_upload_bytes" in (exc.value.details() or "")
    assert c.quota()["reservedBytes"] == 0


def _blob_files(mesh: Running) -> set[str]:
    return {p.name for p in (mesh.data_dir / "storage" / "blobs").glob("*/*/*")}


def test_small_files_in_one_call_keep_every_rule_of_the_three_call_path(store: Running) -> None:
    """The single-call path commits in one transaction without an upload row: conflicts, versions, checksum,
    quota (concurrently too) must still answer exactly as the resumable path does, and nothing is left behind."""
    c = Client(store)
    md = [("authorization", f"Bearer {c.token}")]
    native = Native(native_channel(store.host_port))

    def inline(name: str, data: bytes, **extra: Any) -> S.Upload:
        return native.storage.CreateUpload(
            S.CreateUploadRequest(parent_id="root", name=name, size=len(data), content=data, **extra), metadata=md
        )

    first = inline("note.txt", b"one")
    assert first.state == S.UPLOAD_STATE_COMPLETED and first.node.sha256 == hashlib.sha256(b"one").hexdigest()
    blobs = _blob_files(store)
    with pytest.raises(grpc.RpcError) as exc:
        inline("NOTE.TXT", b"clash")  # names are unique case-insensitively
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert _blob_files(store) == blobs  # the blob written before the refused commit is gone again
    renamed = inline("note.txt", b"two", on_conflict=S.ON_CONFLICT_RENAME)
    assert renamed.node.name == "note (1).txt"
    replaced = inline("note.txt", b"three!", on_conflict=S.ON_CONFLICT_NEW_VERSION)
    assert replaced.node.id == first.node.id and replaced.node.size == 6
    versions = c.ok("GET", f"/api/v1/files/{first.node.id}/versions")["versions"]
    assert [int(v["size"]) for v in versions] == [6, 3]
    assert c.content(first.node.id) == b"three!"
    c.folder("docs")
    with pytest.raises(grpc.RpcError) as exc:
        inline("docs", b"x", on_conflict=S.ON_CONFLICT_NEW_VERSION)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    bad = inline("bad.txt", b"abc", sha256="0" * 64)  # refused content: a FAILED upload, as in three calls
    assert bad.state == S.UPLOAD_STATE_FAILED and "SHA-256" in bad.failure
    assert "bad.txt" not in c.children()
    assert sorted(c.children()) == ["docs", "note (1).txt", "note.txt"]
    q = c.quota()
    assert q["usedBytes"] == 3 + 3 + 6 and q["reservedBytes"] == 0  # versions count

    # Quota: hold all but 4 MiB with an open upload, then race four 3 MiB single calls for the rest.
    free = q["limitBytes"] - q["usedBytes"]
    held = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "held", "size": free - 4 * MiB})
    data = os.urandom(3 * MiB)

    async def race_inline() -> list[tuple[str, str]]:
        async with grpc.aio.insecure_channel(store.host_port) as channel:
            stub = storage_pb2_grpc.StorageServiceStub(channel)

            async def one(i: int) -> tuple[str, str]:
                try:
                    await stub.CreateUpload(
                        S.CreateUploadRequest(parent_id="root", name=f"r{i}", size=len(data), content=data),
                        metadata=md,
                    )
                except grpc.aio.AioRpcError as exc:
                    return exc.code().name, exc.details() or ""
                return "OK", ""

            return list(await asyncio.gather(*(one(i) for i in range(4))))

    outcomes = sorted(asyncio.run(race_inline()))
    assert [code for code, _ in outcomes] == ["OK"] + ["RESOURCE_EXHAUSTED"] * 3
    assert all("storage quota of" in details for _, details in outcomes[1:])
    q = c.quota()
    assert q["usedBytes"] == 12 + 3 * MiB and q["reservedBytes"] == free - 4 * MiB
    c.ok("DELETE", f"/api/v1/uploads/{held['uploadId']}")
    assert len(_blob_files(store)) == len(blobs) + 3  # rename, new version, the race's winner
    staging = store.data_dir / "storage" / "staging"
    assert not [u for u in (first, renamed, replaced) if (staging / u.upload_id).exists()]


def test_download_urls_work_without_headers_and_expire(store: Running) -> None:
    c = Client(store)
    data = os.urandom(5000)
    fid = c.upload("share me.bin", data)["node"]["id"]
    made = c.ok("POST", f"/api/v1/files/{fid}/download-url", json={})
    assert made["url"].startswith("/api/v1/download/")
    r = httpx.get(store.url + made["url"])  # no Authorization header: the URL is the credential
    assert r.status_code == 200
    assert r.content == data
    assert "filename*=UTF-8''share%20me.bin" in r.headers["content-disposition"]
    # Browsers must not sniff user content into HTML or script: on the download URL and on the content route.
    assert r.headers["x-content-type-options"] == "nosniff"
    assert c.http.get(f"/api/v1/files/{fid}/content").headers["x-content-type-options"] == "nosniff"
    forged = made["url"][:-3] + ("AAA" if not made["url"].endswith("AAA") else "BBB")
    assert httpx.get(store.url + forged).status_code == 404
    stranger = Client(store)
    assert stranger.http.post(f"/api/v1/files/{fid}/download-url", json={}).status_code == 404
    time.sleep(3.2)
    expired = httpx.get(store.url + made["url"])
    assert expired.status_code == 404
    assert expired.json()["code"] == 5


def test_a_signed_download_url_resumes_by_range(store: Running, tmp_path: Path) -> None:
    """A browser's download manager or curl resumes a broken signed-URL download by Range (issue 18), byte-exact;
    an If-Range naming other content gets the whole body; a range beyond the end is a 416 naming the size."""
    c = Client(store)
    data = os.urandom(3 * MiB + 123)
    fid = c.upload("resume me.bin", data)["node"]["id"]

    def url() -> str:  # the URLs of this mesh live 2 s: a fresh one per request (the content is the same)
        return store.url + c.ok("POST", f"/api/v1/files/{fid}/download-url", json={})["url"]

    # curl fetches the first MiB and "breaks"; `curl -C -` resumes the same file from where it stopped.
    out = tmp_path / "resume me.bin"
    first = _curl("-r", f"0-{MiB - 1}", "-o", str(out), url())
    assert first.stdout == "206" and out.read_bytes() == data[:MiB]
    rest = _curl("-C", "-", "-o", str(out), url())
    assert rest.stdout == "206", rest.stderr
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()

    whole = httpx.get(url(), timeout=30)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    etag = whole.headers["etag"]
    assert whole.content == data and "content-range" not in whole.headers
    r = httpx.get(url(), headers={"range": "bytes=1000-", "if-range": etag}, timeout=30)
    assert r.status_code == 206, r.text[:300]
    assert r.headers["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert int(r.headers["content-length"]) == len(data) - 1000 and r.content == data[1000:]
    assert r.headers["etag"] == etag and "filename*=UTF-8''resume%20me.bin" in r.headers["content-disposition"]
    tail = httpx.get(url(), headers={"range": "bytes=-7"}, timeout=30)
    assert (tail.status_code, tail.content) == (206, data[-7:])
    # A stale validator (the content changed since) and several ranges both get the whole body: 200.
    stale = httpx.get(url(), headers={"range": "bytes=5-", "if-range": '"' + "0" * 64 + '"'}, timeout=30)
    assert stale.status_code == 200 and stale.content == data
    dated = httpx.get(url(), headers={"range": "bytes=5-", "if-range": "Wed, 21 Oct 2015 07:28:00 GMT"}, timeout=30)
    assert dated.status_code == 200 and dated.content == data
    several = httpx.get(url(), headers={"range": "bytes=0-1,4-5"}, timeout=30)
    assert several.status_code == 200 and several.content == data
    # Beyond the end: 416 with the size, as RFC 9110 asks (a resume that already has every byte is done).
    beyond = httpx.get(url(), headers={"range": f"bytes={len(data)}-", "if-range": etag}, timeout=30)
    assert beyond.status_code == 416, beyond.text
    assert beyond.headers["content-range"] == f"bytes */{len(data)}" and beyond.json()["code"] == 9
    # An expired URL is refused (404) before its range is looked at.
    expired = url()
    time.sleep(3.2)
    late = httpx.get(expired, headers={"range": f"bytes={len(data)}-"}, timeout=30)
    assert late.status_code == 404 and late.json()["code"] == 5
    # The content route's 416 carries the size too.
    own = c.http.get(f"/api/v1/files/{fid}/content", headers={"range": f"bytes={len(data) + 5}-"})
    assert own.status_code == 416 and own.headers["content-range"] == f"bytes */{len(data)}"


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    """curl printing the HTTP status; fails loudly on a transport error."""
    run = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-w", "%{http_code}", *args], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run


def test_concurrent_folder_uploads_create_shared_parents_once(store: Running) -> None:
    c = Client(store)
    md = [("authorization", f"Bearer {c.token}")]

    async def race() -> list[str]:
        async with grpc.aio.insecure_channel(store.host_port) as channel:
            stub = storage_pb2_grpc.StorageServiceStub(channel)
            done = await asyncio.gather(
                *(
                    stub.CreateUpload(
                        S.CreateUploadRequest(
                            parent_id="root", relative_path=f"race/deep/f{i}.txt", size=1, content=b"x"
                        ),
                        metadata=md,
                    )
                    for i in range(8)
                )
            )
            return [d.node.name for d in done]

    names = asyncio.run(race())
    assert sorted(names) == [f"f{i}.txt" for i in range(8)]
    assert c.children() == ["race"]
    race_id = c.ok("GET", "/api/v1/folders/root/children")["nodes"][0]["id"]
    assert c.children(race_id) == ["deep"]
