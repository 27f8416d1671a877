"""Downloads by the owner or a grantee: a file version's bytes in ranges, and short-lived signed download URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import FailedPrecondition, InvalidArgument, NotFound
from storage_svc.domain import ByteRange, Kind, Node, Version, requested_part
from storage_svc.ports import BlobStore, Events, UnitOfWorkFactory, UrlSigner
from storage_svc.usecases.access import Access
from storage_svc.usecases.common import Limits


@dataclass(kw_only=True)
class Downloads:
    """Reading a file version out, for a caller who may download it (or holds a signed URL for it)."""

    uow: UnitOfWorkFactory
    blobs: BlobStore
    access: Access
    events: Events
    urls: UrlSigner
    limits: Limits
    clock: Clock

    async def open_download(
        self,
        caller: str,
        file_id: str,
        offset: int,
        length: int,
        version_id: str = "",
        byte_range: ByteRange | None = None,
    ) -> tuple[Node, Version | None, int, int]:
        """Check access and the range; returns the node, the version, and the (offset, length) to stream.
        `byte_range` (an HTTP Range header: a REST client resuming) replaces offset and length when it applies to
        this version (`ByteRange.applies` with its ETag, which the servicer sends)."""
        async with self.uow(read_only=True) as uow:
            node = await self.access.resolve(uow, caller, file_id, "download")
            if node.kind != Kind.FILE:
                raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
            version = await uow.versions.get(version_id or node.version_id)
        if version is None or version.node_id != node.id:
            raise NotFound(f"version {version_id} not found")
        if (part := requested_part(byte_range, version)) is not None:
            offset, length = part
        if offset < 0 or offset > version.size:
            raise InvalidArgument("offset", f"must be between 0 and the file size {version.size}")
        if length < 0:
            raise InvalidArgument("length", "must not be negative")
        length = version.size - offset if length == 0 else min(length, version.size - offset)
        await self.events.record(
            "storage.download",
            actor=caller,
            subject=node.owner_id,
            details={
                "node_id": node.id,
                "name": node.name,
                "version": str(version.number),
                "offset": str(offset),
                "length": str(length),
            },
        )
        return node, version, offset, length

    async def create_download_url(self, caller: str, file_id: str, version_id: str) -> tuple[str, datetime]:
        """A URL-safe token naming one file version for the caller, valid for at most 60 s. Access is checked now;
        redeeming it re-checks that the file still exists (a revoked share is honoured within that minute)."""
        async with self.uow(read_only=True) as uow:
            node = await self.access.resolve(uow, caller, file_id, "download")
            if node.kind != Kind.FILE:
                raise FailedPrecondition(f"{file_id} is a folder; only files can be downloaded")
            version = await uow.versions.get(version_id or node.version_id)
        if version is None or version.node_id != node.id:
            raise NotFound(f"version {version_id} not found")
        expires = self.clock.now() + self.limits.download_url_lifetime
        token = self.urls.sign({"f": node.id, "v": version.id, "u": caller, "e": int(expires.timestamp())})
        return token, expires

    async def open_download_url(
        self, token: str, byte_range: ByteRange | None = None
    ) -> tuple[Node, Version, int, int]:
        """The node, the version and the (offset, length) to stream. A browser or curl resuming a broken download
        sends `byte_range` (as for open_download); the URL is checked first, so an expired one never gets a 416."""
        claims = self.urls.verify(token)
        # Unknown, forged and expired URLs all answer the same NotFound.
        if claims is None or int(claims.get("e", 0)) < int(self.clock.now().timestamp()):
            raise NotFound("this download link is invalid or has expired; ask for a new one")
        async with self.uow(read_only=True) as uow:
            node = await uow.nodes.get(str(claims["f"]))
            version = await uow.versions.get(str(claims["v"]))
        if node is None or version is None or version.node_id != node.id:
            raise NotFound("this download link is invalid or has expired; ask for a new one")
        offset, length = requested_part(byte_range, version) or (0, version.size)
        await self.events.record(
            "storage.download",
            actor=str(claims["u"]),
            subject=node.owner_id,
            details={
                "node_id": node.id,
                "name": node.name,
                "version": str(version.number),
                "via": "url",
                "offset": str(offset),
                "length": str(length),
            },
        )
        return node, version, offset, length

    def read(
        self, version: Version, offset: int, length: int, frame: Callable[[int], bytes] | None = None
    ) -> AsyncIterator[bytes]:
        """A version's bytes in chunks of `chunk_bytes`; `frame` as BlobStore.read (ready-made messages)."""
        return self.blobs.read(version.blob_id, offset, length, self.limits.chunk_bytes, frame)
