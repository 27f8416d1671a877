"""A NUL character in any string field is INVALID_ARGUMENT naming the field, never a 500 (found by schemathesis).

PostgreSQL cannot store NUL in text: `GET /api/v1/search?query=%00` reached the driver and answered 500. Every
service's interceptor now refuses such requests before a handler runs, on every protocol.
"""

from __future__ import annotations

import httpx

from tests.support.accounts import register_and_login
from tests.support.mesh import Running


def assert_names(r: httpx.Response, field: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == 3, body
    assert body["message"].startswith(f"{field}:"), body
    assert "NUL" in body["message"], body


def test_nul_in_strings_is_invalid_argument_naming_the_field(mesh: Running) -> None:
    token = register_and_login(mesh)
    with httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {token}"}, timeout=30) as c:
        assert_names(c.get("/api/v1/search", params={"query": "a\x00"}), "query")
        for path in ("/api/v1/nodes/x%00y", "/api/v1/files/%00/content"):  # Envoy refuses %00 in a path itself
            r = c.get(path)
            assert (r.status_code, r.json()["code"]) == (400, 3), r.text
        assert_names(c.get("/api/v1/folders/root/children", params={"pageToken": "\x00"}), "page_token")
        assert_names(c.post("/api/v1/folders", json={"parentId": "root\x00", "name": "a"}), "parent_id")
        share = {"nodeId": "root", "granteeEmail": "a\x00@example.org", "role": "SHARE_ROLE_VIEWER"}
        assert_names(c.post("/api/v1/shares", json=share), "grantee_email")
        assert_names(c.get("/api/v1/files/x/content", params={"version": "\x00"}), "version")
        assert c.get("/api/v1/search", params={"query": "a"}).status_code == 200
    login = httpx.post(f"{mesh.url}/api/v1/auth/login", json={"email": "x\x00@example.org", "password": "p" * 12})
    assert_names(login, "email")
