"""WebDAV's big paths through the gateway (issue 20, item 3): a PUT streamed on UploadStream, a client that goes away
mid-body, a PROPFIND of a folder of more than one ListChildren page."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time

from tests.support.dav import Dav, parse_multistatus
from tests.support.mesh import Running

MiB = 1024 * 1024


def test_a_put_of_many_messages_streams_whole_and_exact(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    data = os.urandom(20 * MiB + 12_345)  # many stream messages and a short last one
    r = dav.put("streamed.bin", data)
    assert r.status_code == 201, r.text
    node = next(n for n in dav.rest.ok("GET", "/api/v1/folders/root/children")["nodes"] if n["name"] == "streamed.bin")
    assert node["sha256"] == hashlib.sha256(data).hexdigest()
    assert int(node["size"]) == len(data)
    assert dav.get("streamed.bin").content == data
    # A new version over it, of another size, streams the same way.
    again = data[: 3 * MiB + 1]
    assert dav.put("streamed.bin", again).status_code == 204
    assert hashlib.sha256(dav.get("streamed.bin").content).hexdigest() == hashlib.sha256(again).hexdigest()
    assert dav.rest.quota()["reservedBytes"] == 0


def test_a_put_whose_client_goes_away_mid_body_leaves_no_file_and_no_reservation(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    host, port = dav_mesh.host_port.rsplit(":", 1)
    declared = 24 * MiB
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            f"PUT /dav/gone.bin HTTP/1.1\r\nHost: {dav_mesh.host_port}\r\nAuthorization: Bearer {dav.token}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode())
        block = os.urandom(MiB)
        for _ in range(5):  # several stream messages reach storage before the client goes
            sock.sendall(block)
        time.sleep(0.5)
    # The upload is aborted: its reservation is released, and no file (not even a partial one) ever appears.
    deadline = time.monotonic() + 60
    while dav.rest.quota()["reservedBytes"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dav.rest.quota()["reservedBytes"] == 0
    assert dav.get("gone.bin").status_code == 404
    assert "gone.bin" not in dav.rest.children()
    # The name is free and the service is fine: the same PUT made whole succeeds.
    data = os.urandom(6 * MiB)
    assert dav.put("gone.bin", data).status_code == 201
    assert dav.get("gone.bin").content == data


def test_propfind_of_a_folder_past_one_listing_page_returns_every_entry_right(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    folder = dav.rest.folder("Many")
    count = 1_030  # ListChildren pages hold 1,000
    for i in range(count):
        body = f"entry {i}".encode() * (i % 7 + 1)
        inline = base64.b64encode(body).decode()
        r = dav.rest.http.post(
            "/api/v1/uploads", json={"parent_id": folder, "name": f"e{i:04d}.txt", "size": len(body), "content": inline}
        )
        assert r.status_code == 200, r.text
    dav.rest.folder("Sub folder", folder)
    rest: dict[str, dict[str, str]] = {}
    token = ""
    while True:
        page = dav.rest.ok("GET", f"/api/v1/folders/{folder}/children", params={"page_size": 1000, "page_token": token})
        rest.update({n["name"]: n for n in page["nodes"]})
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert len(rest) == count + 1
    r = dav.propfind("Many", "1")
    assert r.status_code == 207, r.text
    listing = parse_multistatus(r.content)
    assert set(listing) == {"/dav/Many/"} | {
        f"/dav/Many/{name}" + ("/" if name == "Sub folder" else "") for name in rest
    }
    for name, node in rest.items():
        if name == "Sub folder":
            entry = listing["/dav/Many/Sub folder/"]
            assert entry.collection
            assert "getcontentlength" not in entry.props
            continue
        entry = listing[f"/dav/Many/{name}"]
        assert not entry.collection
        assert entry.props["displayname"] == name
        assert entry.props["getcontentlength"] == str(node["size"])
        assert entry.props["getetag"] == f"{node['id']}-{node['sha256'][:24]}"
        assert entry.props["getcontenttype"] == (node.get("contentType") or "text/plain")
        assert entry.props["getlastmodified"].endswith(" GMT")
    # A named PROPFIND answers the same sizes, and a property nobody has as 404 (not a 500, not missing).
    ask = (
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-none">'
        b"<D:prop><D:getcontentlength/><Z:nothing/></D:prop></D:propfind>"
    )
    named = dav.propfind("Many", "1", ask)
    assert named.status_code == 207
    sizes = parse_multistatus(named.content)
    assert sizes["/dav/Many/e0007.txt"].props["getcontentlength"] == str(rest["e0007.txt"]["size"])
    assert named.content.count(b"404 Not Found") == count + 2  # every file, the sub folder and Many itself
