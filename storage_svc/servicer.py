"""gRPC entrypoint of storage_svc: messages ↔ use cases. Three write paths share one UploadWriter."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from flowdock_kernel import metrics
from flowdock_kernel.errors import InvalidArgument
from flowdock_kernel.tokens import current_principal
from storage_svc.domain import Kind, Node, Upload, UploadState
from storage_svc.usecases import Storage

Ctx = grpc.aio.ServicerContext[Any, Any]

_KINDS = {Kind.FOLDER: storage_pb2.NODE_KIND_FOLDER, Kind.FILE: storage_pb2.NODE_KIND_FILE}
_STATES = {UploadState.OPEN: storage_pb2.UPLOAD_STATE_OPEN, UploadState.COMPLETED: storage_pb2.UPLOAD_STATE_COMPLETED}
_UPLOADED = metrics.BYTES_STREAMED.labels("storage", "upload")
_DOWNLOADED = metrics.BYTES_STREAMED.labels("storage", "download")


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def node_pb(node: Node) -> storage_pb2.Node:
    return storage_pb2.Node(
        id=node.id,
        parent_id=node.parent_id or "",
        name=node.name,
        kind=_KINDS[node.kind],
        size=node.size,
        create_time=_ts(node.created_at),
        modify_time=_ts(node.modified_at),
        content_type=node.content_type,
        sha256=node.sha256,
    )


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name in filename*."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def upload_pb(self, upload: Upload) -> storage_pb2.Upload:
        return storage_pb2.Upload(
            upload_id=upload.id,
            parent_id=upload.parent_id,
            name=upload.name,
            size=upload.size,
            committed_size=upload.committed_size,
            chunk_size=self.storage.limits.chunk_bytes,
            max_chunk_size=self.storage.limits.max_chunk_bytes,
            state=_STATES[upload.state],
            expire_time=_ts(upload.expires_at),
        )

    async def CreateFolder(self, request: storage_pb2.CreateFolderRequest, context: Ctx) -> storage_pb2.Node:
        node = await self.storage.create_folder(current_principal().user_id, request.parent_id, request.name)
        return node_pb(node)

    async def ListChildren(
        self, request: storage_pb2.ListChildrenRequest, context: Ctx
    ) -> storage_pb2.ListChildrenResponse:
        rows, token = await self.storage.list_children(
            current_principal().user_id, request.folder_id, request.page_size, request.page_token
        )
        return storage_pb2.ListChildrenResponse(nodes=[node_pb(n) for n in rows], next_page_token=token)

    async def GetNode(self, request: storage_pb2.GetNodeRequest, context: Ctx) -> storage_pb2.Node:
        node = await self.storage.get_node(current_principal().user_id, request.node_id)
        return node_pb(node)

    async def CreateUpload(self, request: storage_pb2.CreateUploadRequest, context: Ctx) -> storage_pb2.Upload:
        upload = await self.storage.create_upload(
            current_principal().user_id,
            request.parent_id,
            request.name,
            request.size,
            request.sha256,
            request.content_type,
        )
        return self.upload_pb(upload)

    async def UploadContent(
        self, request_iterator: AsyncIterator[storage_pb2.UploadContentRequest], context: Ctx
    ) -> storage_pb2.UploadContentResponse:
        caller = current_principal().user_id
        writer = None
        try:
            async for msg in request_iterator:
                if writer is None:
                    if not msg.upload_id:
                        raise InvalidArgument("upload_id", "is required")
                    writer = self.storage.writer(caller, msg.upload_id)
                    await writer.start(msg.offset)
                await writer.write(msg.body.data)
                _UPLOADED.inc(len(msg.body.data))
                if writer.pending >= self.storage.limits.sync_bytes:
                    await writer.flush()
            if writer is None:
                raise InvalidArgument("upload_id", "is required")
            return storage_pb2.UploadContentResponse(committed_size=await writer.flush())
        finally:
            if writer is not None:
                await writer.__aexit__(None, None, None)

    async def WriteUploadChunk(
        self, request: storage_pb2.WriteUploadChunkRequest, context: Ctx
    ) -> storage_pb2.WriteUploadChunkResponse:
        committed = await self.storage.write_chunk(
            current_principal().user_id, request.upload_id, request.offset, request.data
        )
        _UPLOADED.inc(len(request.data))
        return storage_pb2.WriteUploadChunkResponse(committed_size=committed)

    async def UploadStream(
        self, request_iterator: AsyncIterator[storage_pb2.UploadStreamRequest], context: Ctx
    ) -> AsyncIterator[storage_pb2.UploadStreamResponse]:
        caller = current_principal().user_id
        writer = None
        try:
            async for msg in request_iterator:
                if writer is None:
                    if not msg.upload_id:
                        raise InvalidArgument("upload_id", "is required on the first message")
                    writer = self.storage.writer(caller, msg.upload_id)
                    await writer.start(msg.offset)
                await writer.write(msg.data, msg.offset)
                _UPLOADED.inc(len(msg.data))
                if writer.pending >= self.storage.limits.sync_bytes:
                    yield storage_pb2.UploadStreamResponse(committed_size=await writer.flush())
            if writer is not None:
                yield storage_pb2.UploadStreamResponse(committed_size=await writer.flush())
        finally:
            if writer is not None:
                await writer.__aexit__(None, None, None)

    async def GetUpload(self, request: storage_pb2.GetUploadRequest, context: Ctx) -> storage_pb2.Upload:
        upload = await self.storage.get_upload(current_principal().user_id, request.upload_id)
        return self.upload_pb(upload)

    async def FinishUpload(self, request: storage_pb2.FinishUploadRequest, context: Ctx) -> storage_pb2.Node:
        node = await self.storage.finish_upload(current_principal().user_id, request.upload_id)
        return node_pb(node)

    async def AbortUpload(
        self, request: storage_pb2.AbortUploadRequest, context: Ctx
    ) -> storage_pb2.AbortUploadResponse:
        await self.storage.abort_upload(current_principal().user_id, request.upload_id)
        return storage_pb2.AbortUploadResponse()

    async def DownloadFile(
        self, request: storage_pb2.DownloadFileRequest, context: Ctx
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        node, offset, length = await self.storage.open_download(
            current_principal().user_id, request.file_id, request.offset, request.length
        )
        await context.send_initial_metadata(
            (
                ("content-disposition", content_disposition(node.name)),
                ("etag", f'"{node.sha256}"'),
                ("x-content-length", str(length)),
                ("x-file-size", str(node.size)),
            )
        )
        first = True
        async for block in self.storage.read(node, offset, length):
            _DOWNLOADED.inc(len(block))
            if first:
                first = False
                yield httpbody_pb2.HttpBody(content_type=node.content_type, data=block)
            else:
                yield httpbody_pb2.HttpBody(data=block)
        if first:
            yield httpbody_pb2.HttpBody(content_type=node.content_type)
