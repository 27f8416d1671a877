"""gRPC entrypoint of storage_svc: messages ↔ use cases. Three write paths share one UploadWriter."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.api import httpbody_pb2

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from flowdock_kernel import metrics, wire
from flowdock_kernel.errors import DataLoss, InvalidArgument, PermissionDenied
from flowdock_kernel.tokens import AdminCheck, current_principal
from flowdock_kernel.wire import set_timestamp, timestamp, to_datetime
from storage_svc.domain import (
    ByteRange,
    Kind,
    Node,
    OnConflict,
    OrderBy,
    TrashEntry,
    Upload,
    UploadState,
    Usage,
    Version,
)
from storage_svc.usecases import Downloads, PublicLinks, Tree, Uploads

Ctx = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger("flowdock.storage")

#: What ends a REST download whose content turns out damaged after the 200 went out: a message the transcoder cannot
#: decode (an HttpBody whose field 1 claims 2**32 bytes). The transcoder cannot turn a status after the headers into
#: anything an HTTP client sees (on HTTP/1.1 it ends the body short of its Content-Length and keeps the connection:
#: the client waits for the rest until its timeout); failing to decode, it resets the stream instead — HTTP/1.1
#: closes the connection, HTTP/2 gets RST_STREAM — so every client sees an incomplete transfer at once
#: (tests/e2e/test_faults.py pins this).
_UNDECODABLE_BODY = b"\x0a\xff\xff\xff\xff\x0f"

_KINDS = {Kind.FOLDER: storage_pb2.NODE_KIND_FOLDER, Kind.FILE: storage_pb2.NODE_KIND_FILE}
_STATES = {
    UploadState.OPEN: storage_pb2.UPLOAD_STATE_OPEN,
    UploadState.FINISHING: storage_pb2.UPLOAD_STATE_FINISHING,
    UploadState.COMPLETED: storage_pb2.UPLOAD_STATE_COMPLETED,
    UploadState.FAILED: storage_pb2.UPLOAD_STATE_FAILED,
}
_CONFLICTS = {
    storage_pb2.ON_CONFLICT_UNSPECIFIED: OnConflict.FAIL,
    storage_pb2.ON_CONFLICT_FAIL: OnConflict.FAIL,
    storage_pb2.ON_CONFLICT_RENAME: OnConflict.RENAME,
    storage_pb2.ON_CONFLICT_NEW_VERSION: OnConflict.NEW_VERSION,
}
_ORDERS = {
    storage_pb2.ORDER_BY_UNSPECIFIED: OrderBy.NAME,
    storage_pb2.ORDER_BY_NAME: OrderBy.NAME,
    storage_pb2.ORDER_BY_SIZE: OrderBy.SIZE,
    storage_pb2.ORDER_BY_MODIFIED: OrderBy.MODIFIED,
}
_NODE_KINDS = {storage_pb2.NODE_KIND_FOLDER: Kind.FOLDER, storage_pb2.NODE_KIND_FILE: Kind.FILE}


K = TypeVar("K")
V = TypeVar("V")


def _enum(table: dict[K, V], value: K, field: str) -> V:
    if value not in table:
        raise InvalidArgument(field, f"unknown value {value}")
    return table[value]


_UPLOADED = metrics.BYTES_STREAMED.labels("storage", "upload")
_DOWNLOADED = metrics.BYTES_STREAMED.labels("storage", "download")


def _put_node(make: Callable[..., storage_pb2.Node], node: Node) -> storage_pb2.Node:
    """A Node message made by `make`: the message class, or a repeated field's `add` (which builds the element in
    place; listing 1,000 entries this way avoids 1,000 intermediate messages and 2,000 Timestamp copies)."""
    msg = make(
        id=node.id,
        parent_id=node.parent_id or "",
        name=node.name,
        kind=_KINDS[node.kind],
        size=node.size,
        content_type=node.content_type,
        sha256=node.sha256,
        owner_id=node.owner_id,
    )
    set_timestamp(msg.create_time, node.created_at)
    set_timestamp(msg.modify_time, node.modified_at)
    return msg


def node_pb(node: Node) -> storage_pb2.Node:
    return _put_node(storage_pb2.Node, node)


def add_nodes(field: Any, nodes: Iterable[Node]) -> None:
    """Append Nodes to a repeated `Node` field of a response."""
    add = field.add
    for node in nodes:
        _put_node(add, node)


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name in filename*."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, tree: Tree, uploads: Uploads, downloads: Downloads) -> None:
        self.tree = tree
        self.uploads = uploads
        self.downloads = downloads

    def upload_pb(self, upload: Upload, node: Node | None = None) -> storage_pb2.Upload:
        return storage_pb2.Upload(
            upload_id=upload.id,
            parent_id=upload.parent_id,
            name=upload.name,
            size=upload.size,
            committed_size=upload.committed_size,
            chunk_size=self.uploads.limits.upload_chunk_bytes,
            max_chunk_size=self.uploads.limits.max_chunk_bytes,
            stream_chunk_size=self.uploads.limits.chunk_bytes,
            state=_STATES[upload.state],
            expire_time=timestamp(upload.expires_at),
            node=node_pb(node) if node is not None else None,
            failure=upload.failure,
        )

    async def CreateFolder(self, request: storage_pb2.CreateFolderRequest, context: Ctx) -> storage_pb2.Node:
        return node_pb(await self.tree.create_folder(current_principal().user_id, request.parent_id, request.name))

    @wire.serialised  # answers a serialised ListChildrenResponse
    async def ListChildren(self, request: storage_pb2.ListChildrenRequest, context: Ctx) -> bytes:
        page, token, folder = await self.tree.list_children(
            current_principal().user_id,
            request.folder_id,
            request.page_size,
            request.page_token,
            _enum(_ORDERS, request.order_by, "order_by"),
            request.descending,
            compact=request.compact,
        )
        # The read model's page is the serialised `nodes` field (1; storage.proto says so); a serialised message is
        # the concatenation of its fields, so the other fields follow it as bytes.
        rest = storage_pb2.ListChildrenResponse(next_page_token=token, parent_id=folder.id, owner_id=folder.owner_id)
        return page.wire + rest.SerializeToString()

    async def GetNode(self, request: storage_pb2.GetNodeRequest, context: Ctx) -> storage_pb2.Node:
        return node_pb(await self.tree.get_node(current_principal().user_id, request.node_id))

    async def GetNodePath(
        self, request: storage_pb2.GetNodePathRequest, context: Ctx
    ) -> storage_pb2.GetNodePathResponse:
        chain = await self.tree.node_path(current_principal().user_id, request.node_id)
        response = storage_pb2.GetNodePathResponse()
        add_nodes(response.nodes, chain)
        return response

    async def UpdateNode(self, request: storage_pb2.UpdateNodeRequest, context: Ctx) -> storage_pb2.Node:
        node = await self.tree.update_node(
            current_principal().user_id,
            request.node_id,
            request.name,
            request.parent_id,
            _enum(_CONFLICTS, request.on_conflict, "on_conflict"),
        )
        return node_pb(node)

    async def DeleteNode(self, request: storage_pb2.DeleteNodeRequest, context: Ctx) -> storage_pb2.Node:
        return node_pb(await self.tree.delete_node(current_principal().user_id, request.node_id))

    async def CopyNode(self, request: storage_pb2.CopyNodeRequest, context: Ctx) -> storage_pb2.Node:
        node = await self.tree.copy_node(
            current_principal().user_id,
            request.node_id,
            request.parent_id,
            request.name,
            _enum(_CONFLICTS, request.on_conflict, "on_conflict"),
        )
        return node_pb(node)

    def _trash_pb(
        self, entry: TrashEntry, make: Callable[..., storage_pb2.TrashEntry] = storage_pb2.TrashEntry
    ) -> storage_pb2.TrashEntry:
        deleted = entry.node.trashed_at or entry.node.modified_at
        msg = make(node=node_pb(entry.node), original_parent_id=entry.node.parent_id or "", size=entry.size)
        set_timestamp(msg.delete_time, deleted)
        set_timestamp(msg.purge_time, deleted + self.tree.limits.trash_retention)
        return msg

    async def ListTrash(self, request: storage_pb2.ListTrashRequest, context: Ctx) -> storage_pb2.ListTrashResponse:
        rows, token = await self.tree.list_trash(current_principal().user_id, request.page_size, request.page_token)
        response = storage_pb2.ListTrashResponse(next_page_token=token)
        add = response.entries.add
        for entry in rows:
            self._trash_pb(entry, add)
        return response

    async def RestoreTrash(self, request: storage_pb2.RestoreTrashRequest, context: Ctx) -> storage_pb2.Node:
        return node_pb(await self.tree.restore_trash(current_principal().user_id, request.node_id))

    async def PurgeTrash(self, request: storage_pb2.PurgeTrashRequest, context: Ctx) -> storage_pb2.PurgeTrashResponse:
        freed = await self.tree.purge_trash(current_principal().user_id, request.node_id)
        return storage_pb2.PurgeTrashResponse(freed_bytes=freed)

    async def EmptyTrash(self, request: storage_pb2.EmptyTrashRequest, context: Ctx) -> storage_pb2.EmptyTrashResponse:
        return storage_pb2.EmptyTrashResponse(freed_bytes=await self.tree.empty_trash(current_principal().user_id))

    async def ListVersions(
        self, request: storage_pb2.ListVersionsRequest, context: Ctx
    ) -> storage_pb2.ListVersionsResponse:
        node, versions = await self.tree.list_versions(current_principal().user_id, request.file_id)
        return storage_pb2.ListVersionsResponse(versions=[_version_pb(v, node) for v in versions])

    async def RestoreVersion(self, request: storage_pb2.RestoreVersionRequest, context: Ctx) -> storage_pb2.Node:
        node = await self.tree.restore_version(current_principal().user_id, request.file_id, request.version_id)
        return node_pb(node)

    async def GetQuota(self, request: storage_pb2.GetQuotaRequest, context: Ctx) -> storage_pb2.Quota:
        usage, trash, versions = await self.tree.quota(current_principal().user_id)
        return quota_pb(usage, trash, versions)

    async def Search(self, request: storage_pb2.SearchRequest, context: Ctx) -> storage_pb2.SearchResponse:
        rows, token = await self.tree.search(
            current_principal().user_id,
            request.query,
            request.page_size,
            request.page_token,
            kind=_NODE_KINDS.get(request.kind),
            modified_after=to_datetime(request.modified_after) if request.HasField("modified_after") else None,
            modified_before=to_datetime(request.modified_before) if request.HasField("modified_before") else None,
            min_size=request.min_size,
            max_size=request.max_size,
        )
        response = storage_pb2.SearchResponse(next_page_token=token)
        add_nodes(response.nodes, rows)
        return response

    async def CreateUpload(self, request: storage_pb2.CreateUploadRequest, context: Ctx) -> storage_pb2.Upload:
        if request.content:
            done, node = await self.uploads.upload_inline(
                current_principal().user_id,
                request.parent_id,
                request.name,
                request.content,
                request.size,
                request.sha256,
                request.content_type,
                relative_path=request.relative_path,
                on_conflict=_enum(_CONFLICTS, request.on_conflict, "on_conflict"),
            )
            _UPLOADED.inc(len(request.content))
            return self.upload_pb(done, node)
        upload = await self.uploads.create_upload(
            current_principal().user_id,
            request.parent_id,
            request.name,
            request.size,
            request.sha256,
            request.content_type,
            relative_path=request.relative_path,
            on_conflict=_enum(_CONFLICTS, request.on_conflict, "on_conflict"),
        )
        return self.upload_pb(upload)

    async def UploadContent(
        self, request_iterator: AsyncIterator[storage_pb2.UploadContentRequest], context: Ctx
    ) -> storage_pb2.UploadContentResponse:
        caller = current_principal().user_id
        writer = None
        first: storage_pb2.UploadContentRequest | None = None
        # A body at offset 0 no larger than a small upload is kept whole until it ends: if it is the whole file,
        # Uploads.write_chunk writes it once as the final blob (the small-file path); else it goes on as below.
        limits = self.uploads.limits
        keep = min(limits.small_upload_bytes, limits.max_chunk_bytes)
        kept: list[bytes] = []
        kept_bytes = 0
        try:
            async for msg in request_iterator:
                if first is None:
                    if not msg.upload_id:
                        raise InvalidArgument("upload_id", "is required")
                    first = msg
                data = msg.body.data  # each attribute read of a bytes field copies it (upb): read it once
                if writer is None and first.offset == 0 and kept_bytes + len(data) <= keep:
                    kept.append(data)
                    kept_bytes += len(data)
                    continue
                if writer is None:
                    writer = self.uploads.writer(caller, first.upload_id)
                    await writer.open(first.offset)
                    for piece in kept:
                        await writer.write(piece)
                    _UPLOADED.inc(kept_bytes)
                    kept = []
                await writer.write(data)
                _UPLOADED.inc(len(data))
                if writer.unflushed >= limits.sync_bytes:
                    await writer.flush_soon()  # the disk flushes while the next bytes arrive
            if first is None:
                raise InvalidArgument("upload_id", "is required")
            if writer is None:
                committed = await self.uploads.write_chunk(caller, first.upload_id, 0, b"".join(kept))
                _UPLOADED.inc(kept_bytes)
                return storage_pb2.UploadContentResponse(committed_size=committed)
            return storage_pb2.UploadContentResponse(committed_size=await writer.flush(release=True))
        finally:
            if writer is not None:
                await writer.close()

    async def WriteUploadChunk(
        self, request: storage_pb2.WriteUploadChunkRequest, context: Ctx
    ) -> storage_pb2.WriteUploadChunkResponse:
        data = request.data  # each attribute read of a bytes field copies it (upb): read it once
        committed = await self.uploads.write_chunk(current_principal().user_id, request.upload_id, request.offset, data)
        _UPLOADED.inc(len(data))
        return storage_pb2.WriteUploadChunkResponse(committed_size=committed)

    async def UploadStream(
        self, request_iterator: AsyncIterator[storage_pb2.UploadStreamRequest], context: Ctx
    ) -> AsyncIterator[storage_pb2.UploadStreamResponse]:
        caller = current_principal().user_id
        writer = None
        messages = aiter(request_iterator)
        receiving: asyncio.Task[storage_pb2.UploadStreamRequest | None] | None = None
        try:
            while True:
                receiving = asyncio.ensure_future(anext(messages, None))
                while writer is not None and (flushing := writer.flushing) is not None and not receiving.done():
                    # The committed offset goes back as soon as the disk is done, not with the next message: a
                    # client that bounds its unacknowledged bytes waits for it.
                    await asyncio.wait((receiving, flushing), return_when=asyncio.FIRST_COMPLETED)
                    if flushing.done():
                        await writer.settle()  # raises what the flush met (a lost hold, an I/O error)
                    if (committed := writer.acknowledge()) is not None:
                        yield storage_pb2.UploadStreamResponse(committed_size=committed)
                msg = await receiving
                receiving = None
                if msg is None:
                    break
                if writer is None:
                    if not msg.upload_id:
                        raise InvalidArgument("upload_id", "is required on the first message")
                    writer = self.uploads.writer(caller, msg.upload_id)
                    await writer.open(msg.offset)
                data = msg.data  # each attribute read of a bytes field copies it (upb): read it once
                await writer.write(data, msg.offset)
                _UPLOADED.inc(len(data))
                if writer.unflushed >= self.uploads.limits.sync_bytes:
                    await writer.flush_soon()  # the disk flushes while the next bytes arrive
                if (committed := writer.acknowledge()) is not None:
                    yield storage_pb2.UploadStreamResponse(committed_size=committed)
            if writer is not None:
                yield storage_pb2.UploadStreamResponse(committed_size=await writer.flush(release=True))
        finally:
            if receiving is not None:
                receiving.cancel()
            if writer is not None:
                await writer.close()

    async def GetUpload(self, request: storage_pb2.GetUploadRequest, context: Ctx) -> storage_pb2.Upload:
        upload, node = await self.uploads.get_upload(current_principal().user_id, request.upload_id)
        return self.upload_pb(upload, node)

    async def FinishUpload(self, request: storage_pb2.FinishUploadRequest, context: Ctx) -> storage_pb2.Upload:
        upload, node = await self.uploads.finish_upload(current_principal().user_id, request.upload_id)
        return self.upload_pb(upload, node)

    async def AbortUpload(
        self, request: storage_pb2.AbortUploadRequest, context: Ctx
    ) -> storage_pb2.AbortUploadResponse:
        await self.uploads.abort_upload(current_principal().user_id, request.upload_id)
        return storage_pb2.AbortUploadResponse()

    async def CreateDownloadUrl(
        self, request: storage_pb2.CreateDownloadUrlRequest, context: Ctx
    ) -> storage_pb2.CreateDownloadUrlResponse:
        token, expires = await self.downloads.create_download_url(
            current_principal().user_id, request.file_id, request.version
        )
        return storage_pb2.CreateDownloadUrlResponse(url=f"/api/v1/download/{token}", expire_time=timestamp(expires))

    @wire.serialised  # yields serialised HttpBody messages (_stream)
    async def DownloadByUrl(self, request: storage_pb2.DownloadByUrlRequest, context: Ctx) -> AsyncIterator[bytes]:
        # The URL is what a browser's download manager or `curl -C -` resumes: Range and If-Range as DownloadFile.
        byte_range = _byte_range(context)
        node, version, offset, length = await self.downloads.open_download_url(request.token, byte_range)
        partial = _partial(byte_range, version)
        async for message in self._stream(context, node, version, offset, length, partial=partial):
            yield message

    @wire.serialised  # yields serialised HttpBody messages (_stream)
    async def DownloadFile(self, request: storage_pb2.DownloadFileRequest, context: Ctx) -> AsyncIterator[bytes]:
        # A REST client resuming a broken download sends Range (and If-Range); a request's own offset/length win.
        byte_range = None if request.offset or request.length else _byte_range(context)
        node, version, offset, length = await self.downloads.open_download(
            current_principal().user_id,
            request.file_id,
            request.offset,
            request.length,
            request.version,
            byte_range=byte_range,
        )
        assert version is not None
        partial = _partial(byte_range, version)
        async for message in self._stream(context, node, version, offset, length, partial=partial):
            yield message

    async def _stream(
        self,
        context: Ctx,
        node: Node,
        version: Version,
        offset: int,
        length: int,
        *,
        partial: bool = False,
    ) -> AsyncIterator[bytes]:
        """The content as serialised google.api.HttpBody messages, one per chunk: the blob store copies each
        decrypted chunk right behind its message header (body_frame), so nothing here copies it again. Every
        download route serves HTTP Range requests over REST (a broken transfer resumes where it broke); `partial`:
        this answer is one (206)."""
        # Read (and so authenticate) the first block before any header goes out: damage found here becomes a clean
        # DATA_LOSS status (REST: a 500 with a JSON body), not a 200 whose body stops short.
        blocks = aiter(self.downloads.read(version, offset, length, body_frame))
        try:
            head = await anext(blocks, b"")
        except DataLoss as exc:
            _damaged(node, version, offset, exc, sent=0)
            raise
        headers = [
            ("content-disposition", content_disposition(node.name)),
            ("etag", version.etag),
            ("x-content-length", str(length)),
            ("x-file-size", str(version.size)),
        ]
        rest = _transcoded(context)
        if rest:
            # REST: ranges are served (a broken download resumes where it broke); the gateway makes a partial
            # answer a 206 with this Content-Range (gateway/envoy_config.py, _CONTENT_LENGTH_LUA).
            headers.append(("accept-ranges", "bytes"))
            if partial:
                headers.append(("x-content-range", f"bytes {offset}-{offset + length - 1}/{version.size}"))
        await context.send_initial_metadata(headers)
        # The first message also names the content type (two fields of one message may be serialised apart).
        yield httpbody_pb2.HttpBody(content_type=version.content_type).SerializeToString() + head
        sent = body_data_size(head)
        _DOWNLOADED.inc(sent)
        try:
            async for block in blocks:
                n = body_data_size(block)
                _DOWNLOADED.inc(n)
                yield block
                sent += n
        except DataLoss as exc:
            _damaged(node, version, offset, exc, sent=sent)
            if rest:
                yield _UNDECODABLE_BODY  # REST: the stream is reset (see _UNDECODABLE_BODY)
            raise  # gRPC and grpc-web: DATA_LOSS in the trailers


def _damaged(node: Node, version: Version, offset: int, exc: DataLoss, *, sent: int) -> None:
    """One log line an operator can act on (restore the blob from a backup, or delete the file): which file and
    version, where the damage was met. Ids and positions only: never a key or a byte of content."""
    log.error(
        "DATA_LOSS: stored content is damaged; the download was ended",
        extra={
            "code": "DATA_LOSS",
            "file_id": node.id,
            "version_id": version.id,
            "blob_id": version.blob_id,
            "offset": offset,
            "bytes_sent": sent,
            "reason": exc.message,
        },
    )


def _byte_range(context: Ctx) -> ByteRange | None:
    """The Range (with If-Range) of a REST download; gRPC and grpc-web clients say offset and length instead."""
    if not _transcoded(context):
        return None
    md = {key: value for key, value in context.invocation_metadata() or () if key in ("range", "if-range")}
    header = md.get("range")
    if not isinstance(header, str):
        return None
    if_range = md.get("if-range")
    return ByteRange.parse(header, if_range if isinstance(if_range, str) else "")


def _partial(byte_range: ByteRange | None, version: Version) -> bool:
    """Whether a download answers its Range (206) rather than with the whole content (200)."""
    return byte_range is not None and byte_range.applies(version.etag)


def _transcoded(context: Ctx) -> bool:
    """A REST call: Envoy's transcoder keeps the path it rewrote in x-envoy-original-path (gRPC and grpc-web calls
    keep their path). A client sending that header itself only gets a reset instead of a status."""
    return any(key == "x-envoy-original-path" for key, _ in context.invocation_metadata() or ())


def body_frame(n: int) -> bytes:
    """The start of a serialised google.api.HttpBody whose only field is `data` of n bytes: field 2,
    length-delimited (tag 0x12), then n as a varint. frame + data is the whole message. Field number 2 is
    google/api/httpbody.proto's (storage.proto notes the dependency at the download methods)."""
    head = bytearray(b"\x12")
    while n > 0x7F:
        head.append(n & 0x7F | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head)


def body_data_size(message: bytes) -> int:
    """Bytes of `data` in a message made of body_frame + data (0 for an empty one)."""
    if not message:
        return 0
    i = 1
    while message[i] & 0x80:
        i += 1
    return len(message) - i - 1


def _version_pb(version: Version, node: Node) -> storage_pb2.Version:
    return storage_pb2.Version(
        id=version.id,
        number=version.number,
        size=version.size,
        sha256=version.sha256,
        create_time=timestamp(version.created_at),
        current=version.id == node.version_id,
    )


def quota_pb(usage: Usage, trash: int = 0, versions: int = 0) -> storage_pb2.Quota:
    return storage_pb2.Quota(
        used_bytes=usage.used,
        reserved_bytes=usage.reserved,
        limit_bytes=usage.limit,
        trash_bytes=trash,
        version_bytes=versions,
    )


class StorageAdminServicer(storage_pb2_grpc.StorageAdminServiceServicer):
    """Internal: reached only by other services, and only for admins (checked here, not just at the edge)."""

    def __init__(self, tree: Tree, admins: AdminCheck) -> None:
        self.tree = tree
        self.admins = admins

    async def _admin(self, user_id: str) -> None:
        # The token's role claim and auth_svc's record: a demoted admin's still-valid token is refused.
        if not await self.admins.confirm(current_principal()):
            raise PermissionDenied("admins only")
        if not user_id:
            raise InvalidArgument("user_id", "is required")

    async def SetQuota(self, request: storage_pb2.SetQuotaRequest, context: Ctx) -> storage_pb2.Quota:
        await self._admin(request.user_id)
        return quota_pb(await self.tree.set_quota(request.user_id, request.limit_bytes))

    async def GetUserQuota(self, request: storage_pb2.GetUserQuotaRequest, context: Ctx) -> storage_pb2.Quota:
        await self._admin(request.user_id)
        return quota_pb(await self.tree.user_quota(request.user_id))

    async def DeleteUserData(
        self, request: storage_pb2.DeleteUserDataRequest, context: Ctx
    ) -> storage_pb2.DeleteUserDataResponse:
        await self._admin(request.user_id)
        return storage_pb2.DeleteUserDataResponse(freed_bytes=await self.tree.delete_user_data(request.user_id))


#: The cookie OpenLink sets (share_svc), scoped to the link's paths: browsers send it on download links.
LINK_SESSION_COOKIE = "fd_link_session"


def _link_session(context: Ctx, given: str) -> str:
    """The link session from the request (?session=, kept for old links), the X-Link-Session header or the
    fd_link_session cookie."""
    if given:
        return given
    cookie = ""
    for key, value in context.invocation_metadata() or ():
        text = value if isinstance(value, str) else value.decode("latin-1")
        if key == "x-link-session":
            return text
        if key == "cookie":
            cookie = cookie or _cookie_value(text, LINK_SESSION_COOKIE)
    return cookie


def _cookie_value(header: str, name: str) -> str:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return ""


class PublicLinkServicer(storage_pb2_grpc.PublicLinkServiceServicer):
    """Anonymous visitors of public links: no token; share_svc decides every call from the link and its session."""

    def __init__(self, links: PublicLinks, uploads: Uploads, files: StorageServicer) -> None:
        self.links = links
        self.uploads = uploads
        self.files = files  # its upload messages and download streams

    def _upload_pb(self, upload: Upload) -> storage_pb2.Upload:
        # A visitor gets the state of their upload, not the node (nor the name it finally got in the folder).
        pb = self.files.upload_pb(upload)
        pb.ClearField("parent_id")
        return pb

    @wire.serialised  # answers a serialised ListLinkChildrenResponse
    async def ListLinkChildren(self, request: storage_pb2.ListLinkChildrenRequest, context: Ctx) -> bytes:
        listed, token, path = await self.links.link_children(
            request.token,
            _link_session(context, request.session),
            request.folder_id,
            request.page_size,
            request.page_token,
        )
        rest = storage_pb2.ListLinkChildrenResponse(next_page_token=token)
        add_nodes(rest.path, path)
        if isinstance(listed, Node):  # a file link lists its one file
            add_nodes(rest.nodes, [listed])
            return rest.SerializeToString()
        # As ListChildren: the read model's page is the serialised `nodes` field (field 1 here too, as in
        # ListChildrenResponse: storage.proto says so); the other fields follow as bytes.
        return listed.wire + rest.SerializeToString()

    async def GetLinkRoot(self, request: storage_pb2.GetLinkRootRequest, context: Ctx) -> storage_pb2.Node:
        root = await self.links.link_root(request.token, _link_session(context, request.session))
        message = node_pb(root)
        message.ClearField("parent_id")  # above the link's root: none of the visitor's business
        return message

    @wire.serialised  # yields serialised HttpBody messages (_stream)
    async def DownloadLinkFile(
        self, request: storage_pb2.DownloadLinkFileRequest, context: Ctx
    ) -> AsyncIterator[bytes]:
        # A visitor's browser or curl resumes a broken download by Range (checked after the link and its password).
        byte_range = _byte_range(context)
        node, version, offset, length = await self.links.open_link_download(
            request.token, _link_session(context, request.session), request.file_id, byte_range
        )
        partial = _partial(byte_range, version)
        async for message in self.files._stream(context, node, version, offset, length, partial=partial):
            yield message

    async def CreateLinkUpload(self, request: storage_pb2.CreateLinkUploadRequest, context: Ctx) -> storage_pb2.Upload:
        creator, folder, drop = await self.links.link_drop(request.token, _link_session(context, request.session))
        if request.content:
            done, _ = await self.uploads.upload_inline(
                creator,
                folder.id,
                request.name,
                request.content,
                request.size,
                request.sha256,
                request.content_type,
                on_conflict=OnConflict.RENAME,
                link_parent=folder,
                drop=drop,
            )
            _UPLOADED.inc(len(request.content))
            return self._upload_pb(done)
        upload = await self.uploads.create_upload(
            creator,
            folder.id,
            request.name,
            request.size,
            request.sha256,
            request.content_type,
            on_conflict=OnConflict.RENAME,
            link_parent=folder,
            drop=drop,
        )
        return self._upload_pb(upload)

    async def UploadLinkContent(
        self, request_iterator: AsyncIterator[storage_pb2.UploadLinkContentRequest], context: Ctx
    ) -> storage_pb2.UploadContentResponse:
        writer = None
        try:
            async for msg in request_iterator:
                if writer is None:
                    if not msg.upload_id:
                        raise InvalidArgument("upload_id", "is required")
                    creator, _ = await self.links.link_uploader(msg.token, _link_session(context, msg.session))
                    writer = self.uploads.writer(creator, msg.upload_id)
                    await writer.open(msg.offset)
                data = msg.body.data  # each attribute read of a bytes field copies it (upb): read it once
                await writer.write(data)
                _UPLOADED.inc(len(data))
                if writer.unflushed >= self.uploads.limits.sync_bytes:
                    await writer.flush_soon()  # the disk flushes while the next bytes arrive
            if writer is None:
                raise InvalidArgument("upload_id", "is required")
            return storage_pb2.UploadContentResponse(committed_size=await writer.flush())
        finally:
            if writer is not None:
                await writer.close()

    async def WriteLinkUploadChunk(
        self, request: storage_pb2.WriteLinkUploadChunkRequest, context: Ctx
    ) -> storage_pb2.WriteUploadChunkResponse:
        creator, _ = await self.links.link_uploader(request.token, _link_session(context, request.session))
        data = request.data  # each attribute read of a bytes field copies it (upb): read it once
        committed = await self.uploads.write_chunk(creator, request.upload_id, request.offset, data)
        _UPLOADED.inc(len(data))
        return storage_pb2.WriteUploadChunkResponse(committed_size=committed)

    async def FinishLinkUpload(self, request: storage_pb2.FinishLinkUploadRequest, context: Ctx) -> storage_pb2.Upload:
        creator, _ = await self.links.link_uploader(request.token, _link_session(context, request.session))
        upload, _ = await self.uploads.finish_upload(creator, request.upload_id)
        return self._upload_pb(upload)
