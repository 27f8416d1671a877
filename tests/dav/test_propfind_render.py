"""PROPFIND's one-pass rendering (dav_svc/propfind.py) answers exactly what WsgiDAV's generic PROPFIND answers.

The real WsgiDAV app (dav_svc.bootstrap.build_app) over the real lock and property stores on SQLite, with an
in-memory fake of the storage port (the Session: root, children, quota, incoming shares). Each request is made
twice, with the fast path and with it switched off, and the two multistatus answers are compared as
namespace-resolved XML: every href, status, property name and value.
"""

from __future__ import annotations

import io
import re
import wsgiref.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import sqlalchemy as sa

from dav_svc import bootstrap, propfind
from dav_svc.config import DavConfig
from dav_svc.provider import FlowDockProvider
from flowdock.storage.v1 import storage_pb2
from flowdock_kernel.config import load

FOLDER = storage_pb2.NODE_KIND_FOLDER
FILE = storage_pb2.NODE_KIND_FILE
USER = "u-1"


def node(node_id: str, name: str, parent: str, *, folder: bool = False, **extra: Any) -> Any:
    n = storage_pb2.Node(id=node_id, name=name, parent_id=parent, owner_id=USER, kind=FOLDER if folder else FILE)
    if not folder:
        n.size = extra.get("size", 10)
        n.sha256 = extra.get("sha256", "ab" * 32)
        n.content_type = extra.get("content_type", "text/plain")
    if extra.get("dated", True):
        n.create_time.seconds, n.create_time.nanos = 1_700_000_000, 999_999_000
        n.modify_time.seconds, n.modify_time.nanos = 1_700_000_123, 500_000_000
    return n


class FakeSession:
    """The storage port as the provider uses it for reading, in memory."""

    def __init__(self, tree: dict[str, list[Any]], incoming: list[Any], limit: int) -> None:
        self.tree = tree
        self.shared = incoming
        self.limit = limit

    def root(self) -> Any:
        return node("root", "", "", folder=True)

    def children(self, folder_id: str) -> list[Any]:
        return self.tree.get(folder_id, [])

    def child(self, folder_id: str, name: str) -> Any | None:
        return next((n for n in self.children(folder_id) if n.name.casefold() == name.casefold()), None)

    def incoming(self) -> list[Any]:
        return self.shared

    def prefetch_quota(self) -> None:
        pass

    def quota(self) -> Any:
        return storage_pb2.Quota(used_bytes=1000, reserved_bytes=24, limit_bytes=self.limit)


class FakeBackend:
    def __init__(self, session: FakeSession) -> None:
        self._session = session

    def session(self, token: str, request_id: str = "") -> FakeSession:
        return self._session


def make_tree(limit: int) -> FakeSession:
    many = [node(f"f{i}", f"file {i:03d}.txt", "many") for i in range(40)]
    many += [
        node("odd", "a&b <c> 'é'.bin", "many", content_type=""),  # escaped name, guessed type
        node("undated", "undated.dat", "many", dated=False),
        node("sub", "Sub & Co", "many", folder=True),
        node("props", "with-props.txt", "many"),
        node("locked", "locked.txt", "many"),
    ]
    tree = {
        "root": [node("many", "many", "root", folder=True), node("top", "top.txt", "root")],
        "many": many,
        "shared-folder": [node("in-share", "inside.txt", "shared-folder")],
    }
    return FakeSession(tree, [node("shared-folder", "Team", "other", folder=True)], limit)


@pytest.fixture(params=[64 * 1024 * 1024, 0], ids=["quota", "no-limit"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    config = load(DavConfig, {"FLOWDOCK_DATA_DIR": str(tmp_path)})
    bootstrap.migrate(config)
    engine: sa.Engine = bootstrap.sync_engine(config)
    front = bootstrap.build_app(config, FakeBackend(make_tree(request.param)), engine)  # type: ignore[arg-type]
    proppatch = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test">'
        b"<D:set><D:prop><Z:colour>blue</Z:colour><Z:rich><Z:x a='1'>y</Z:x></Z:rich></D:prop></D:set>"
        b"</D:propertyupdate>"
    )
    assert call(front, "PROPPATCH", "/dav/many/with-props.txt", proppatch)[0].startswith("207")
    lock = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
        b"<D:locktype><D:write/></D:locktype><D:owner>tests</D:owner></D:lockinfo>"
    )
    assert call(front, "LOCK", "/dav/many/locked.txt", lock)[0].startswith("200")
    try:
        yield front
    finally:
        engine.dispose()


def call(app: Any, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, bytes]:
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        HTTP_AUTHORIZATION="Bearer token",
        CONTENT_LENGTH=str(len(body)) if body else "",
        **{"wsgi.input": io.BytesIO(body)},
    )
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    seen: dict[str, str] = {}

    def start_response(status: str, _headers: list[tuple[str, str]], _exc: Any = None) -> None:
        seen["status"] = status

    out = b"".join(app(environ, start_response))
    return seen["status"], out


def canonical(el: ElementTree.Element) -> Any:
    text = re.sub(r"Second-\d+", "Second-N", (el.text or "").strip())
    return (el.tag, text, tuple(sorted(el.attrib.items())), tuple(canonical(c) for c in el))


def answers(body: bytes) -> dict[str, dict[tuple[str, str], Any]]:
    """href -> {(status, property): canonical value}."""
    root = ElementTree.fromstring(body)  # noqa: S314 (our own answer)
    assert root.tag == "{DAV:}multistatus"
    out: dict[str, dict[tuple[str, str], Any]] = {}
    for response in root.findall("{DAV:}response"):
        href = response.findtext("{DAV:}href") or ""
        props: dict[tuple[str, str], Any] = {}
        for stat in response.findall("{DAV:}propstat"):
            status = stat.findtext("{DAV:}status") or ""
            for prop in stat.find("{DAV:}prop") or []:
                props[(status, prop.tag)] = canonical(prop)
        assert href not in out
        out[href] = props
    return out


def both(app: Any, monkeypatch: pytest.MonkeyPatch, path: str, body: bytes = b"", depth: str = "1") -> Any:
    """The fast answer and WsgiDAV's, and how many responses the fast path rendered itself."""
    rendered: list[str] = []
    original = propfind.render

    def counting(member: propfind.Member, mode: str, names: list[str]) -> str:
        rendered.append(member.href)
        return original(member, mode, names)

    monkeypatch.setattr(propfind, "render", counting)
    fast_status, fast = call(app, "PROPFIND", path, body, depth=depth)
    monkeypatch.setattr(FlowDockProvider, "_propfind", lambda *_: None)
    slow_status, slow = call(app, "PROPFIND", path, body, depth=depth)
    monkeypatch.undo()
    assert fast_status == slow_status
    return answers(fast), answers(slow), rendered


ALLPROP = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
NAMED = (
    b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test" xmlns:W="urn:schemas-microsoft-com:">'
    b"<D:prop><Z:colour/><D:getetag/><D:getcontentlength/><D:resourcetype/><D:quota-used-bytes/>"
    b"<D:quota-available-bytes/><D:creationdate/><D:getlastmodified/><D:displayname/><D:getcontenttype/>"
    b"<D:lockdiscovery/><D:supportedlock/><D:nonesuch/><W:Win32FileAttributes/></D:prop></D:propfind>"
)
LIVE_FIRST = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:foo/></D:prop></D:propfind>'


@pytest.mark.parametrize("body", [b"", ALLPROP, NAMED, LIVE_FIRST], ids=["empty", "allprop", "named", "live-first"])
def test_a_folder_listing_is_answered_as_wsgidav_would(app: Any, monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    fast, slow, rendered = both(app, monkeypatch, "/dav/many/", body)
    assert fast == slow
    assert len(fast) == 1 + 45
    # The fast path rendered all but the members WsgiDAV must (dead properties, a lock).
    assert set(fast) - set(rendered) == {"/dav/many/with-props.txt", "/dav/many/locked.txt"}
    assert fast["/dav/many/a%26b%20%3Cc%3E%20'%C3%A9'.bin"]  # quoted as WsgiDAV quotes hrefs
    if body in (b"", ALLPROP):
        props = fast["/dav/many/file%20000.txt"]
        assert props[("HTTP/1.1 200 OK", "{DAV:}getcontentlength")][1] == "10"
        assert props[("HTTP/1.1 200 OK", "{DAV:}getlastmodified")][1] == "Tue, 14 Nov 2023 22:15:23 GMT"
        assert props[("HTTP/1.1 200 OK", "{DAV:}creationdate")][1] == "2023-11-14T22:13:20Z"
        assert ("HTTP/1.1 200 OK", "{urn:x-test}colour") in fast["/dav/many/with-props.txt"]


@pytest.mark.parametrize("body", [b"", NAMED], ids=["allprop", "named"])
def test_the_root_and_a_shared_folder_are_answered_as_wsgidav_would(
    app: Any, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    fast, slow, rendered = both(app, monkeypatch, "/dav/", body)
    assert fast == slow
    assert set(fast) == {"/dav/", "/dav/many/", "/dav/top.txt", "/dav/Shared%20with%20me/"}
    assert "/dav/Shared%20with%20me/" not in rendered  # the virtual collection is WsgiDAV's
    fast, slow, rendered = both(app, monkeypatch, "/dav/Shared with me/Team/", body)
    assert fast == slow
    assert set(rendered) == {"/dav/Shared%20with%20me/Team/", "/dav/Shared%20with%20me/Team/inside.txt"}


def test_depth_0_of_a_file_and_a_folder(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in ("/dav/top.txt", "/dav/many/", "/dav/many/with-props.txt"):
        fast, slow, _ = both(app, monkeypatch, path, NAMED, depth="0")
        assert fast == slow
        assert len(fast) == 1


def test_what_the_fast_path_leaves_to_wsgidav(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    propname = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'
    fast, slow, rendered = both(app, monkeypatch, "/dav/many/", propname)
    assert fast == slow and not rendered
    assert call(app, "PROPFIND", "/dav/nowhere/", depth="1")[0].startswith("404")
    assert call(app, "PROPFIND", "/dav/many/", b"<not xml", depth="1")[0].startswith("400")
    status, _ = call(app, "PROPFIND", "/dav/top.txt", depth="0", if_none_match='"nope"')
    assert status.startswith("207")
