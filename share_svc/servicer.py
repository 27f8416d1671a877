"""gRPC entrypoints of share_svc: the public ShareService and the internal AccessService."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock.storage.v1 import storage_pb2
from flowdock_kernel import logs
from flowdock_kernel.clock import Clock
from flowdock_kernel.errors import InvalidArgument
from flowdock_kernel.tokens import AdminCheck, current_principal
from flowdock_kernel.wire import timestamp, to_datetime
from share_svc.domain import Action, Link, LinkPermission, Role, Share
from share_svc.ports import Account
from share_svc.usecases import LinkChanges, Sharing

Ctx = grpc.aio.ServicerContext[Any, Any]

_ROLES = {
    Role.VIEWER: share_pb2.SHARE_ROLE_VIEWER,
    Role.DOWNLOADER: share_pb2.SHARE_ROLE_DOWNLOADER,
    Role.EDITOR: share_pb2.SHARE_ROLE_EDITOR,
}
_ROLES_IN = {v: k for k, v in _ROLES.items()}
_ACTIONS = {
    share_pb2.ACTION_LIST: Action.LIST,
    share_pb2.ACTION_DOWNLOAD: Action.DOWNLOAD,
    share_pb2.ACTION_WRITE: Action.WRITE,
    share_pb2.ACTION_UPLOAD: Action.UPLOAD,
}
_PERMISSIONS = {
    LinkPermission.VIEW: share_pb2.LINK_PERMISSION_VIEW,
    LinkPermission.DOWNLOAD: share_pb2.LINK_PERMISSION_DOWNLOAD,
    LinkPermission.UPLOAD: share_pb2.LINK_PERMISSION_UPLOAD,
}
_PERMISSIONS_IN: dict[int, LinkPermission] = {int(v): k for k, v in _PERMISSIONS.items()}


def share_pb(share: Share, node: bytes | None = None, owner: Account | None = None) -> share_pb2.Share:
    """`node`: storage_svc's Node message, serialised, as `Sharing.describe` gives it; `owner`: who shared."""
    return share_pb2.Share(
        id=share.id,
        node_id=share.node_id,
        owner_id=share.owner_id,
        grantee_id=share.grantee_id,
        role=_ROLES[share.role],
        create_time=timestamp(share.created_at),
        grantee_email=share.grantee_email,
        node=storage_pb2.Node.FromString(node) if node is not None else None,
        update_time=timestamp(share.updated_at or share.created_at),
        owner_email=owner.email if owner else "",
        owner_display_name=owner.display_name if owner else "",
    )


def link_pb(link: Link, token: str = "", url: str = "") -> share_pb2.Link:
    return share_pb2.Link(
        id=link.id,
        node_id=link.node_id,
        owner_id=link.owner_id,
        token=token,
        url=url,
        permission=_PERMISSIONS[link.permission],
        has_password=bool(link.password_hash),
        expire_time=timestamp(link.expires_at),
        max_downloads=link.max_downloads,
        download_count=link.downloads,
        create_time=timestamp(link.created_at),
        max_upload_files=link.max_upload_files,
        max_upload_bytes=link.max_upload_bytes,
    )


def _expiry(request: Any) -> datetime | None:
    return to_datetime(request.expire_time) if request.HasField("expire_time") else None


def _permission(value: int, *, required: bool) -> LinkPermission | None:
    if value == share_pb2.LINK_PERMISSION_UNSPECIFIED and not required:
        return None
    perm = _PERMISSIONS_IN.get(value)
    if perm is None:
        raise InvalidArgument("permission", "must be view, download or upload")
    return perm


class ShareServicer(share_pb2_grpc.ShareServiceServicer):
    def __init__(self, sharing: Sharing, clock: Clock) -> None:
        self.sharing = sharing
        self.clock = clock

    async def _with_nodes(self, rows: list[Share]) -> list[share_pb2.Share]:
        nodes, owners = await asyncio.gather(self.sharing.describe(rows), self.sharing.owners(rows))
        return [share_pb(s, n, owners.get(s.owner_id)) for s, n in zip(rows, nodes, strict=True)]

    async def CreateShare(self, request: share_pb2.CreateShareRequest, context: Ctx) -> share_pb2.Share:
        share = await self.sharing.create_share(
            current_principal().user_id, request.node_id, request.grantee_email, _ROLES_IN.get(request.role)
        )
        return share_pb(share)

    async def UpdateShare(self, request: share_pb2.UpdateShareRequest, context: Ctx) -> share_pb2.Share:
        share = await self.sharing.update_share(
            current_principal().user_id, request.share_id, _ROLES_IN.get(request.role)
        )
        return share_pb(share)

    async def DeleteShare(self, request: share_pb2.DeleteShareRequest, context: Ctx) -> share_pb2.DeleteShareResponse:
        await self.sharing.delete_share(current_principal().user_id, request.share_id)
        return share_pb2.DeleteShareResponse()

    async def ListOutgoingShares(
        self, request: share_pb2.ListOutgoingSharesRequest, context: Ctx
    ) -> share_pb2.ListOutgoingSharesResponse:
        rows, token = await self.sharing.outgoing(current_principal().user_id, request.page_size, request.page_token)
        return share_pb2.ListOutgoingSharesResponse(shares=await self._with_nodes(rows), next_page_token=token)

    async def ListIncomingShares(
        self, request: share_pb2.ListIncomingSharesRequest, context: Ctx
    ) -> share_pb2.ListIncomingSharesResponse:
        rows, token = await self.sharing.incoming(current_principal().user_id, request.page_size, request.page_token)
        return share_pb2.ListIncomingSharesResponse(shares=await self._with_nodes(rows), next_page_token=token)

    async def CreateLink(self, request: share_pb2.CreateLinkRequest, context: Ctx) -> share_pb2.Link:
        link, token = await self.sharing.create_link(
            current_principal().user_id,
            request.node_id,
            _permission(request.permission, required=True),
            request.password,
            _expiry(request),
            request.max_downloads,
            request.max_upload_files,
            request.max_upload_bytes,
        )
        return link_pb(link, token, self.sharing.url(token))

    async def ListLinks(self, request: share_pb2.ListLinksRequest, context: Ctx) -> share_pb2.ListLinksResponse:
        rows, token = await self.sharing.list_links(current_principal().user_id, request.page_size, request.page_token)
        return share_pb2.ListLinksResponse(links=[link_pb(link) for link in rows], next_page_token=token)

    async def UpdateLink(self, request: share_pb2.UpdateLinkRequest, context: Ctx) -> share_pb2.Link:
        changes = LinkChanges(
            password=request.password if request.HasField("password") else None,
            expires_at=_expiry(request),
            clear_expiry=request.clear_expire_time,
            max_downloads=request.max_downloads if request.HasField("max_downloads") else None,
            permission=_permission(request.permission, required=False),
        )
        return link_pb(await self.sharing.update_link(current_principal().user_id, request.link_id, changes))

    async def DeleteLink(self, request: share_pb2.DeleteLinkRequest, context: Ctx) -> share_pb2.DeleteLinkResponse:
        await self.sharing.delete_link(current_principal().user_id, request.link_id)
        return share_pb2.DeleteLinkResponse()

    async def OpenLink(self, request: share_pb2.OpenLinkRequest, context: Ctx) -> share_pb2.OpenLinkResponse:
        link, session, expires = await self.sharing.open_link(request.token, request.password, logs.client_var.get().ip)
        # Browsers get the session as a cookie scoped to this link's paths too, so a download link needs no
        # ?session= query string (which ends up in proxies' and browsers' histories); REST turns this metadata into
        # a Set-Cookie header. The session still comes back in the body for scripts (X-Link-Session).
        cookie = link_session_cookie(request.token, session, expires, self.clock.now())
        await context.send_initial_metadata((("set-cookie", cookie),))
        described = await self.sharing.link_root(request.token, session)
        root = storage_pb2.Node.FromString(described) if described is not None else storage_pb2.Node()
        root.id, root.owner_id = link.node_id, link.owner_id
        return share_pb2.OpenLinkResponse(
            link_session=session,
            expire_time=timestamp(expires),
            permission=_PERMISSIONS[link.permission],
            root=root,
        )


#: Name of the cookie carrying a link session (storage_svc reads it too).
LINK_SESSION_COOKIE = "fd_link_session"


def link_session_cookie(token: str, session: str, expires: datetime, now: datetime) -> str:
    """Set-Cookie value: HttpOnly, SameSite=Strict, scoped to /api/v1/public/links/<token>/, gone with the session."""
    aware = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    max_age = max(0, int((aware - now).total_seconds()))
    return (
        f"{LINK_SESSION_COOKIE}={session}; Path=/api/v1/public/links/{token}/; Max-Age={max_age}; HttpOnly; "
        "SameSite=Strict"
    )


class AccessServicer(share_pb2_grpc.AccessServiceServicer):
    def __init__(self, sharing: Sharing, admins: AdminCheck) -> None:
        self.sharing = sharing
        self.admins = admins

    async def CheckAccess(self, request: share_pb2.CheckAccessRequest, context: Ctx) -> share_pb2.CheckAccessResponse:
        action = _ACTIONS.get(request.action)
        if action is None or action == Action.UPLOAD:
            raise InvalidArgument("action", "must be LIST, DOWNLOAD or WRITE")
        decision = await self.sharing.check_access(
            current_principal().user_id, list(request.node_path), request.owner_id, action
        )
        return share_pb2.CheckAccessResponse(
            allowed=decision.allowed, visible=decision.visible, grant_node_id=decision.grant_node_id
        )

    async def CheckLinkAccess(
        self, request: share_pb2.CheckLinkAccessRequest, context: Ctx
    ) -> share_pb2.CheckLinkAccessResponse:
        action = _ACTIONS.get(request.action)
        if action is None and request.node_path:
            raise InvalidArgument("action", "must be LIST, DOWNLOAD or UPLOAD")
        grant = await self.sharing.check_link_access(
            request.token, request.link_session, list(request.node_path), request.owner_id, action or Action.LIST
        )
        return share_pb2.CheckLinkAccessResponse(
            allowed=grant.allowed,
            link_id=grant.link.id,
            root_node_id=grant.link.node_id,
            owner_id=grant.link.owner_id,
            permission=_PERMISSIONS[grant.link.permission],
            max_upload_files=grant.link.max_upload_files,
            max_upload_bytes=grant.link.max_upload_bytes,
        )

    async def DropShares(self, request: share_pb2.DropSharesRequest, context: Ctx) -> share_pb2.DropSharesResponse:
        dropped = await self.sharing.drop_shares(
            current_principal().user_id, request.owner_id, list(request.node_path), list(request.node_ids)
        )
        return share_pb2.DropSharesResponse(dropped=dropped)

    async def DeleteUserShares(
        self, request: share_pb2.DeleteUserSharesRequest, context: Ctx
    ) -> share_pb2.DeleteUserSharesResponse:
        principal = current_principal()
        # Admin rights from auth's record, not the token's claim alone (a demoted admin's token still says admin).
        is_admin = await self.admins.confirm(principal)
        dropped = await self.sharing.delete_user(principal.user_id, is_admin, request.user_id)
        return share_pb2.DeleteUserSharesResponse(dropped=dropped)
