"""WebDAV through the gateway (issue 20, item 1): a real client's verbs on /dav/ against `flowdock up`, checked
against the REST API's view of the same tree."""

from __future__ import annotations

import base64
import hashlib
import os

import httpx

from tests.support.dav import Dav, parse_multistatus
from tests.support.mesh import Running


def test_without_credentials_the_answer_is_a_basic_challenge(dav_mesh: Running) -> None:
    r = httpx.request("PROPFIND", f"{dav_mesh.url}/dav/", headers={"Depth": "0"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Basic realm="FlowDock"')
    wrong = base64.b64encode(b"nobody@example.org:not-a-password").decode()
    r = httpx.request("PROPFIND", f"{dav_mesh.url}/dav/", headers={"Depth": "0", "authorization": f"Basic {wrong}"})
    assert r.status_code == 401


def test_options_announce_class_1_and_2(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    r = dav.request("OPTIONS", "")
    assert r.status_code == 200, r.text
    assert {"1", "2"} <= {c.strip() for c in r.headers["dav"].split(",")}
    for verb in ("PROPFIND", "COPY", "MOVE", "LOCK", "UNLOCK", "PROPPATCH"):
        assert verb in r.headers["allow"]


def test_put_then_get_propfind_and_rest_agree(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    data = os.urandom(300_000)
    r = dav.put("notes.bin", data)
    assert r.status_code == 201, r.text
    etag = r.headers["etag"]
    got = dav.get("notes.bin")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["etag"] == etag
    listing = dav.listing("")
    entry = listing["/dav/notes.bin"]
    assert entry.props["getcontentlength"] == str(len(data))
    assert entry.props["getetag"].strip('"') == etag.strip('"')
    assert entry.props["getlastmodified"].endswith("GMT")
    assert not entry.collection
    assert listing["/dav/"].collection
    assert listing["/dav/Shared with me/"].collection
    # The REST API sees the same file, bytes and hash.
    nodes = {n["name"]: n for n in dav.rest.ok("GET", "/api/v1/folders/root/children")["nodes"]}
    assert nodes["notes.bin"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_put_over_an_existing_file_makes_a_new_version_and_etags_guard_it(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    first = dav.put("v.txt", b"one")
    assert first.status_code == 201
    second = dav.put("v.txt", b"two!")
    assert second.status_code == 204, second.text
    assert second.headers["etag"] != first.headers["etag"]
    node = next(n for n in dav.rest.ok("GET", "/api/v1/folders/root/children")["nodes"] if n["name"] == "v.txt")
    versions = dav.rest.ok("GET", f"/api/v1/files/{node['id']}/versions")["versions"]
    assert len(versions) == 2
    # If-Match with the old ETag: refused, nothing written; with the current one: accepted.
    stale = dav.put("v.txt", b"three", headers={"If-Match": first.headers["etag"]})
    assert stale.status_code == 412
    assert dav.get("v.txt").content == b"two!"
    fresh = dav.put("v.txt", b"three", headers={"If-Match": second.headers["etag"]})
    assert fresh.status_code == 204
    # If-None-Match: * only creates.
    assert dav.put("v.txt", b"x", headers={"If-None-Match": "*"}).status_code == 412
    assert dav.get("v.txt", headers={"If-None-Match": fresh.headers["etag"]}).status_code == 304


def test_ranges(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    data = bytes(range(256)) * 1000
    assert dav.put("r.bin", data).status_code == 201
    r = dav.get("r.bin", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206
    assert r.content == data[1000:2000]
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    tail = dav.get("r.bin", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == data[-10:]


def test_mkcol_copy_move_delete(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.request("MKCOL", "Docs").status_code == 201
    assert dav.request("MKCOL", "Docs").status_code == 405  # exists
    assert dav.request("MKCOL", "Missing/Child").status_code == 409  # no parent
    assert dav.put("Docs/a.txt", b"alpha").status_code == 201
    r = dav.request("COPY", "Docs/a.txt", headers={"Destination": dav.destination("Docs/b.txt")})
    assert r.status_code == 201, r.text
    assert dav.get("Docs/b.txt").content == b"alpha"
    r = dav.request("MOVE", "Docs", headers={"Destination": dav.destination("Archive")})
    assert r.status_code == 201, r.text
    assert dav.get("Archive/a.txt").content == b"alpha"
    assert dav.get("Docs/a.txt").status_code == 404
    r = dav.request("COPY", "Archive", headers={"Destination": dav.destination("Archive 2"), "Depth": "infinity"})
    assert r.status_code in (201, 204), r.text
    assert set(dav.listing("Archive 2")) == {"/dav/Archive 2/", "/dav/Archive 2/a.txt", "/dav/Archive 2/b.txt"}
    assert dav.request("DELETE", "Archive").status_code == 204
    assert dav.propfind("Archive", "0").status_code == 404
    # DELETE moved it to the trash.
    trash = [e["node"]["name"] for e in dav.rest.ok("GET", "/api/v1/trash")["entries"]]
    assert "Archive" in trash


def test_dead_properties_persist(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.put("p.txt", b"p").status_code == 201
    body = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-flowdock:test">'
        b"<D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>"
    )
    r = dav.request("PROPPATCH", "p.txt", content=body)
    assert r.status_code == 207, r.text
    ask = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-flowdock:test">'
        b"<D:prop><Z:colour/></D:prop></D:propfind>"
    )
    r = dav.propfind("p.txt", "0", ask)
    assert r.status_code == 207
    assert b"blue" in r.content
    # They follow a MOVE.
    assert dav.request("MOVE", "p.txt", headers={"Destination": dav.destination("q.txt")}).status_code in (201, 204)
    assert b"blue" in dav.propfind("q.txt", "0", ask).content


def test_quota_properties(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.put("q.bin", b"q" * 1000).status_code == 201
    ask = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:">'
        b"<D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"
    )
    entry = next(iter(parse_multistatus(dav.propfind("", "0", ask).content).values()))
    used = int(entry.props["quota-used-bytes"])
    assert used >= 1000
    assert int(entry.props["quota-available-bytes"]) == 64 * 1024 * 1024 - used


def test_locks(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.put("l.txt", b"l").status_code == 201
    body = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        b"<D:locktype><D:write/></D:locktype><D:owner>tests</D:owner></D:lockinfo>"
    )
    r = dav.request("LOCK", "l.txt", content=body, headers={"Timeout": "Second-60"})
    assert r.status_code == 200, r.text
    token = r.headers["lock-token"].strip("<>")
    # Someone without the token (another client of the same account) is refused.
    assert dav.put("l.txt", b"other").status_code == 423
    assert dav.put("l.txt", b"mine", headers={"If": f"(<{token}>)"}).status_code == 204
    assert dav.request("UNLOCK", "l.txt", headers={"Lock-Token": f"<{token}>"}).status_code == 204
    assert dav.put("l.txt", b"free").status_code == 204


def test_shared_with_me_has_the_roles_rights(dav_mesh: Running) -> None:
    owner = Dav(dav_mesh)
    grantee = Dav(dav_mesh)
    email = grantee.rest.ok("GET", "/api/v1/me")["email"]
    for name, role in (("Team", "SHARE_ROLE_DOWNLOADER"), ("Peek", "SHARE_ROLE_VIEWER")):
        folder = owner.rest.folder(name)
        owner.rest.upload("plan.txt", b"the plan", folder)
        r = owner.rest.http.post("/api/v1/shares", json={"nodeId": folder, "granteeEmail": email, "role": role})
        assert r.status_code == 200, r.text
    listing = grantee.listing("Shared with me")
    assert {"/dav/Shared with me/Team/", "/dav/Shared with me/Peek/"} <= set(listing)
    assert "/dav/Shared with me/Peek/plan.txt" in grantee.listing("Shared with me/Peek")
    # downloader: read, not write; viewer: list, not read.
    assert grantee.get("Shared with me/Team/plan.txt").content == b"the plan"
    assert grantee.put("Shared with me/Team/plan.txt", b"mine now").status_code == 403
    assert grantee.request("DELETE", "Shared with me/Team/plan.txt").status_code == 403
    assert grantee.get("Shared with me/Peek/plan.txt").status_code == 403
    assert owner.get("Team/plan.txt").content == b"the plan"
