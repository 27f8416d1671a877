"""Nested trash through the gateway (issue 16, item 1): a folder deleted on its own before its parent stays its own
trash entry. Purging, emptying, auto-purging, restoring and deleting the account all follow that rule."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from tests.support.accounts import admin_token
from tests.support.mesh import Running, mesh_fixture
from tests.support.storage_client import Client


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from mesh_fixture(request, tmp_path_factory, "trash", env={}, db_prefix="fdst")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def expiring(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    env = {"FLOWDOCK_STORAGE_TRASH_DAYS": str(2 / 86400), "FLOWDOCK_STORAGE_HOUSEKEEPING_SECONDS": "0.5"}
    yield from mesh_fixture(request, tmp_path_factory, "trash-expiring", env=env, db_prefix="fdst")


def nested(c: Client) -> tuple[str, str, str, str]:
    """P/Q/C with a file in C and one in P; C deleted first, then P. Returns the ids of P, Q, C and C's file."""
    p = c.folder("P")
    q = c.folder("Q", p)
    child = c.folder("C", q)
    inside = c.upload("c.bin", b"c" * 700, child)["node"]["id"]
    c.upload("p.bin", b"p" * 300, p)
    c.ok("DELETE", f"/api/v1/nodes/{child}")
    c.ok("DELETE", f"/api/v1/nodes/{p}")
    return p, q, child, inside


def trash(c: Client) -> dict[str, dict[str, object]]:
    return {e["node"]["id"]: e for e in c.ok("GET", "/api/v1/trash")["entries"]}


def test_purging_the_parent_leaves_the_child_deleted_before_it(mesh: Running) -> None:
    c = Client(mesh)
    p, _, child, inside = nested(c)
    assert set(trash(c)) == {p, child}
    assert int(c.ok("DELETE", f"/api/v1/trash/{p}")["freedBytes"]) == 300
    left = trash(c)
    assert set(left) == {child}
    home = c.ok("GET", "/api/v1/nodes/root")["id"]
    assert left[child]["originalParentId"] == home  # where a restore now puts it
    assert int(left[child]["size"]) == 700
    assert c.quota()["trashBytes"] == 700
    # Restore C after P is gone: to the root (its folder no longer exists), with its content.
    restored = c.ok("POST", f"/api/v1/trash/{child}/restore", json={})
    assert (restored["name"], restored["parentId"]) == ("C", home)
    assert c.content(inside) == b"c" * 700
    assert c.quota()["trashBytes"] == 0
    assert "Traceback" not in mesh.log("storage")


def test_emptying_a_nested_trash(mesh: Running) -> None:
    c = Client(mesh)
    nested(c)
    used = c.quota()["usedBytes"]
    assert int(c.ok("DELETE", "/api/v1/trash")["freedBytes"]) == 1000
    assert c.ok("GET", "/api/v1/trash") == {"entries": [], "nextPageToken": ""}
    assert c.quota()["usedBytes"] == used - 1000
    assert c.quota()["trashBytes"] == 0


def test_purging_the_child_first_then_the_parent(mesh: Running) -> None:
    c = Client(mesh)
    p, _, child, _ = nested(c)
    assert int(c.ok("DELETE", f"/api/v1/trash/{child}")["freedBytes"]) == 700
    assert int(c.ok("DELETE", f"/api/v1/trash/{p}")["freedBytes"]) == 300
    assert trash(c) == {}


def test_restoring_the_parent_while_the_child_stays_in_the_trash(mesh: Running) -> None:
    c = Client(mesh)
    p, q, child, inside = nested(c)
    c.ok("POST", f"/api/v1/trash/{p}/restore", json={})
    assert c.children(q) == []  # C is still in the trash, not brought back with P
    assert set(trash(c)) == {child}
    assert trash(c)[child]["originalParentId"] == q
    restored = c.ok("POST", f"/api/v1/trash/{child}/restore", json={})
    assert restored["parentId"] == q  # its original folder is live again: back where it was
    assert c.children(q) == ["C"]
    assert c.content(inside) == b"c" * 700


def test_restoring_the_child_while_the_parent_is_in_the_trash(mesh: Running) -> None:
    c = Client(mesh)
    p, _, child, _ = nested(c)
    home = c.ok("GET", "/api/v1/nodes/root")["id"]
    assert c.ok("POST", f"/api/v1/trash/{child}/restore", json={})["parentId"] == home
    assert int(c.ok("DELETE", f"/api/v1/trash/{p}")["freedBytes"]) == 300
    assert "C" in c.children()


def test_deleting_an_account_with_a_nested_trash(mesh: Running) -> None:
    c = Client(mesh)
    nested(c)
    me = c.ok("GET", "/api/v1/me")["id"]
    admin = admin_token(mesh)
    r = httpx.delete(f"{mesh.url}/api/v1/admin/users/{me}", headers={"authorization": f"Bearer {admin}"}, timeout=60)
    assert r.status_code == 200, r.text
    engine = sa.create_engine(mesh.service_db_url("storage"))
    try:
        with engine.connect() as db:
            left = db.execute(sa.text("SELECT count(*) FROM nodes WHERE owner_id = :o"), {"o": me}).scalar()
    finally:
        engine.dispose()
    assert left == 0


def test_an_expired_parent_is_purged_with_a_child_deleted_before_it(expiring: Running) -> None:
    c = Client(expiring)
    nested(c)
    deadline = time.monotonic() + 30
    while trash(c) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert trash(c) == {}
    assert c.quota()["usedBytes"] == 0
    assert "housekeeping failed" not in expiring.log("storage")
