"""Clients of the other services (their internal admin APIs), over the kernel's mesh channels."""

from __future__ import annotations

from typing import Any

import grpc

from auth_svc.domain import Quota
from flowdock_kernel.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable


class GrpcShareAdmin:
    """share_svc's internal AccessService.DeleteUserShares, with the admin's token forwarded by the channel."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
        from flowdock.share.v1 import share_pb2, share_pb2_grpc

        self._pb = share_pb2
        self._stub = share_pb2_grpc.AccessServiceStub(channel)
        self._timeout = timeout

    async def delete(self, user_id: str) -> int:
        try:
            done = await self._stub.DeleteUserShares(
                self._pb.DeleteUserSharesRequest(user_id=user_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise GrpcStorageAdmin._translate(exc) from exc
        return int(done.dropped)


class GrpcStorageAdmin:
    """storage_svc's internal StorageAdminService. The admin's token is forwarded by the kernel's channel, and
    storage_svc checks the admin role itself too."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 60.0) -> None:
        from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc

        self._pb = storage_pb2
        self._stub = storage_pb2_grpc.StorageAdminServiceStub(channel)
        self._timeout = timeout

    @staticmethod
    def _translate(exc: grpc.aio.AioRpcError) -> Exception:
        code, message = exc.code(), exc.details() or "storage_svc refused"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument("limit_bytes", message)
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(message)
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return PermissionDenied(message)
        return Unavailable(f"storage_svc could not do it now ({code.name}); try again")

    @staticmethod
    def _quota(q: Any) -> Quota:
        return Quota(used_bytes=q.used_bytes, reserved_bytes=q.reserved_bytes, limit_bytes=q.limit_bytes)

    async def quota(self, user_id: str) -> Quota:
        try:
            q = await self._stub.GetUserQuota(self._pb.GetUserQuotaRequest(user_id=user_id), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return self._quota(q)

    async def set_quota(self, user_id: str, limit_bytes: int) -> Quota:
        request = self._pb.SetQuotaRequest(user_id=user_id, limit_bytes=limit_bytes)
        try:
            q = await self._stub.SetQuota(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return self._quota(q)

    async def delete(self, user_id: str) -> int:
        try:
            done = await self._stub.DeleteUserData(
                self._pb.DeleteUserDataRequest(user_id=user_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return int(done.freed_bytes)
