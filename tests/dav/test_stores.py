"""dav_svc's lock and dead-property stores on their real databases (SQLite and PostgreSQL, the real migration):
WsgiDAV's own lock manager and property manager on top, and a second store instance (another replica) sees
what the first wrote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from wsgidav.lock_man.lock_manager import LockManager

from dav_svc import bootstrap
from dav_svc.config import DavConfig
from dav_svc.stores import SqlLockStorage, SqlMapping, SqlPropertyManager
from flowdock_kernel.config import load
from tests.support.mesh import PG_URL, drop_databases, need_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    env = {"FLOWDOCK_DATA_DIR": str(tmp_path)}
    prefix = ""
    if request.param == "postgres":
        need_postgres()
        prefix = f"fddavst_{uuid.uuid4().hex[:8]}"
        env["FLOWDOCK_DB_URL"] = f"{PG_URL}/{prefix}"
    config = load(DavConfig, env)
    bootstrap.migrate(config)
    eng = bootstrap.sync_engine(config)
    try:
        yield eng
    finally:
        eng.dispose()
        if prefix:
            drop_databases(prefix)


def test_mapping_round_trips_json_and_bytes(engine: sa.Engine) -> None:
    m = SqlMapping(engine, "t")
    m["a"] = {"x": 1, "b": b"\x00<xml/>", "l": [1, "two", None]}
    assert m["a"] == {"x": 1, "b": b"\x00<xml/>", "l": [1, "two", None]}
    m["a"] = [1]
    assert m["a"] == [1]
    assert "a" in m
    assert "z" not in m
    assert dict(m.items()) == {"a": [1]}
    assert len(m) == 1
    del m["a"]
    with pytest.raises(KeyError):
        m["a"]
    assert SqlMapping(engine, "other").get("a") is None


def test_locks_are_shared_between_store_instances(engine: sa.Engine) -> None:
    first = LockManager(SqlLockStorage(engine))
    second = LockManager(SqlLockStorage(engine))
    lock = first.acquire(
        url="/u1/dav/a.txt",
        lock_type="write",
        lock_scope="exclusive",
        lock_depth="0",
        lock_owner=b"<owner/>",
        timeout=60,
        principal="u1",
        token_list=[],
    )
    token = lock["token"]
    assert second.get_lock(token, key=None)["root"] == "/u1/dav/a.txt"
    assert second.is_url_locked("/u1/dav/a.txt")
    assert not second.is_url_locked("/u2/dav/a.txt")
    second.release(token)
    assert not first.is_url_locked("/u1/dav/a.txt")


def test_dead_properties_are_shared_and_move_with_children(engine: sa.Engine) -> None:
    first, second = SqlPropertyManager(engine), SqlPropertyManager(engine)
    first.write_property("/u1/dav/d/", "{urn:x}p", b"<p>1</p>")
    first.write_property("/u1/dav/d/f", "{urn:x}q", b"<q>2</q>")
    assert second.get_property("/u1/dav/d/f", "{urn:x}q") == b"<q>2</q>"
    second.move_properties("/u1/dav/d/", "/u1/dav/e/", with_children=True)
    assert first.get_property("/u1/dav/e/f", "{urn:x}q") == b"<q>2</q>"
    assert first.get_properties("/u1/dav/d/") == []
