"""A crafted page_token on any listing is INVALID_ARGUMENT naming page_token, never a 500 (issue 13, item 9).

Every paged REST route gets tokens a client could forge: well-formed JSON of the wrong shape, keys of the wrong
type for the sort order, out-of-range numbers, NUL bytes (PostgreSQL refuses them in text), bytes that are not
UTF-8, and plain garbage; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.accounts import PASSWORD, make_admin, register_and_login
from tests.support.encoding import b64url
from tests.support.mesh import Running


def j(value: Any) -> str:
    return b64url(json.dumps(value).encode())


#: Tokens no service ever issues: each must be refused as page_token, wherever it is sent.
FORGED = [
    "!!not base64!!",
    "\x00",
    "a\x00b",
    b64url(b"\x00"),
    b64url(b"\xff\xfe\xfd"),
    b64url(b"id\x00"),
    j([0, "a", "b\x00"]),
    j([0, "a\x00", "b"]),
    j([7, "a", "b"]),
    j([-1, 5, "b"]),
    j([0, 10**30, "b"]),
    j([0, -(10**30), "b"]),
    j([0, 1.5, "b"]),
    j([True, "a", "b"]),
    j(["a", "b", "c"]),
    j({"a": 1}),
    j([0, "a", "b", "extra"]),
    j([0, "a", "x" * 500]),
    "x" * 5000,
]
#: Well-formed for one order, the wrong key type for another (a name where a size or time is expected, and back).
WRONG_ORDER = [j([0, "name", "b"]), j([1, 12345, "b"])]


def listings(mesh: Running, token: str, link: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/api/v1/folders/root/children", {}),
        ("/api/v1/folders/root/children", {"orderBy": "ORDER_BY_SIZE"}),
        ("/api/v1/folders/root/children", {"orderBy": "ORDER_BY_MODIFIED", "descending": "true"}),
        ("/api/v1/trash", {}),
        ("/api/v1/search", {"query": "a"}),
        ("/api/v1/me/activity", {}),
        ("/api/v1/shares/outgoing", {}),
        ("/api/v1/shares/incoming", {}),
        ("/api/v1/links", {}),
        (f"/api/v1/public/links/{link}/children", {}),
    ]


@pytest.fixture
def seeded(mesh: Running) -> tuple[str, str, str]:
    """A user with a folder, a file, a trashed folder, an outgoing share and a folder link; an admin."""
    token = register_and_login(mesh)
    other_email = f"o{token[-8:].lower()}@example.org"
    h = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=mesh.url, headers=h, timeout=30) as c:
        folder = c.post("/api/v1/folders", json={"parentId": "root", "name": "shared"}).json()["id"]
        gone = c.post("/api/v1/folders", json={"parentId": "root", "name": "gone"}).json()["id"]
        assert c.delete(f"/api/v1/nodes/{gone}").status_code == 200
        content = b64url(b"hello")
        r = c.post("/api/v1/uploads", json={"parentId": folder, "name": "a.txt", "size": 5, "content": content})
        assert r.status_code == 200, r.text
        httpx.post(f"{mesh.url}/api/v1/auth/register", json={"email": other_email, "password": PASSWORD})
        r = c.post("/api/v1/shares", json={"nodeId": folder, "granteeEmail": other_email, "role": "SHARE_ROLE_VIEWER"})
        assert r.status_code == 200, r.text
        r = c.post("/api/v1/links", json={"nodeId": folder, "permission": "LINK_PERMISSION_VIEW"})
        assert r.status_code == 200, r.text
        link = r.json()["token"]
    admin = make_admin(mesh)
    return token, link, admin.access_token


def refused(r: httpx.Response) -> bool:
    """400 INVALID_ARGUMENT naming page_token."""
    if r.status_code != 400:
        return False
    body = r.json()
    return bool(body["code"] == 3 and "page_token" in body["message"])


def test_forged_page_tokens_are_invalid_argument_on_every_listing(mesh: Running, seeded: tuple[str, str, str]) -> None:
    token, link, admin = seeded
    routes = [(path, params, token) for path, params in listings(mesh, token, link)]
    routes += [("/api/v1/admin/users", {}, admin), ("/api/v1/admin/activity", {}, admin)]
    wrong: list[tuple[str, str, int, str]] = []
    for path, params, bearer in routes:
        with httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {bearer}"}, timeout=30) as c:
            assert c.get(path, params=params).status_code == 200, path
            for forged in FORGED:
                r = c.get(path, params={**params, "pageToken": forged})
                if not refused(r):
                    wrong.append((f"{path} {params}", forged[:40], r.status_code, r.text[:100]))
    assert not wrong, "\n".join(map(str, wrong))


def test_tokens_for_another_order_are_refused_or_served_never_500(mesh: Running, seeded: tuple[str, str, str]) -> None:
    token, link, _ = seeded
    wrong: list[tuple[str, str, int, str]] = []
    with httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as c:
        for path, params in listings(mesh, token, link):
            for forged in WRONG_ORDER:
                r = c.get(path, params={**params, "pageToken": forged})
                if r.status_code != 200 and not refused(r):
                    wrong.append((f"{path} {params}", forged, r.status_code, r.text[:100]))
    assert not wrong, "\n".join(map(str, wrong))


def test_issued_page_tokens_still_page_through(mesh: Running) -> None:
    """The stricter checks refuse nothing a service issued: three pages of every kind of listing."""
    token = register_and_login(mesh)
    other = f"q{token[-8:].lower()}@example.org"
    httpx.post(f"{mesh.url}/api/v1/auth/register", json={"email": other, "password": PASSWORD})
    with httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as c:
        ids = []
        for i in range(5):
            data = b"x" * (i + 1)
            body = {"parentId": "root", "name": f"f{i}.txt", "size": len(data), "content": b64url(data)}
            r = c.post("/api/v1/uploads", json=body)
            assert r.status_code == 200, r.text
            ids.append(r.json()["node"]["id"])
            c.post("/api/v1/links", json={"nodeId": ids[-1], "permission": "LINK_PERMISSION_VIEW"})
            c.post("/api/v1/shares", json={"nodeId": ids[-1], "granteeEmail": other, "role": "SHARE_ROLE_VIEWER"})
        for folder in range(5):
            fid = c.post("/api/v1/folders", json={"parentId": "root", "name": f"t{folder}"}).json()["id"]
            c.delete(f"/api/v1/nodes/{fid}")
        # The activity log hears of storage's and share's events through their outboxes, a moment after each change
        # (longer on a busy machine, or after a send was retried): wait until they are there before paging.
        deadline = time.monotonic() + 60
        while len(c.get("/api/v1/me/activity", params={"pageSize": "100"}).json()["events"]) < 5:
            assert time.monotonic() < deadline, "the activity log never had 5 events"
            time.sleep(0.2)
        paged = [
            ("/api/v1/folders/root/children", {}, "nodes"),
            ("/api/v1/folders/root/children", {"orderBy": "ORDER_BY_SIZE"}, "nodes"),
            ("/api/v1/folders/root/children", {"orderBy": "ORDER_BY_MODIFIED", "descending": "true"}, "nodes"),
            ("/api/v1/trash", {}, "entries"),
            ("/api/v1/search", {"query": "f"}, "nodes"),
            ("/api/v1/me/activity", {}, "events"),
            ("/api/v1/shares/outgoing", {}, "shares"),
            ("/api/v1/links", {}, "links"),
        ]
        for path, params, key in paged:
            seen: list[str] = []
            page_token = ""
            for _ in range(20):
                r = c.get(path, params={**params, "pageSize": "2", **({"pageToken": page_token} if page_token else {})})
                assert r.status_code == 200, (path, r.text)
                body = r.json()
                seen += [json.dumps(x, sort_keys=True) for x in body[key]]
                page_token = body["nextPageToken"]
                if not page_token:
                    break
            assert len(seen) >= 5, (path, len(seen))
            assert len(seen) == len(set(seen)), path
