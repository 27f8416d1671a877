"""storage_svc and share_svc as the dav service sees them: sync gRPC stubs, called with the end user's token.

Every call carries the user's `authorization: Bearer` (so storage's and share's permission checks apply
unchanged) and the request id; every failure leaves through statuses.mapped() as the DAVError its status maps to.
A `Session` lives for one HTTP request and caches the folder listings it read (PROPFIND depth 1 and path
resolution read each folder once); writes drop the cache.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from dav_svc import statuses
from dav_svc.domain import SHARED_WITH_ME
from flowdock.auth.v1 import auth_pb2, auth_pb2_grpc
from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from flowdock_kernel.channels import RECONNECT_BACKOFF, channel_options
from flowdock_kernel.mesh import MeshTls, identity_of

Node = storage_pb2.Node
FOLDER = storage_pb2.NODE_KIND_FOLDER
PAGE = 1000


def channel(address: str, max_message_bytes: int, tls: MeshTls | None, peer: str) -> grpc.Channel:
    """A sync channel to `peer` (mutual TLS with the dav service's mesh identity when `tls` is given)."""
    target = f"ipv4:{address}" if "," in address else address
    options: list[tuple[str, Any]] = [
        *channel_options(max_message_bytes),
        ("grpc.lb_policy_name", "round_robin"),
        *RECONNECT_BACKOFF,
    ]
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    options.append(("grpc.ssl_target_name_override", identity_of(peer)))
    return grpc.secure_channel(target, tls.channel_credentials(), options=options)  # type: ignore[arg-type]


UPLOAD_STREAM = "/flowdock.storage.v1.StorageService/UploadStream"


def upload_stream_method(storage_channel: grpc.Channel) -> Any:
    """StorageService.UploadStream taking requests serialised already (`upload_stream_message`)."""
    return storage_channel.stream_stream(
        UPLOAD_STREAM, request_serializer=None, response_deserializer=storage_pb2.UploadStreamResponse.FromString
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def upload_stream_message(upload_id: str, offset: int, data: bytes) -> bytes:
    """An UploadStreamRequest serialised by hand: `data` is copied once (the message class copies it in, and out
    again when serialising: a second pass over every uploaded byte in the request path's busiest loop)."""
    head = b""
    if upload_id:
        raw = upload_id.encode()
        head = b"\x0a" + _varint(len(raw)) + raw  # field 1, length-delimited
    if offset:
        head += b"\x10" + _varint(offset)  # field 2, varint
    if not data:
        return head
    return b"".join((head, b"\x1a", _varint(len(data)), data))  # field 3, length-delimited


@dataclass
class Backend:
    """The stubs, shared by every request (gRPC channels are thread-safe)."""

    storage: storage_pb2_grpc.StorageServiceStub
    shares: share_pb2_grpc.ShareServiceStub
    timeout: float
    chunk_bytes: int
    finish_wait: float
    #: UploadStream with hand-serialised requests (upload_stream_method); None: the generated stub's.
    upload_stream: Any = None

    def session(self, token: str, request_id: str = "") -> Session:
        return Session(self, token, request_id)


@dataclass
class Session:
    """One HTTP request's calls, as the user its token names."""

    backend: Backend
    token: str
    request_id: str = ""
    _children: dict[str, list[Any]] = field(default_factory=dict)
    _root: Any = None
    _quota: Any = None
    _quota_soon: Any = None

    @property
    def metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        meta: tuple[tuple[str, str | bytes], ...] = (("authorization", f"Bearer {self.token}"),)
        if self.request_id:
            meta += (("x-request-id", self.request_id),)
        return meta

    def _call(self, method: Any, request: Any) -> Any:
        with statuses.mapped():
            return method(request, metadata=self.metadata, timeout=self.backend.timeout)

    # ---- reading the tree

    def root(self) -> Any:
        """The user's root folder (its owner_id is the user's id: the call also proves the token)."""
        if self._root is None:
            self._root = self._call(self.backend.storage.GetNode, storage_pb2.GetNodeRequest(node_id="root"))
        return self._root

    def children(self, folder_id: str) -> list[Any]:
        cached = self._children.get(folder_id)
        if cached is not None:
            return cached
        nodes: list[Any] = []
        token = ""
        while True:
            page = self._call(
                self.backend.storage.ListChildren,
                storage_pb2.ListChildrenRequest(folder_id=folder_id, page_size=PAGE, page_token=token),
            )
            nodes.extend(page.nodes)
            token = page.next_page_token
            if not token:
                break
        self._children[folder_id] = nodes
        return nodes

    def child(self, folder_id: str, name: str) -> Any | None:
        """The child called `name` (NFC, then case-insensitively, as storage_svc compares names), or None."""
        wanted = unicodedata.normalize("NFC", name)
        nodes = self.children(folder_id)
        for node in nodes:
            if node.name == wanted:
                return node
        folded = wanted.casefold()
        return next((n for n in nodes if n.name.casefold() == folded), None)

    def incoming(self) -> list[Any]:
        """What others shared with the user, one node per name (the first share wins a name)."""
        shares: list[Any] = []
        token = ""
        while True:
            page = self._call(
                self.backend.shares.ListIncomingShares,
                share_pb2.ListIncomingSharesRequest(page_size=100, page_token=token),
            )
            shares.extend(page.shares)
            token = page.next_page_token
            if not token:
                break
        seen: set[str] = set()
        nodes = []
        for share in shares:
            if share.HasField("node") and share.node.name.casefold() not in seen:
                seen.add(share.node.name.casefold())
                nodes.append(share.node)
        return nodes

    def quota(self) -> Any:
        """The user's quota, once per request (PROPFIND asks it for every collection listed)."""
        if self._quota is None:
            if self._quota_soon is not None:
                soon, self._quota_soon = self._quota_soon, None
                with statuses.mapped():
                    self._quota = soon.result()
            else:
                self._quota = self._call(self.backend.storage.GetQuota, storage_pb2.GetQuotaRequest())
        return self._quota

    def prefetch_quota(self) -> None:
        """Ask for the quota now, answered while the folders are listed (one round trip off a PROPFIND)."""
        if self._quota is None and self._quota_soon is None:
            self._quota_soon = self.backend.storage.GetQuota.future(
                storage_pb2.GetQuotaRequest(), metadata=self.metadata, timeout=self.backend.timeout
            )

    # ---- changing it

    def _changed(self) -> None:
        self._children.clear()

    def create_folder(self, parent_id: str, name: str) -> Any:
        self._changed()
        return self._call(
            self.backend.storage.CreateFolder, storage_pb2.CreateFolderRequest(parent_id=parent_id, name=name)
        )

    def delete(self, node_id: str) -> None:
        self._changed()
        self._call(self.backend.storage.DeleteNode, storage_pb2.DeleteNodeRequest(node_id=node_id))

    def move(self, node_id: str, parent_id: str, name: str) -> Any:
        self._changed()
        return self._call(
            self.backend.storage.UpdateNode,
            storage_pb2.UpdateNodeRequest(node_id=node_id, parent_id=parent_id, name=name),
        )

    def copy(self, node_id: str, parent_id: str, name: str) -> Any:
        self._changed()
        return self._call(
            self.backend.storage.CopyNode, storage_pb2.CopyNodeRequest(node_id=node_id, parent_id=parent_id, name=name)
        )

    # ---- bytes

    def create_upload(self, parent_id: str, name: str, size: int, content_type: str, replace: bool) -> Any:
        """Opens the upload: storage_svc reserves `size` against the quota here, before any byte is read."""
        self._changed()
        conflict = storage_pb2.ON_CONFLICT_NEW_VERSION if replace else storage_pb2.ON_CONFLICT_FAIL
        return self._call(
            self.backend.storage.CreateUpload,
            storage_pb2.CreateUploadRequest(
                parent_id=parent_id, name=name, size=size, content_type=content_type, on_conflict=conflict
            ),
        )

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> int:
        reply = self._call(
            self.backend.storage.WriteUploadChunk,
            storage_pb2.WriteUploadChunkRequest(upload_id=upload_id, offset=offset, data=data),
        )
        return int(reply.committed_size)

    def finish(self, upload_id: str) -> Any:
        """FinishUpload, then wait while storage verifies and scans; the upload as it ended."""
        upload = self._call(self.backend.storage.FinishUpload, storage_pb2.FinishUploadRequest(upload_id=upload_id))
        deadline = time.monotonic() + self.backend.finish_wait
        delay = 0.01
        while upload.state == storage_pb2.UPLOAD_STATE_FINISHING:
            if time.monotonic() > deadline:
                from wsgidav.dav_error import DAVError

                raise DAVError(504, context_info="the upload is still being verified; look again later")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            upload = self._call(self.backend.storage.GetUpload, storage_pb2.GetUploadRequest(upload_id=upload_id))
        return upload

    def upload_stream(self, upload_id: str, window_bytes: int, message_bytes: int) -> UploadStream:
        """An UploadStream call fed from a bounded queue (see `UploadStream`)."""
        return UploadStream(self, upload_id, window_bytes, message_bytes)

    def abort(self, upload_id: str) -> None:
        # Best effort: an open upload expires on its own and its reservation is released then.
        with contextlib.suppress(grpc.RpcError):
            self.backend.storage.AbortUpload(
                storage_pb2.AbortUploadRequest(upload_id=upload_id),
                metadata=self.metadata,
                timeout=self.backend.timeout,
            )

    def download(self, file_id: str, offset: int, length: int = 0) -> Iterator[bytes]:
        """The file's bytes from `offset` as storage streams them (`length` 0: to the end)."""
        stream = self.backend.storage.DownloadFile(
            storage_pb2.DownloadFileRequest(file_id=file_id, offset=offset, length=length), metadata=self.metadata
        )
        try:
            with statuses.mapped():
                for body in stream:
                    if body.data:
                        yield body.data
        finally:
            stream.cancel()


_END = object()


class UploadStream:
    """A PUT body on its way to storage_svc as one UploadStream call, overlapping the body's reading.

    The request thread `send`s messages into a bounded queue (at most `window_bytes` held: flat memory); gRPC's
    own thread feeds them to the call while a second thread drains the committed offsets storage_svc sends back
    after each durable write, so receiving the body, the mesh transfer and storage's writes and fsyncs all run at
    once (unary chunks made each wait for the one before it). A failure of the call surfaces at the next `send`
    or at `close` as the DAVError its status maps to; `cancel` ends the call (the upload stays open and
    resumable until it is aborted or expires: never a half-visible file).
    """

    def __init__(self, session: Session, upload_id: str, window_bytes: int, message_bytes: int) -> None:
        self.session = session
        self.upload_id = upload_id
        self.message_bytes = max(1, message_bytes)
        self.queue: queue.Queue[object] = queue.Queue(maxsize=max(1, window_bytes // self.message_bytes))
        self.committed = 0
        self.sent = 0
        self.error: grpc.RpcError | None = None
        self.call: Any = None
        self._cancelled = threading.Event()
        self._drained = threading.Thread(target=self._drain, name=f"dav-upload-{upload_id[:8]}", daemon=True)
        self._started = False

    def _requests(self) -> Iterator[Any]:
        raw = self.session.backend.upload_stream is not None
        offset = 0
        while True:
            item = self.queue.get()
            if item is _END or self._cancelled.is_set():
                return
            assert isinstance(item, bytes)
            upload_id = self.upload_id if offset == 0 else ""  # required on the first message only
            if raw:
                yield upload_stream_message(upload_id, offset, item)
            else:
                yield storage_pb2.UploadStreamRequest(upload_id=upload_id, offset=offset, data=item)
            offset += len(item)

    def _drain(self) -> None:
        try:
            for reply in self.call:
                self.committed = int(reply.committed_size)
        except grpc.RpcError as exc:
            if not self._cancelled.is_set():
                self.error = exc
            # Unblock a `send` waiting on a full queue and the request iterator waiting on an empty one.
            self._cancelled.set()

    def _start(self) -> None:
        method = self.session.backend.upload_stream or self.session.backend.storage.UploadStream
        self.call = method(self._requests(), metadata=self.session.metadata)
        self._drained.start()
        self._started = True

    def _put(self, item: object) -> None:
        deadline = time.monotonic() + self.session.backend.timeout
        while True:
            if self._cancelled.is_set():
                self._raise()
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    self.cancel()
                    from wsgidav.dav_error import DAVError

                    raise DAVError(504, context_info="storage accepted no upload bytes in time") from None

    def _raise(self) -> None:
        self._drained.join(self.session.backend.timeout)
        if self.error is not None:
            raise statuses.to_dav_error(self.error)
        from wsgidav.dav_error import DAVError

        raise DAVError(502, context_info="the upload stream to storage ended early")

    def send(self, data: bytes) -> None:
        """Queue one message (blocks while `window_bytes` are queued: the body is read no faster than stored)."""
        if not self._started:
            self._start()
        self._put(data)
        self.sent += len(data)

    def close(self) -> int:
        """End the stream and wait for storage's last acknowledgement: the durable committed size."""
        if not self._started:
            return 0
        self._put(_END)
        self._drained.join(self.session.backend.timeout)
        if self._drained.is_alive():
            self.cancel()
            from wsgidav.dav_error import DAVError

            raise DAVError(504, context_info="storage did not acknowledge the upload's end in time")
        if self.error is not None or self.committed != self.sent:
            self._raise()
        return self.committed

    def cancel(self) -> None:
        """Stop the call (the client went away, or the request failed); storage keeps what it committed."""
        if not self._started or (self._cancelled.is_set() and not self._drained.is_alive()):
            return
        self._cancelled.set()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(_END)
        self.call.cancel()
        self._drained.join(self.session.backend.timeout)


class BasicAuth:
    """auth_svc's AuthenticateBasic (internal, callable by the dav_svc mesh identity only): email + app password ->
    a short access token of the app password's session. Asked on every request, so a revoked app password is
    refused at once; failures are throttled by auth_svc like logins."""

    #: Statuses that mean "these credentials are not accepted" (a 401 with the Basic challenge).
    REFUSED = frozenset(
        (
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION,
        )
    )

    def __init__(self, stub: auth_pb2_grpc.AuthInternalServiceStub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    def basic(self, email: str, password: str, client_ip: str, user_agent: str = "") -> str | None:
        request = auth_pb2.AuthenticateBasicRequest(
            email=email, password=password, client_address=client_ip, user_agent=user_agent
        )
        try:
            reply = self.stub.AuthenticateBasic(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            if exc.code() in self.REFUSED:
                return None
            raise statuses.to_dav_error(exc) from None  # throttled (429 + Retry-After), auth_svc away (503)
        return str(reply.access_token) or None


def is_folder(node: Any) -> bool:
    return bool(node.kind == FOLDER)


__all__ = ["SHARED_WITH_ME", "Backend", "BasicAuth", "Session", "channel", "is_folder"]
