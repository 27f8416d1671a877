"""WebDAV bad input through the gateway (issue 20, "Bad input"): each gets a precise status, nothing half-written,
never a 500 or a hang."""

from __future__ import annotations

import http.client
import socket

from tests.support.dav import Dav
from tests.support.mesh import Running

MiB = 1024 * 1024


def raw(mesh: Running, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """One request exactly as written (no client-side normalisation of the path)."""
    host, port = mesh.host_port.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def auth(dav: Dav) -> dict[str, str]:
    return {"Authorization": f"Bearer {dav.token}"}


def test_chunked_put_without_a_length_is_411_and_nothing_is_created(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)

    def body() -> object:
        yield b"abc"
        yield b"def"

    r = dav.request("PUT", "chunked.txt", content=body())
    assert r.status_code == 411, r.text
    assert dav.get("chunked.txt").status_code == 404


def test_put_over_quota_is_507_before_the_body_is_sent(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    host, port = dav_mesh.host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            f"PUT /dav/huge.bin HTTP/1.1\r\nHost: {dav_mesh.host_port}\r\nAuthorization: Bearer {dav.token}\r\n"
            f"Content-Length: {100 * MiB}\r\n\r\n"
        )
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode("latin-1")  # no byte of the body was sent: the answer comes anyway
    assert answer.startswith("HTTP/1.1 507"), answer[:200]
    assert dav.get("huge.bin").status_code == 404
    assert dav.rest.quota()["reservedBytes"] == 0


def test_move_into_its_own_subtree_is_refused(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.request("MKCOL", "Outer").status_code == 201
    assert dav.request("MKCOL", "Outer/Inner").status_code == 201
    r = dav.request("MOVE", "Outer", headers={"Destination": dav.destination("Outer/Inner/Outer")})
    assert r.status_code == 403
    assert dav.propfind("Outer/Inner", "0").status_code == 207


def test_copy_onto_an_existing_target_without_overwrite_is_412(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.put("src.txt", b"source").status_code == 201
    assert dav.put("dst.txt", b"target").status_code == 201
    r = dav.request("COPY", "src.txt", headers={"Destination": dav.destination("dst.txt"), "Overwrite": "F"})
    assert r.status_code == 412
    assert dav.get("dst.txt").content == b"target"
    r = dav.request("COPY", "src.txt", headers={"Destination": dav.destination("dst.txt"), "Overwrite": "T"})
    assert r.status_code == 204, r.text  # replaced an existing resource (RFC 4918 9.8.5)
    assert dav.get("dst.txt").content == b"source"


def test_destination_on_another_host_is_502(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.put("here.txt", b"h").status_code == 201
    r = dav.request("MOVE", "here.txt", headers={"Destination": "http://elsewhere.example:8080/dav/there.txt"})
    assert r.status_code == 502
    assert dav.get("here.txt").status_code == 200


def test_a_lock_held_by_another_session_blocks_writes(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.put("held.txt", b"h").status_code == 201
    lock = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        b"<D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    r = dav.request("LOCK", "held.txt", content=lock)
    assert r.status_code == 200
    # A second exclusive lock, a write, a delete, a move without the token: 423 Locked.
    assert dav.request("LOCK", "held.txt", content=lock).status_code == 423
    assert dav.put("held.txt", b"x").status_code == 423
    assert dav.request("DELETE", "held.txt").status_code == 423
    assert dav.get("held.txt").content == b"h"


def test_odd_names_in_the_url(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    h = auth(dav)
    # %2F inside a name: never a file whose name has a slash, never outside /dav/.
    status, _ = raw(dav_mesh, "PUT", "/dav/a%2Fb.txt", {**h, "Content-Length": "1"}, b"x")
    assert status == 400, status
    names = [n["name"] for n in dav.rest.ok("GET", "/api/v1/folders/root/children")["nodes"]]
    assert not any("/" in n for n in names)
    # `..` never climbs out of the mount.
    status, _body = raw(dav_mesh, "PROPFIND", "/dav/../dav/", {**h, "Depth": "0"})
    assert status in (207, 400, 404), status
    status, _ = raw(dav_mesh, "PUT", "/dav/x/../../y.txt", {**h, "Content-Length": "1"}, b"y")
    assert status in (400, 404, 409), status
    # NUL and invalid UTF-8: 400.
    status, _ = raw(dav_mesh, "PUT", "/dav/nul%00.txt", {**h, "Content-Length": "1"}, b"n")
    assert status == 400, status
    status, _ = raw(dav_mesh, "PUT", "/dav/bad%FF%FE.txt", {**h, "Content-Length": "1"}, b"b")
    assert status == 400, status
    names = [n["name"] for n in dav.rest.ok("GET", "/api/v1/folders/root/children")["nodes"]]
    assert names == [n for n in names if "\x00" not in n and "\ufffd" not in n]
    assert "y.txt" not in names


def test_propfind_bodies_that_are_not_xml_or_are_bombs(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    assert dav.propfind("", "0", b"this is not xml").status_code == 400
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode() for i in range(1, 10)
        )
        + b']>\n<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol9;</D:displayname></D:prop></D:propfind>'
    )
    r = dav.propfind("", "0", bomb)
    assert r.status_code == 400, r.status_code
    external = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&e;</D:displayname></D:prop></D:propfind>'
    )
    r = dav.propfind("", "0", external)
    assert r.status_code == 400
    assert b"root:" not in r.content


def test_depth_infinity_is_refused_with_the_rfc_condition(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    r = dav.propfind("", "infinity")
    assert r.status_code == 403
    assert b"propfind-finite-depth" in r.content


def test_unknown_paths_next_to_the_mount(dav_mesh: Running) -> None:
    dav = Dav(dav_mesh)
    r = dav.http.request("PROPFIND", "/davx/", headers={"Depth": "0"})
    assert r.status_code == 404
    assert dav.request("MKCOL", "Shared with me/x").status_code in (403, 404, 409)
    assert dav.request("DELETE", "Shared with me").status_code == 403
