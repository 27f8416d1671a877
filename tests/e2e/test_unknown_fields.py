"""Unknown JSON fields in REST bodies are refused, naming the field (issue 16, item 4); known fields, by JSON or
proto name, still work (the other REST suites exercise every route with a body)."""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.mesh import Running, mesh_fixture
from tests.support.storage_client import Client

MiB = 1024 * 1024
UNKNOWN = re.compile(r'unknown field "(.*)" in the request body \(flowdock\.[\w.]+ has no such field\)')


@pytest.fixture(scope="module", params=["sqlite"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from mesh_fixture(request, tmp_path_factory, "fields", env={}, db_prefix="fdst")


def violation(r: httpx.Response) -> str:
    """The field a 400 names as unknown."""
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    match = UNKNOWN.fullmatch(body["message"])
    assert match, body
    return match.group(1)


def test_an_unknown_field_is_refused_by_name(mesh: Running) -> None:
    c = Client(mesh)
    r = c.http.post("/api/v1/folders", json={"parent_id": "root", "name": "Typo", "parentID": "x"})
    assert violation(r) == "parentID"
    assert "Typo" not in c.children()
    # Both spellings the proto3 JSON mapping accepts still work.
    c.ok("POST", "/api/v1/folders", json={"parentId": "root", "name": "Camel"})
    c.ok("POST", "/api/v1/folders", json={"parent_id": "root", "name": "Snake"})
    assert {"Camel", "Snake"} <= set(c.children())


def test_a_junk_field_creates_nothing(mesh: Running) -> None:
    c = Client(mesh)
    junk = "j" * 500_000  # under the JSON body bound (json_body_bytes, 1 MiB): refused for the field
    r = c.http.post("/api/v1/folders", json={"parent_id": "root", "name": "Junk", "junk": junk})
    assert violation(r) == "junk"
    huge = "j" * (50 * 1000 * 1000)  # over it: refused for its size (413), before anything reads it all
    try:
        r = c.http.post("/api/v1/folders", json={"parent_id": "root", "name": "Junk", "junk": huge})
        assert r.status_code == 413, r.text
    except httpx.TransportError:
        pass  # Envoy answered and stopped reading while the client was still sending: refused either way
    assert "Junk" not in c.children()


def test_unknown_fields_on_other_routes_public_ones_too(mesh: Running) -> None:
    c = Client(mesh)
    folder = c.folder("Linked")
    r = c.http.post(
        "/api/v1/links", json={"node_id": folder, "permission": "LINK_PERMISSION_VIEW", "expireTime": None, "x": {}}
    )
    assert violation(r) == "x"
    email = f"f{uuid.uuid4().hex[:10]}@example.org"
    r = httpx.post(
        f"{mesh.url}/api/v1/auth/register", json={"email": email, "password": "a long enough one", "admin": True}
    )
    assert violation(r) == "admin"
    r = c.http.patch(f"/api/v1/nodes/{folder}", json={"name": "Renamed", "node": {"id": "x"}})
    assert violation(r) == "node"
    # Quotes and backslashes in a name keep the answer JSON.
    r = c.http.post("/api/v1/folders", json={"parent_id": "root", "name": "Q", 'we"ird': 1})
    assert violation(r) == 'we\\"ird'  # as written in the body


def test_large_known_bodies_still_pass(mesh: Running) -> None:
    """A 600 KiB file sent inline is an 800 KB JSON body: the check reads it whole and lets it through."""
    c = Client(mesh)
    data = os.urandom(600 * 1024)
    body = {"parent_id": "root", "name": "inline.bin", "size": len(data), "content": base64.b64encode(data).decode()}
    up = c.ok("POST", "/api/v1/uploads", json=body)
    assert up["state"] == "UPLOAD_STATE_COMPLETED"
    assert c.content(up["node"]["id"]) == data
