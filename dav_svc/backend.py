"""storage_svc and share_svc as the dav service sees them: sync gRPC stubs, called with the end user's token.

Every call carries the user's `authorization: Bearer` (so storage's and share's permission checks apply
unchanged) and the request id; every failure leaves through statuses.mapped() as the DAVError its status maps to.
A `Session` lives for one HTTP request and caches the folder listings it read (PROPFIND depth 1 and path
resolution read each folder once); writes drop the cache.
"""

from __future__ import annotations

import contextlib
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


@dataclass
class Backend:
    """The stubs, shared by every request (gRPC channels are thread-safe)."""

    storage: storage_pb2_grpc.StorageServiceStub
    shares: share_pb2_grpc.ShareServiceStub
    timeout: float
    chunk_bytes: int
    finish_wait: float

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
            self._quota = self._call(self.backend.storage.GetQuota, storage_pb2.GetQuotaRequest())
        return self._quota

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
