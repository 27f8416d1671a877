"""The WsgiDAV provider: FlowDock's tree as WebDAV resources, every read and write a call to storage_svc.

Path `/` is the user's root folder; `/Shared with me/` lists what others shared with the user (each item with the
rights its share gives: storage_svc refuses what the role does not allow, 403). WsgiDAV does the protocol (If
headers, locks, PROPFIND/PROPPATCH XML, ranges); this module maps resources onto nodes:

- PUT streams the body into an upload (CreateUpload with the Content-Length first, so an over-quota PUT is
  refused with 507 before the body is read; then one UploadStream call fed while the body is read, at most
  `dav_chunk_bytes` queued; an existing file gets a new version). A chunked PUT needs X-Expected-Entity-Length
  (macOS Finder sends it), else 411.
- PROPFIND depth 0/1 of files and folders is rendered from the folder listing in one pass (propfind.py).
- GET streams DownloadFile from the requested offset; DELETE moves to the trash; COPY and MOVE are CopyNode and
  UpdateNode on the whole subtree at once (dead properties follow).
- Locks and dead properties are keyed by a per-user URL (`/<user id>/dav/...`), so two users' `/dav/a` never
  share a lock or a property.
"""

from __future__ import annotations

import io
import mimetypes
import urllib.parse
from collections.abc import Iterator
from typing import Any

from wsgidav.dav_error import (
    HTTP_BAD_REQUEST,
    HTTP_FORBIDDEN,
    DAVError,
)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider

from dav_svc import domain, propfind
from dav_svc.backend import Session, is_folder
from dav_svc.domain import SHARED_WITH_ME, BadPath, DavPath

HTTP_LENGTH_REQUIRED = 411
#: environ key: the request's snapshot of locks and dead properties (web.DavFront sets it for PROPFIND).
SNAPSHOT_KEY = "flowdock.snapshot"
#: environ key: a native COPY/MOVE made a new destination (its answer is 201, not WsgiDAV's 204).
CREATED_FLAG = "flowdock.destination_created"


def session_of(environ: dict[str, Any]) -> Session:
    session: Session = environ["flowdock.session"]
    return session


def _epoch(ts: Any) -> float | None:
    if not ts.seconds and not ts.nanos:
        return None
    return float(ts.seconds) + float(ts.nanos) / 1e9


def _parsed(path: str) -> DavPath:
    try:
        return domain.parse(path)
    except BadPath as exc:
        raise DAVError(HTTP_BAD_REQUEST, context_info=str(exc)) from None


class FlowDockProvider(DAVProvider):  # type: ignore[misc]
    """Resolves a path to a resource by walking the user's tree from the root (each folder listed once per request)."""

    def __init__(self) -> None:
        super().__init__()

    def is_readonly(self) -> bool:
        return False

    def ref_url_to_path(self, ref_url: str) -> str:
        """Inverse of `_Resource.get_ref_url`: drop the user id and the share path."""
        _, _user, rest = ref_url.split("/", 2)
        path = "/" + urllib.parse.unquote(rest)
        share = self.share_path.rstrip("/")
        if path == share or path.startswith(share + "/"):
            path = path[len(share) :]
        return path or "/"

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        session = session_of(environ)
        dav_path = _parsed(path)
        root = session.root()
        if dav_path.is_root:
            return Folder(dav_path, environ, root, is_root=True)
        if dav_path.in_shared:
            if len(dav_path.segments) == 1:
                return SharedWithMe(dav_path, environ)
            wanted = dav_path.segments[1]
            top = next((n for n in session.incoming() if n.name.casefold() == wanted.casefold()), None)
            node = top
            rest = dav_path.segments[2:]
        else:
            node = root
            rest = dav_path.segments
        for name in rest:
            if node is None or not is_folder(node):
                return None
            node = session.child(node.id, name)
        if node is None:
            return None
        return _resource(dav_path, environ, node)

    def custom_request_handler(self, environ: dict[str, Any], start_response: Any, default_handler: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "PROPFIND":
            answer = self._propfind(environ, start_response)
            if answer is not None:
                return answer
        return default_handler(environ, start_response)

    def _propfind(self, environ: dict[str, Any], start_response: Any) -> list[bytes] | None:
        """PROPFIND depth 0/1 of a file or folder from its listing (propfind.py); None: WsgiDAV's way."""
        depth = environ.get("HTTP_DEPTH")
        if depth not in ("0", "1") or any(key in environ for key in propfind.CONDITIONAL):
            return None
        res = self.get_resource_inst(environ["PATH_INFO"], environ)
        if not isinstance(res, Folder | File):
            return None
        if isinstance(res, Folder) and not res.dav_path.in_shared:
            session_of(environ).prefetch_quota()  # answered while the folder is listed
        asked = propfind.request_mode(environ)
        if asked is None:
            return None
        mode, names = asked
        return propfind.respond(start_response, self._members(res, depth, environ), mode, names)

    def _members(self, res: Any, depth: str, environ: dict[str, Any]) -> Iterator[propfind.Member]:
        session = session_of(environ)
        snapshot = environ.get(SNAPSHOT_KEY)
        # Per member, a look at its dead properties and locks only when the user has any (one load per request).
        props = self.prop_manager if self.prop_manager and (snapshot is None or snapshot.holds("prop")) else None
        locks = self.lock_manager if self.lock_manager and (snapshot is None or snapshot.holds("lock")) else None
        user = environ.get("wsgidav.auth.user_name") or "anonymous"
        mount = self.mount_path + self.share_path
        quota: tuple[int | None, int | None] | None = None

        def folder_quota() -> tuple[int | None, int | None]:
            nonlocal quota
            if quota is None:
                q = session.quota()
                used = int(q.used_bytes) + int(q.reserved_bytes)
                quota = (used, max(0, int(q.limit_bytes) - used) if q.limit_bytes > 0 else None)
            return quota

        def member(path: str, name: str, href: str, node: Any, in_shared: bool) -> propfind.Member:
            collection = is_folder(node)
            if props is not None or locks is not None:
                preferred = path + "/" if collection and not path.endswith("/") else path
                ref_url = f"/{user}" + urllib.parse.quote(self.share_path + preferred)  # as _Mixin.get_ref_url
                if (props is not None and props.get_properties(ref_url, environ)) or (
                    locks is not None and locks.get_url_lock_list(ref_url)
                ):
                    return propfind.Member(href, resource=_resource(_parsed(path), environ, node))
            if collection:
                return propfind.Member(
                    href, node, collection=True, name=name, quota=(None, None) if in_shared else folder_quota()
                )
            return propfind.Member(href, node, name=name, content_type=str(node.content_type) or _guess_type(name))

        here = _path_str(res.dav_path)
        own_href = propfind.href(mount, here, res.is_collection)
        yield member(here, res.dav_path.name, own_href, res.node, res.dav_path.in_shared)
        if depth == "1" and isinstance(res, Folder):
            prefix = here.rstrip("/") + "/"
            href_prefix = propfind.href(mount, here, True)
            names: list[str] = []
            for node in session.children(res.node.id):
                name = node.name
                names.append(name)
                in_shared = res.dav_path.in_shared or (res.is_root and name == SHARED_WITH_ME)
                href = href_prefix + propfind.quote_name(name) + ("/" if is_folder(node) else "")
                yield member(prefix + name, name, href, node, in_shared)
            if res.is_root and not any(n.casefold() == SHARED_WITH_ME.casefold() for n in names):
                shared = SharedWithMe(res.dav_path.child(SHARED_WITH_ME), environ)
                yield propfind.Member(shared.get_href(), resource=shared)


def _resource(dav_path: DavPath, environ: dict[str, Any], node: Any) -> Any:
    return Folder(dav_path, environ, node) if is_folder(node) else File(dav_path, environ, node)


def _path_str(dav_path: DavPath) -> str:
    return str(dav_path)


class _Mixin:
    """What files and folders share: per-user ref URLs, node-backed dates, and the native COPY/MOVE/DELETE."""

    node: Any
    dav_path: DavPath
    environ: dict[str, Any]
    provider: Any
    path: str
    is_collection: bool
    remove_all_locks: Any

    # ---- identity

    def get_ref_url(self) -> str:
        user = self.environ.get("wsgidav.auth.user_name") or "anonymous"
        return f"/{user}" + urllib.parse.quote(self.provider.share_path + self.get_preferred_path())

    def get_preferred_path(self) -> str:
        if self.path in ("", "/"):
            return "/"
        if self.is_collection and not self.path.endswith("/"):
            return self.path + "/"
        return self.path

    def get_display_name(self) -> str:
        return str(self.dav_path.name)

    def get_creation_date(self) -> float | None:
        return _epoch(self.node.create_time)

    def get_last_modified(self) -> float | None:
        return _epoch(self.node.modify_time)

    # ---- the tree operations, natively

    def _session(self) -> Session:
        return session_of(self.environ)

    def _target(self, dest_path: str) -> tuple[Any, str]:
        """The folder node `dest_path` goes into and its new name."""
        dest = _parsed(dest_path)
        if dest.is_root or (dest.in_shared and len(dest.segments) == 1):
            raise DAVError(HTTP_FORBIDDEN, context_info="that collection cannot be replaced")
        if dest.in_shared and len(dest.segments) == 2:
            raise DAVError(HTTP_FORBIDDEN, context_info="items cannot be added to Shared with me itself")
        parent = self.provider.get_resource_inst(_path_str(dest.parent()), self.environ)
        if parent is None or not isinstance(parent, Folder) or parent.virtual:
            raise DAVError(409, context_info="the destination's parent is not a folder")
        return parent.node, dest.name

    def _clear_destination(self, dest_path: str) -> None:
        """Overwrite: T was checked by WsgiDAV; the old destination goes to the trash first (RFC 4918 9.9.3)."""
        existing = self.provider.get_resource_inst(dest_path, self.environ)
        # WsgiDAV answers a native COPY/MOVE with 204; RFC 4918 9.8.5 wants 201 when the destination is new
        # (web.DavFront turns the status into 201 when this is set).
        self.environ[CREATED_FLAG] = existing is None
        if existing is not None and existing.node is not None and existing.node.id == self.node.id:
            return  # the same node under another spelling of its name (names compare case-insensitively): a rename
        if existing is not None:
            if getattr(existing, "virtual", False):
                raise DAVError(HTTP_FORBIDDEN)
            self._session().delete(existing.node.id)
            self._forget(existing)

    def _forget(self, res: Any) -> None:
        """A deleted node's dead properties and locks go with it (its descendants' too)."""
        pm = self.provider.prop_manager
        if pm:
            pm.remove_tree(res.get_ref_url())
        res.remove_all_locks(recursive=True)

    def _check_unlocked(self) -> None:
        """423 when this resource or one below it is locked and the request did not submit the lock's token.
        WsgiDAV checks the parent only before a native DELETE or MOVE (its own check covers the generic path)."""
        lm = self.provider.lock_manager
        if lm is None:
            return
        lm.check_write_permission(
            url=self.get_ref_url(),
            depth="infinity",
            token_list=self.environ.get("wsgidav.ifLockTokenList", []),
            principal=self.environ.get("wsgidav.user_name", ""),
        )

    def handle_delete(self) -> bool:
        self._check_unlocked()
        self._session().delete(self.node.id)
        self._forget(self)
        return True

    def support_recursive_delete(self) -> bool:
        return True

    def delete(self) -> None:
        self.handle_delete()

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        parent, name = self._target(dest_path)
        self._clear_destination(dest_path)
        session = self._session()
        if self.is_collection and not depth_infinity:
            session.create_folder(parent.id, name)
        else:
            session.copy(self.node.id, parent.id, name)
        pm = self.provider.prop_manager
        if pm:
            pm.copy_tree(self.get_ref_url(), self._ref_url_of(dest_path), with_children=depth_infinity)
        return True

    def handle_move(self, dest_path: str) -> bool:
        parent, name = self._target(dest_path)
        self._clear_destination(dest_path)
        self._session().move(self.node.id, parent.id, name)
        pm = self.provider.prop_manager
        if pm:
            pm.move_properties(self.get_ref_url(), self._ref_url_of(dest_path), with_children=True)
        self.remove_all_locks(recursive=True)
        return True

    def support_recursive_move(self, dest_path: str) -> bool:
        return True

    def move_recursive(self, dest_path: str) -> None:
        self.handle_move(dest_path)

    def copy_move_single(self, dest_path: str, *, is_move: bool) -> None:
        if is_move:
            self.handle_move(dest_path)
        else:
            self.handle_copy(dest_path, depth_infinity=False)

    def _ref_url_of(self, dest_path: str) -> str:
        user = self.environ.get("wsgidav.auth.user_name") or "anonymous"
        path = dest_path
        if self.is_collection and not path.endswith("/"):
            path += "/"
        return f"/{user}" + urllib.parse.quote(self.provider.share_path + path)


class Folder(_Mixin, DAVCollection):  # type: ignore[misc]
    """A folder (the root too, which also lists `Shared with me`)."""

    virtual = False

    def __init__(self, dav_path: DavPath, environ: dict[str, Any], node: Any, *, is_root: bool = False) -> None:
        DAVCollection.__init__(self, _path_str(dav_path), environ)
        self.dav_path = dav_path
        self.node = node
        self.is_root = is_root

    def get_etag(self) -> None:
        return None

    def get_member_names(self) -> list[str]:
        names = [n.name for n in self._session().children(self.node.id)]
        if self.is_root and not any(n.casefold() == SHARED_WITH_ME.casefold() for n in names):
            names.append(SHARED_WITH_ME)
        return names

    def get_member(self, name: str) -> Any:
        if self.is_root and name == SHARED_WITH_ME:
            return SharedWithMe(self.dav_path.child(name), self.environ)
        node = self._session().child(self.node.id, name)
        return None if node is None else _resource(self.dav_path.child(node.name), self.environ, node)

    def get_member_list(self) -> list[Any]:
        members = [
            _resource(self.dav_path.child(n.name), self.environ, n) for n in self._session().children(self.node.id)
        ]
        if self.is_root and not any(m.name.casefold() == SHARED_WITH_ME.casefold() for m in members):
            members.append(SharedWithMe(self.dav_path.child(SHARED_WITH_ME), self.environ))
        return members

    def create_empty_resource(self, name: str) -> Any:
        """PUT: a file that exists once its body is stored; LOCK on an unmapped URL: an empty file now."""
        name = _checked(name)
        if self.environ.get("REQUEST_METHOD") == "PUT":
            return NewFile(self.dav_path.child(name), self.environ, self.node)
        session = self._session()
        upload = session.create_upload(self.node.id, name, 0, _guess_type(name), replace=False)
        if upload.state != 2:  # UPLOAD_STATE_COMPLETED
            upload = session.finish(upload.upload_id)
        return File(self.dav_path.child(name), self.environ, upload.node)

    def create_collection(self, name: str) -> None:
        self._session().create_folder(self.node.id, _checked(name))

    def handle_delete(self) -> bool:
        if self.is_root:
            raise DAVError(HTTP_FORBIDDEN, context_info="the root folder cannot be deleted")
        return super().handle_delete()

    # ---- RFC 4331 quota, on every collection of the user's own tree (WsgiDAV lists the two properties)

    def get_used_bytes(self) -> int | None:
        if self.dav_path.in_shared:
            return None
        quota = self._session().quota()
        return int(quota.used_bytes) + int(quota.reserved_bytes)

    def get_available_bytes(self) -> int | None:
        if self.dav_path.in_shared:
            return None
        quota = self._session().quota()
        if quota.limit_bytes <= 0:
            return None
        return max(0, int(quota.limit_bytes) - int(quota.used_bytes) - int(quota.reserved_bytes))


class SharedWithMe(_Mixin, DAVCollection):  # type: ignore[misc]
    """`/Shared with me/`: one member per item shared with the user; read-only itself."""

    virtual = True

    def __init__(self, dav_path: DavPath, environ: dict[str, Any]) -> None:
        DAVCollection.__init__(self, _path_str(dav_path), environ)
        self.dav_path = dav_path
        self.node = None

    def get_creation_date(self) -> None:
        return None

    def get_last_modified(self) -> None:
        return None

    def get_etag(self) -> None:
        return None

    def get_member_names(self) -> list[str]:
        return [n.name for n in self._session().incoming()]

    def get_member(self, name: str) -> Any:
        node = next((n for n in self._session().incoming() if n.name == name), None)
        return None if node is None else _resource(self.dav_path.child(node.name), self.environ, node)

    def get_member_list(self) -> list[Any]:
        return [_resource(self.dav_path.child(n.name), self.environ, n) for n in self._session().incoming()]

    def create_empty_resource(self, name: str) -> Any:
        raise DAVError(HTTP_FORBIDDEN, context_info="items cannot be added to Shared with me itself")

    def create_collection(self, name: str) -> None:
        raise DAVError(HTTP_FORBIDDEN, context_info="items cannot be added to Shared with me itself")

    def handle_delete(self) -> bool:
        raise DAVError(HTTP_FORBIDDEN, context_info="Shared with me cannot be deleted")

    def handle_copy(self, dest_path: str, *, depth_infinity: bool) -> bool:
        raise DAVError(HTTP_FORBIDDEN, context_info="Shared with me cannot be copied")

    def handle_move(self, dest_path: str) -> bool:
        raise DAVError(HTTP_FORBIDDEN, context_info="Shared with me cannot be moved")


def _checked(name: str) -> str:
    try:
        return domain.check_name(name)
    except BadPath as exc:
        raise DAVError(HTTP_BAD_REQUEST, context_info=str(exc)) from None


def _guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _declared_length(environ: dict[str, Any]) -> int:
    """The PUT body's size as the request declares it (storage_svc needs it up front to reserve the quota)."""
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        expected = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH", "")
        if expected.isdigit():
            return int(expected)
        raise DAVError(
            HTTP_LENGTH_REQUIRED,
            context_info="a PUT needs Content-Length (or X-Expected-Entity-Length with chunked encoding)",
        )
    raw = environ.get("CONTENT_LENGTH", "") or "0"
    if not raw.isdigit():
        raise DAVError(HTTP_BAD_REQUEST, context_info="Content-Length is not a number")
    return int(raw)


class _Writable:
    """PUT into a file: new (NewFile) or a new version of an existing one (File)."""

    parent_id: str
    upload: Any = None
    writer: UploadWriter | None = None

    def _begin(self, name: str, content_type: str | None, replace: bool) -> UploadWriter:
        environ: dict[str, Any] = self.environ  # type: ignore[attr-defined]
        session = session_of(environ)
        size = _declared_length(environ)
        kind = content_type or _guess_type(name)
        # Here storage_svc reserves `size` against the quota: over it, 507 before a byte of the body is read.
        self.upload = session.create_upload(self.parent_id, name, size, kind, replace)
        self.writer = UploadWriter(session, self.upload, size)
        return self.writer

    def _end(self, with_errors: bool) -> Any:
        environ: dict[str, Any] = self.environ  # type: ignore[attr-defined]
        session = session_of(environ)
        if self.upload is None:
            return None
        if with_errors or self.writer is None or not self.writer.complete:
            if self.writer is not None:
                self.writer.cancel()
            session.abort(self.upload.upload_id)
            if not with_errors:
                raise DAVError(HTTP_BAD_REQUEST, context_info="the body ended before Content-Length bytes")
            return None
        upload = self.upload
        if upload.state != 2:  # UPLOAD_STATE_COMPLETED
            upload = session.finish(upload.upload_id)
        if upload.state == 4:  # UPLOAD_STATE_FAILED: checksum or virus
            raise DAVError(422, context_info=upload.failure or "the upload was refused")
        return upload.node


class File(_Writable, _Mixin, DAVNonCollection):  # type: ignore[misc]
    """A file: GET streams its current version; PUT makes a new version."""

    def __init__(self, dav_path: DavPath, environ: dict[str, Any], node: Any) -> None:
        DAVNonCollection.__init__(self, _path_str(dav_path), environ)
        self.dav_path = dav_path
        self.node = node
        self.parent_id = node.parent_id

    def get_content_length(self) -> int:
        return int(self.node.size)

    def get_content_type(self) -> str:
        return str(self.node.content_type) or _guess_type(self.dav_path.name)

    def get_etag(self) -> str:
        """Stable per version: the node and its content hash (a new version, a new ETag)."""
        return f"{self.node.id}-{self.node.sha256[:24]}"

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_content(self) -> Download:
        download = Download(self._session(), self.node.id, int(self.node.size))
        download.open()  # refusals (a viewer's 403, a missing blob) come before the status line is sent
        return download

    def begin_write(self, *, content_type: str | None = None) -> UploadWriter:
        return self._begin(self.node.name, content_type, replace=True)

    def end_write(self, *, with_errors: bool) -> None:
        node = self._end(with_errors)
        if node is not None:
            self.node = node


class NewFile(_Writable, _Mixin, DAVNonCollection):  # type: ignore[misc]
    """The target of a PUT to a free name: it exists (as a File) once its body has been stored."""

    def __init__(self, dav_path: DavPath, environ: dict[str, Any], parent: Any) -> None:
        DAVNonCollection.__init__(self, _path_str(dav_path), environ)
        self.dav_path = dav_path
        self.parent_id = parent.id
        self.node: Any = None

    def get_content_length(self) -> int:
        return int(self.node.size) if self.node is not None else 0

    def get_content_type(self) -> str:
        return _guess_type(self.dav_path.name)

    def get_etag(self) -> str | None:
        return None if self.node is None else f"{self.node.id}-{self.node.sha256[:24]}"

    def support_etag(self) -> bool:
        return self.node is not None

    def get_creation_date(self) -> float | None:
        return None if self.node is None else _epoch(self.node.create_time)

    def get_last_modified(self) -> float | None:
        return None if self.node is None else _epoch(self.node.modify_time)

    def support_ranges(self) -> bool:
        return False

    def get_content(self) -> io.BytesIO:
        return io.BytesIO(b"")

    def begin_write(self, *, content_type: str | None = None) -> UploadWriter:
        return self._begin(self.dav_path.name, content_type, replace=False)

    def end_write(self, *, with_errors: bool) -> None:
        node = self._end(with_errors)
        if node is not None:
            self.node = node


class UploadWriter:
    """What WsgiDAV writes a PUT body into: one UploadStream call of storage's advised message size, at most
    `dav_chunk_bytes` queued (flat memory), the body read while earlier bytes are being stored."""

    def __init__(self, session: Session, upload: Any, size: int) -> None:
        self.size = size
        self.offset = 0
        self.done = upload.state == 2  # an inline upload (size 0) is complete at once
        self.buffer = bytearray()
        message = int(upload.stream_chunk_size) or int(upload.chunk_size) or session.backend.chunk_bytes
        if upload.max_chunk_size:
            message = min(message, int(upload.max_chunk_size))
        self.message = max(1, message)
        self.stream = session.upload_stream(upload.upload_id, session.backend.chunk_bytes, self.message)

    @property
    def complete(self) -> bool:
        return self.done or self.offset == self.size

    def write(self, data: bytes) -> int:
        if self.stream.sent + len(self.buffer) + len(data) > self.size:
            raise DAVError(HTTP_BAD_REQUEST, context_info="the body is longer than Content-Length")
        if not self.buffer and len(data) == self.message:
            self.stream.send(bytes(data))  # the common case (WsgiDAV reads block_size pieces): no copy
            return len(data)
        self.buffer += data
        while len(self.buffer) >= self.message:
            self.stream.send(bytes(self.buffer[: self.message]))
            del self.buffer[: self.message]
        return len(data)

    def close(self) -> None:
        """The body ended: send the rest, then wait for storage's durable offset of the whole stream."""
        if self.buffer:
            self.stream.send(bytes(self.buffer))
            self.buffer.clear()
        self.offset = self.stream.close()

    def cancel(self) -> None:
        self.stream.cancel()


class Download(io.RawIOBase):
    """The file's bytes as a seekable, lazily opened stream: WsgiDAV seeks to a range's start, then reads."""

    def __init__(self, session: Session, file_id: str, size: int) -> None:
        super().__init__()
        self.session = session
        self.file_id = file_id
        self.size = size
        self.pos = 0
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""

    def open(self) -> None:
        """Start the stream at the current position and receive its first message."""
        if self.pos >= self.size or self._chunks is not None:
            return
        self._chunks = self.session.download(self.file_id, self.pos)
        self._pending = next(self._chunks, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.pos + offset, io.SEEK_END: self.size + offset}[whence]
        if target != self.pos:
            self._stop()
            self.pos = max(0, target)
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes: storage's next message as it came when it fits (WsgiDAV's GET loop takes short reads;
        reassembling exact 1 MiB blocks copied every byte twice), empty only at the end."""
        if self.pos >= self.size:
            return b""
        if self._chunks is None:
            self.open()
        assert self._chunks is not None
        want = self.size - self.pos if size is None or size < 0 else size
        data = self._pending or next(self._chunks, b"")
        if len(data) > want:
            data, self._pending = data[:want], data[want:]
        else:
            self._pending = b""
        self.pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def _stop(self) -> None:
        if self._chunks is not None:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        self._chunks = None
        self._pending = b""

    def close(self) -> None:
        self._stop()
        super().close()


__all__ = ["FlowDockProvider"]
