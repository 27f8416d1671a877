"""Public links through the gateway: anonymous browse and download, file drop, passwords, expiry, limits,
tampering, scope, management."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import random
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.share.support import LINKS, User, Visitor
from tests.support.mesh import Running


def iso(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def tree(mesh: Running) -> tuple[User, str, str, str, str]:
    """A with Pub/{sub/deep.txt, top.txt} and Private/secret.txt: (A, Pub, sub, top.txt, secret.txt)."""
    a = User(mesh, "a")
    pub = a.folder("Pub")
    sub = a.folder("sub", pub)
    a.upload("deep.txt", b"deep", sub)
    top = a.upload("top.txt", b"top file", pub)["node"]["id"]
    secret = a.upload("secret.txt", b"secret", a.folder("Private"))["node"]["id"]
    return a, pub, sub, top, secret


def changed(token: str, at: int) -> str:
    c = token[at]
    return token[:at] + ("A" if c != "A" else "B") + token[at + 1 :]


def test_link_without_password_plain_get_and_scope(share_mesh: Running) -> None:
    a, pub, _, top, secret = tree(share_mesh)
    link = a.link(pub, "download")
    token = link["token"]
    v = Visitor(share_mesh)
    # No password: no session needed; plain GETs work.
    r = v.children(token)
    assert r.status_code == 200, r.text
    assert [n["name"] for n in r.json()["nodes"]] == ["sub", "top.txt"]
    assert [n["name"] for n in r.json()["path"]] == ["Pub"]
    got = subprocess.run(
        ["curl", "-sS", "-f", f"{share_mesh.url}{LINKS}/{token}/files/{top}/content"], capture_output=True
    )
    assert got.returncode == 0 and got.stdout == b"top file"
    # Nothing above or beside the shared root: the owner's root, another folder, a file elsewhere.
    root = a.ok("GET", f"/api/v1/nodes/{pub}")["parentId"]
    private = a.ok("GET", f"/api/v1/nodes/{secret}")["parentId"]
    for folder in (root, private, secret, str(uuid.uuid4()), "root", "../..", "%2e%2e"):
        assert v.children(token, folder).status_code == 404, folder
    for file_id in (secret, str(uuid.uuid4()), pub):
        assert v.content(token, file_id).status_code in (404, 400), file_id
    assert v.content(token, secret).status_code == 404
    other = User(share_mesh, "o")
    their = other.upload("theirs.txt", b"theirs")["node"]["id"]
    assert v.content(token, their).status_code == 404
    # A token with one character changed (anywhere) is unknown: 404 like a revoked or expired one.
    for at in (0, len(token) // 2, len(token) - 1):
        assert v.children(changed(token, at)).status_code == 404
        assert v.open(changed(token, at)).status_code == 404
        assert v.content(changed(token, at), top).status_code == 404
    assert v.children("short").status_code == 404


def test_view_link_lists_but_does_not_download_and_file_links(share_mesh: Running) -> None:
    a, pub, sub, top, _ = tree(share_mesh)
    view = a.link(pub, "view")["token"]
    v = Visitor(share_mesh)
    assert v.children(view, sub).status_code == 200
    assert v.content(view, top).status_code == 403
    one = a.link(top, "download")["token"]
    listing = v.children(one).json()
    assert [n["id"] for n in listing["nodes"]] == [top]
    assert v.content(one, top).content == b"top file"
    assert v.children(one, pub).status_code == 404  # the file's parent is above the link's root
    r = a.http.post("/api/v1/links", json={"node_id": top, "permission": "LINK_PERMISSION_UPLOAD"})
    assert r.status_code == 400  # a file drop needs a folder


def test_password_sessions_cannot_be_forged_or_reused_elsewhere(share_mesh: Running) -> None:
    a, pub, _, top, _ = tree(share_mesh)
    one = a.link(pub, "download", password="first pass 1")
    two = a.link(pub, "download", password="second pass 2")
    v = Visitor(share_mesh)
    r = v.http.post(f"{LINKS}/{one['token']}/open", json={})
    assert r.status_code == 403  # password missing
    assert v.open(one["token"], "first pass 1").status_code == 200
    good = v.session
    assert v.children(one["token"]).status_code == 200
    # The session of link one does not open link two; a session with one character changed is refused.
    assert v.children(two["token"]).status_code == 401
    for at in (0, len(good) // 2, len(good) - 1):
        v.session = changed(good, at)
        assert v.children(one["token"]).status_code == 401
        assert v.content(one["token"], top).status_code == 401
    v.session = good
    # Changing the password ends the sessions opened with the old one.
    a.ok("PATCH", f"/api/v1/links/{one['id']}", json={"password": "third pass 3"})
    assert v.children(one["token"]).status_code == 401
    assert v.open(one["token"], "first pass 1").status_code == 403
    assert v.open(one["token"], "third pass 3").status_code == 200
    # The password travels in the body: a query string password is ignored (and never needed).
    r = v.http.post(f"{LINKS}/{one['token']}/open?password=third+pass+3", json={})
    assert r.status_code == 403


def test_a_browser_gets_the_link_session_as_a_cookie_scoped_to_the_link(share_mesh: Running) -> None:
    """Download links need no ?session= (query strings land in histories and proxies' logs): the cookie does it."""
    a, pub, _, top, _ = tree(share_mesh)
    link = a.link(pub, "download", password="cookie pass 1")
    other = a.link(pub, "download", password="cookie pass 2")
    with httpx.Client(base_url=share_mesh.url, timeout=60) as browser:
        r = browser.post(f"{LINKS}/{link['token']}/open", json={"password": "cookie pass 1"})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"fd_link_session={r.json()['linkSession']};")
        for attribute in ("HttpOnly", "SameSite=Strict", f"Path={LINKS}/{link['token']}/", "Max-Age="):
            assert attribute in cookie, cookie
        got = browser.get(f"{LINKS}/{link['token']}/files/{top}/content")
        assert got.status_code == 200 and got.content == b"top file", got.text
        assert got.headers["x-content-type-options"] == "nosniff"
        assert browser.get(f"{LINKS}/{link['token']}/children").status_code == 200
        # The cookie is scoped to its link: another password link still asks for its own session.
        assert browser.get(f"{LINKS}/{other['token']}/children").status_code == 401
    # Without the cookie (or header, or query) the password link refuses.
    assert httpx.get(f"{share_mesh.url}{LINKS}/{link['token']}/files/{top}/content").status_code == 401


def test_a_link_download_resumes_by_range_after_the_password(share_mesh: Running, tmp_path: Path) -> None:
    """A visitor resumes a broken download of a password link by Range (issue 18), byte-exact; the password (and
    the link's life) is checked before any range: no session is a 401, an expired link a 404, whatever the range."""
    a, pub, _, _, _ = tree(share_mesh)
    data = os.urandom(2 * 1024 * 1024 + 321)
    fid = a.upload("big.bin", data, pub)["node"]["id"]
    link = a.link(pub, "download", password="range pass 1")
    url = f"{share_mesh.url}{LINKS}/{link['token']}/files/{fid}/content"
    v = Visitor(share_mesh)
    assert v.http.get(url, headers={"range": "bytes=5-"}).status_code == 401
    assert v.open(link["token"], "range pass 1").status_code == 200

    # curl fetches the start and "breaks"; `curl -C -` resumes the same file from where it stopped.
    out = tmp_path / "big.bin"
    session = f"x-link-session: {v.session}"
    for args in (["-r", "0-99999"], ["-C", "-"]):
        run = subprocess.run(
            ["curl", "-sS", "--max-time", "30", "-w", "%{http_code}", "-H", session, *args, "-o", str(out), url],
            capture_output=True, text=True,
        )  # fmt: skip
        assert (run.returncode, run.stdout) == (0, "206"), run.stderr
    assert out.read_bytes() == data
    a.wait_activity("link.downloaded", link_id=link["id"], offset="100000", length=str(len(data) - 100000))

    whole = v.http.get(url, headers=v.headers())
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes" and whole.content == data
    etag = whole.headers["etag"]
    part = v.http.get(url, headers={**v.headers(), "range": "bytes=10-19", "if-range": etag})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}" and part.headers["content-length"] == "10"
    # A stale validator gets the whole body (200); a range beyond the end is a 416 naming the size, also for a
    # browser's download manager (Accept: text/html) — not the redirect to the link page a refused navigation gets.
    stale = v.http.get(url, headers={**v.headers(), "range": "bytes=10-", "if-range": '"' + "1" * 64 + '"'})
    assert stale.status_code == 200 and stale.content == data
    for accept in ("*/*", "text/html,application/xhtml+xml"):
        beyond = v.http.get(url, headers={**v.headers(), "range": f"bytes={len(data)}-", "accept": accept})
        assert beyond.status_code == 416, (accept, beyond.status_code, beyond.text)
        assert beyond.headers["content-range"] == f"bytes */{len(data)}" and beyond.json()["code"] == 9
    # The session may also come as ?session= (a plain browser GET); the range is honoured the same.
    query = v.http.get(url, params={"session": v.session}, headers={"range": "bytes=-5"})
    assert query.status_code == 206 and query.content == data[-5:]

    # An expired link: 404 as for an unknown one, before the range is looked at.
    short = a.link(pub, "download", expire_time=iso(1.5))
    short_url = f"{share_mesh.url}{LINKS}/{short['token']}/files/{fid}/content"
    assert httpx.get(short_url, headers={"range": "bytes=0-0"}).status_code == 206
    time.sleep(2)
    for ask in ("bytes=0-0", f"bytes={len(data)}-"):
        assert httpx.get(short_url, headers={"range": ask}).status_code == 404


def test_twenty_wrong_passwords_are_throttled_per_link_and_per_ip(share_mesh: Running) -> None:
    """The test mesh allows 5 wrong passwords per link and 12 per IP within the window."""
    a, pub, _, _, _ = tree(share_mesh)
    link = a.link(pub, "view", password="right password")
    # Its own loopback address, so wrong passwords of other tests (from 127.0.0.1) do not count here.
    attacker = Visitor(share_mesh, local_address=f"127.0.{random.randint(1, 250)}.{random.randint(2, 250)}")
    statuses = [attacker.open(link["token"], f"guess {i:04d}").status_code for i in range(20)]
    assert statuses == [403] * 5 + [429] * 15, statuses
    # The right password is refused too while the link is throttled: guessing on teaches nothing.
    assert attacker.open(link["token"], "right password").status_code == 429
    r = attacker.open(link["token"], "guess")
    assert any(d["@type"].endswith("QuotaFailure") for d in r.json()["details"])
    # Per IP: the same client spreading guesses over other links hits the IP limit (12) after 7 more.
    others = [a.link(pub, "view", password="other password")["token"] for _ in range(3)]
    more = [attacker.open(t, "wrong wrong").status_code for t in others for _ in range(4)]
    assert more[:7] == [403] * 7 and set(more[7:]) == {429}, more
    # No 5xx anywhere.
    assert all(s < 500 for s in statuses + more)


def test_expired_links_answer_404_like_unknown_ones(share_mesh: Running) -> None:
    a, pub, _, top, _ = tree(share_mesh)
    link = a.link(pub, "download", expire_time=iso(1.5))
    v = Visitor(share_mesh)
    assert v.open(link["token"]).status_code == 200
    time.sleep(2)
    unknown = Visitor(share_mesh)
    for visitor in (v, unknown):
        assert visitor.open(link["token"]).status_code == 404
        assert visitor.children(link["token"]).status_code == 404
        assert visitor.content(link["token"], top).status_code == 404
    bodies = {v.children(t).text for t in (link["token"], changed(link["token"], 3))}
    assert len(bodies) == 1  # expired and unknown: the same answer
    # An expiry in the past is refused; clearing it brings the link back.
    assert (
        a.http.post(
            "/api/v1/links", json={"node_id": pub, "permission": "LINK_PERMISSION_VIEW", "expire_time": iso(-60)}
        ).status_code
        == 400
    )
    assert a.http.patch(f"/api/v1/links/{link['id']}", json={"expire_time": iso(-60)}).status_code == 400
    a.ok("PATCH", f"/api/v1/links/{link['id']}", json={"clear_expire_time": True})
    assert v.children(link["token"]).status_code == 200


def test_download_limit_holds_against_two_clients_at_once(share_mesh: Running) -> None:
    a, pub, _, top, _ = tree(share_mesh)
    for _ in range(3):
        link = a.link(pub, "download", max_downloads=1)
        url = f"{share_mesh.url}{LINKS}/{link['token']}/files/{top}/content"

        def fetch(_: int, url: str = url) -> str:
            return subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True
            ).stdout

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            codes = sorted(pool.map(fetch, range(2)))
        assert codes == ["200", "403"], codes  # a limit waiting will not lift: not 429
        listed = {x["id"]: x for x in a.ok("GET", "/api/v1/links")["links"]}
        assert listed[link["id"]]["downloadCount"] == 1
    # Raising the limit lets the next one through.
    a.ok("PATCH", f"/api/v1/links/{link['id']}", json={"max_downloads": 2})
    assert Visitor(share_mesh).content(link["token"], top).status_code == 200
    assert Visitor(share_mesh).content(link["token"], top).status_code == 403


def test_file_drop_uploads_but_sees_nothing(share_mesh: Running) -> None:
    a, pub, sub, top, _ = tree(share_mesh)
    drop = a.link(pub, "upload", password="drop it here")
    v = Visitor(share_mesh)
    assert v.open(drop["token"], "drop it here").status_code == 200
    assert v.children(drop["token"]).status_code == 403
    assert v.children(drop["token"], sub).status_code == 403
    assert v.content(drop["token"], top).status_code == 403
    used = a.quota()["usedBytes"]
    # Small file in one call; its name clashes with an existing file: renamed, the visitor learns nothing.
    r = v.http.post(
        f"{LINKS}/{drop['token']}/uploads",
        json={"name": "top.txt", "size": 5, "content": "aGVsbG8="},
        headers=v.headers(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "UPLOAD_STATE_COMPLETED" and "node" not in r.json()
    # Larger file through the chunk API (create, PUT at offset, finish).
    data = os.urandom(150_000)
    r = v.http.post(
        f"{LINKS}/{drop['token']}/uploads", json={"name": "big.bin", "size": len(data)}, headers=v.headers()
    )
    assert r.status_code == 200, r.text
    upload_id = r.json()["uploadId"]
    assert a.http.get(f"/api/v1/uploads/{upload_id}").status_code == 404  # not the owner's upload to write
    url = f"{LINKS}/{drop['token']}/uploads/{upload_id}"
    r = v.http.put(url, params={"offset": 0}, content=data, headers=v.headers())
    assert r.status_code == 200, r.text
    r = v.http.post(f"{url}/finish", json={}, headers=v.headers())
    assert r.status_code == 200 and r.json()["state"] == "UPLOAD_STATE_COMPLETED", r.text
    names = a.children(pub)
    assert "big.bin" in names and "top (1).txt" in names
    assert a.quota()["usedBytes"] == used + 5 + len(data)
    # Without the session nothing goes in; a download link cannot drop files.
    assert (
        v.http.post(f"{LINKS}/{drop['token']}/uploads", json={"name": "x", "size": 1, "content": "eA=="}).status_code
        == 401
    )
    dl = a.link(pub, "download")["token"]
    assert v.http.post(f"{LINKS}/{dl}/uploads", json={"name": "x", "size": 1, "content": "eA=="}).status_code == 403
    # Revoked: the upload URL is gone too.
    a.ok("DELETE", f"/api/v1/links/{drop['id']}")
    assert (
        v.http.post(
            f"{LINKS}/{drop['token']}/uploads", json={"name": "y", "size": 1, "content": "eA=="}, headers=v.headers()
        ).status_code
        == 404
    )


def test_a_file_drop_link_has_its_own_file_and_byte_limits(share_mesh: Running) -> None:
    """A public file-drop link cannot fill the owner's quota or folder: 3 files and 1 MiB per link here
    (storage_link_drop_max_files / _max_bytes), counted before anything is written, also in parallel."""
    # A reached limit that waiting will not lift: 403 with reason LIMIT_REACHED, not 429 (docs/http-status.md).
    limit_status = 403
    a, pub, _, _, _ = tree(share_mesh)

    def drop(token: str, name: str, size: int, v: Visitor) -> httpx.Response:
        return v.http.post(f"{LINKS}/{token}/uploads", json={"name": name, "size": size}, headers=v.headers())

    counted = a.link(pub, "upload")
    v = Visitor(share_mesh)
    assert [drop(counted["token"], f"f{i}.bin", 10, v).status_code for i in range(3)] == [200, 200, 200]
    r = drop(counted["token"], "f3.bin", 10, v)
    assert r.status_code == limit_status, r.text
    assert r.json()["code"] == 8 and "storage_link_drop_max_files" in r.json()["message"]

    sized = a.link(pub, "upload")
    assert drop(sized["token"], "big1.bin", 600_000, v).status_code == 200
    r = drop(sized["token"], "big2.bin", 600_000, v)
    assert r.status_code == limit_status, r.text
    assert "storage_link_drop_max_bytes" in r.json()["message"] and "1048576" in r.json()["message"]
    assert drop(sized["token"], "small.bin", 1000, v).status_code == 200  # what still fits is taken

    # The owner can set lower limits on one link (never above the deployment's).
    own = a.link(pub, "upload", max_upload_files=1, max_upload_bytes=5000)
    assert own["maxUploadFiles"] == 1 and own["maxUploadBytes"] == "5000"
    r = drop(own["token"], "too-big.bin", 5001, v)
    assert r.status_code == limit_status and "link max_upload_bytes" in r.json()["message"], r.text
    assert drop(own["token"], "one.bin", 10, v).status_code == 200
    r = drop(own["token"], "two.bin", 10, v)
    assert r.status_code == limit_status and "link max_upload_files" in r.json()["message"], r.text
    capped = a.link(pub, "upload", max_upload_files=50)  # above the deployment's 3: 3 apply
    assert [drop(capped["token"], f"c{i}.bin", 10, v).status_code for i in range(4)] == [200, 200, 200, limit_status]
    r = a.http.post(
        "/api/v1/links", json={"node_id": pub, "permission": "LINK_PERMISSION_DOWNLOAD", "max_upload_files": 2}
    )
    assert r.status_code == 400 and "max_upload_files" in r.json()["message"], r.text

    # Ten visitors at once on a fresh link: the count is taken first, so at most 3 get through.
    parallel = a.link(pub, "upload")
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = list(
            pool.map(lambda i: drop(parallel["token"], f"p{i}.bin", 10, Visitor(share_mesh)).status_code, range(10))
        )
    assert sorted(codes) == [200] * 3 + [limit_status] * 7, codes


def test_link_management_and_other_users_ids(share_mesh: Running) -> None:
    a, pub, _, top, _ = tree(share_mesh)
    link = a.link(pub, "view", max_downloads=3)
    listed = a.ok("GET", "/api/v1/links")["links"]
    assert [(x["id"], x["permission"], x["maxDownloads"]) for x in listed] == [(link["id"], "LINK_PERMISSION_VIEW", 3)]
    assert not listed[0].get("token")  # only its hash is stored; shown once at creation
    changed_link = a.ok("PATCH", f"/api/v1/links/{link['id']}", json={"permission": "LINK_PERMISSION_DOWNLOAD"})
    assert changed_link["permission"] == "LINK_PERMISSION_DOWNLOAD"
    assert Visitor(share_mesh).content(link["token"], top).status_code == 200
    c = User(share_mesh, "c")
    for user, lid in ((c, link["id"]), (a, str(uuid.uuid4()))):
        assert user.http.patch(f"/api/v1/links/{lid}", json={"max_downloads": 9}).status_code == 404
        assert user.http.delete(f"/api/v1/links/{lid}").status_code == 404
    assert c.ok("GET", "/api/v1/links").get("links", []) == []
    assert c.http.post("/api/v1/links", json={"node_id": pub, "permission": "LINK_PERMISSION_VIEW"}).status_code == 404
    bad = [
        {"node_id": pub},
        {"node_id": pub, "permission": "LINK_PERMISSION_VIEW", "password": "short"},
        {"node_id": pub, "permission": "LINK_PERMISSION_VIEW", "max_downloads": -1},
        {"node_id": "root", "permission": "LINK_PERMISSION_VIEW"},
    ]
    for body in bad:
        assert a.http.post("/api/v1/links", json=body).status_code == 400, body
    a.ok("DELETE", f"/api/v1/links/{link['id']}")
    assert a.http.delete(f"/api/v1/links/{link['id']}").status_code == 404
    a.wait_activity("link.changed", link_id=link["id"])


def test_link_routes_on_native_grpc_and_grpc_web_and_paging(share_mesh: Running) -> None:
    import grpc
    from google.api import httpbody_pb2

    from flowdock.share.v1 import share_pb2, share_pb2_grpc
    from flowdock.storage.v1 import storage_pb2 as S
    from flowdock.storage.v1 import storage_pb2_grpc
    from tests.e2e.protocols import GrpcWeb, GrpcWebError, native_channel

    a, pub, sub, top, _ = tree(share_mesh)
    for i in range(5):
        a.folder(f"page {i}", pub)
    link = a.link(pub, "view", password="native pass")
    channel = native_channel(share_mesh.host_port)
    opened = share_pb2_grpc.ShareServiceStub(channel).OpenLink(
        share_pb2.OpenLinkRequest(token=link["token"], password="native pass")
    )
    public = storage_pb2_grpc.PublicLinkServiceStub(channel)
    md = (("x-link-session", opened.link_session),)
    seen: list[str] = []
    page_token = ""
    while True:
        page = public.ListLinkChildren(
            S.ListLinkChildrenRequest(token=link["token"], page_size=3, page_token=page_token), metadata=md
        )
        seen += [n.name for n in page.nodes]
        page_token = page.next_page_token
        if not page_token:
            break
    assert seen == [f"page {i}" for i in range(5)] + ["sub", "top.txt"]
    with pytest.raises(grpc.RpcError) as denied:
        list(public.DownloadLinkFile(S.DownloadLinkFileRequest(token=link["token"], file_id=top), metadata=md))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED  # a view link
    web = GrpcWeb(share_mesh.url)
    svc = "flowdock.storage.v1.PublicLinkService"
    listing = web.call(
        f"{svc}/ListLinkChildren",
        S.ListLinkChildrenRequest(token=link["token"], folder_id=sub, session=opened.link_session),
        S.ListLinkChildrenResponse,
    )
    assert [n.name for n in listing.path] == ["Pub", "sub"]
    with pytest.raises(GrpcWebError) as web_denied:
        web.call(
            f"{svc}/DownloadLinkFile",
            S.DownloadLinkFileRequest(token=link["token"], file_id=top, session=opened.link_session),
            httpbody_pb2.HttpBody,
            stream=True,
        )
    assert web_denied.value.status == grpc.StatusCode.PERMISSION_DENIED.value[0]
    # CheckLinkAccess and the rest of AccessService are internal: the gateway does not route them.
    with pytest.raises(GrpcWebError) as unrouted:
        web.call(
            "flowdock.share.v1.AccessService/CheckLinkAccess",
            share_pb2.CheckLinkAccessRequest(token=link["token"], link_session=opened.link_session),
            share_pb2.CheckLinkAccessResponse,
        )
    assert unrouted.value.status in (grpc.StatusCode.UNIMPLEMENTED.value[0], grpc.StatusCode.NOT_FOUND.value[0])


def test_file_drop_over_grpc_web_in_chunks(share_mesh: Running) -> None:
    from flowdock.share.v1 import share_pb2
    from flowdock.storage.v1 import storage_pb2 as S
    from tests.e2e.protocols import GrpcWeb

    a, pub, _, _, _ = tree(share_mesh)
    drop = a.link(pub, "upload", password="browser drop")
    web = GrpcWeb(share_mesh.url)
    opened = web.call(
        "flowdock.share.v1.ShareService/OpenLink",
        share_pb2.OpenLinkRequest(token=drop["token"], password="browser drop"),
        share_pb2.OpenLinkResponse,
    )
    svc = "flowdock.storage.v1.PublicLinkService"
    data = os.urandom(250_000)
    up = web.call(
        f"{svc}/CreateLinkUpload",
        S.CreateLinkUploadRequest(token=drop["token"], session=opened.link_session, name="web.bin", size=len(data)),
        S.Upload,
    )
    for offset in range(0, len(data), 100_000):
        web.call(
            f"{svc}/WriteLinkUploadChunk",
            S.WriteLinkUploadChunkRequest(
                token=drop["token"],
                session=opened.link_session,
                upload_id=up.upload_id,
                offset=offset,
                data=data[offset : offset + 100_000],
            ),
            S.WriteUploadChunkResponse,
        )
    done = web.call(
        f"{svc}/FinishLinkUpload",
        S.FinishLinkUploadRequest(token=drop["token"], session=opened.link_session, upload_id=up.upload_id),
        S.Upload,
    )
    assert done.state == S.UPLOAD_STATE_COMPLETED
    node = next(n for n in a.ok("GET", f"/api/v1/folders/{pub}/children")["nodes"] if n["name"] == "web.bin")
    assert a.content(node["id"]) == data
    a.wait_activity("storage.upload", node_id=node["id"])
