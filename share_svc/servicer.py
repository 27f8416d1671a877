"""gRPC entrypoints of share_svc: the public ShareService and the internal AccessService."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock_kernel.errors import InvalidArgument
from flowdock_kernel.tokens import current_principal
from share_svc.domain import Action, Role, Share
from share_svc.usecases import Sharing

Ctx = grpc.aio.ServicerContext[Any, Any]

_ROLES = {
    Role.VIEWER: share_pb2.SHARE_ROLE_VIEWER,
    Role.DOWNLOADER: share_pb2.SHARE_ROLE_DOWNLOADER,
    Role.EDITOR: share_pb2.SHARE_ROLE_EDITOR,
}
_ACTIONS = {
    share_pb2.ACTION_LIST: Action.LIST,
    share_pb2.ACTION_DOWNLOAD: Action.DOWNLOAD,
    share_pb2.ACTION_WRITE: Action.WRITE,
}


def share_pb(share: Share) -> share_pb2.Share:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(share.created_at)
    return share_pb2.Share(
        id=share.id,
        node_id=share.node_id,
        owner_id=share.owner_id,
        grantee_id=share.grantee_id,
        role=_ROLES[share.role],
        create_time=created,
    )


class ShareServicer(share_pb2_grpc.ShareServiceServicer):
    def __init__(self, sharing: Sharing) -> None:
        self.sharing = sharing

    async def ListOutgoingShares(
        self, request: share_pb2.ListOutgoingSharesRequest, context: Ctx
    ) -> share_pb2.ListOutgoingSharesResponse:
        rows, token = await self.sharing.outgoing(current_principal().user_id, request.page_size, request.page_token)
        return share_pb2.ListOutgoingSharesResponse(shares=[share_pb(s) for s in rows], next_page_token=token)

    async def ListIncomingShares(
        self, request: share_pb2.ListIncomingSharesRequest, context: Ctx
    ) -> share_pb2.ListIncomingSharesResponse:
        rows, token = await self.sharing.incoming(current_principal().user_id, request.page_size, request.page_token)
        return share_pb2.ListIncomingSharesResponse(shares=[share_pb(s) for s in rows], next_page_token=token)


class AccessServicer(share_pb2_grpc.AccessServiceServicer):
    def __init__(self, sharing: Sharing) -> None:
        self.sharing = sharing

    async def CheckAccess(self, request: share_pb2.CheckAccessRequest, context: Ctx) -> share_pb2.CheckAccessResponse:
        action = _ACTIONS.get(request.action)
        if action is None:
            raise InvalidArgument("action", "must be LIST, DOWNLOAD or WRITE")
        allowed = await self.sharing.check_access(
            current_principal().user_id, list(request.node_path), request.owner_id, action
        )
        return share_pb2.CheckAccessResponse(allowed=allowed)
