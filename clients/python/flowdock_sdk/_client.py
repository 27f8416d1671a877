"""`AsyncClient`: FlowDock in Python terms (paths, nodes, trees) over an `RpcSession` (channel, tokens, calls)."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal, Self

from flowdock.auth.v1 import auth_pb2
from flowdock.share.v1 import share_pb2
from flowdock.storage.v1 import storage_pb2
from flowdock_sdk import _transfer
from flowdock_sdk._errors import AlreadyExists, FlowDockError, NotFound, UnsafeName
from flowdock_sdk._models import (
    AppPassword,
    Link,
    NewAppPassword,
    Node,
    Quota,
    Session,
    Share,
    TotpEnrollment,
    TransferProgress,
    TrashEntry,
    User,
    Version,
)
from flowdock_sdk._session import RpcSession

NodeRef = Node | str
"""A node, an absolute path ("/Docs/a.txt") or a node id ("root" is your root folder)."""
ProgressCallback = Callable[[TransferProgress], None]

_SHARE_ROLES = {
    "viewer": share_pb2.SHARE_ROLE_VIEWER,
    "downloader": share_pb2.SHARE_ROLE_DOWNLOADER,
    "editor": share_pb2.SHARE_ROLE_EDITOR,
}
_LINK_PERMISSIONS = {
    "view": share_pb2.LINK_PERMISSION_VIEW,
    "download": share_pb2.LINK_PERMISSION_DOWNLOAD,
    "upload": share_pb2.LINK_PERMISSION_UPLOAD,
}

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_local_name(name: str) -> str:
    """`name` if it is safe as one local path component; UnsafeName otherwise.

    Names come from the server: a hostile or compromised one could send `..`, `a/../../x`, `/etc/x`, `C:\\x` or a
    NUL to make a download write outside its destination. The server refuses such names itself; the SDK does not
    rely on it.
    """
    problem = ""
    if name in ("", ".", ".."):
        problem = "is empty, '.' or '..'"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif "\0" in name:
        problem = "contains a NUL character"
    elif _WINDOWS_DRIVE.match(name) or PurePosixPath(name).is_absolute():
        problem = "is an absolute path"
    if problem:
        raise UnsafeName(f"refusing the server-supplied name {name!r}: it {problem}; nothing was written")
    return name


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFC", name.casefold())


def split_path(path: str) -> list[str]:
    """'/a//b/' -> ['a', 'b'] (remote paths are absolute; '.' and '..' are refused)."""
    parts = [p for p in PurePosixPath("/" + path.strip()).parts[1:] if p not in ("", ".")]
    if ".." in parts:
        raise FlowDockError(f"remote path {path!r}: '..' is not supported", code="INVALID_ARGUMENT")
    return parts


class AsyncClient:
    """A FlowDock account over native gRPC (grpc.aio), through the gateway.

    ```python
    async with AsyncClient("http://127.0.0.1:8080", email="ada@example.org", password="…") as fd:
        await fd.upload("photos", "/Backup")
        for node in await fd.listdir("/Backup/photos"):
            print(node.name, node.size)
    ```

    Credentials: `email` + `password` (and `totp`, a callable returning the current 2FA code, when the account has
    2FA on), or a `refresh_token` from an earlier login. Refresh tokens rotate on every use: `on_refresh_token` is
    called with each new one so it can be stored. Access tokens are refreshed shortly before they expire and once
    more when a call answers UNAUTHENTICATED.
    """

    def __init__(
        self,
        base_url: str,
        *,
        email: str = "",
        password: str = "",
        totp: Callable[[], str] | None = None,
        refresh_token: str = "",
        on_refresh_token: Callable[[str], None] | None = None,
        device_name: str = "flowdock-sdk",
        timeout: float = 60.0,
        max_parallel: int = 4,
        retries: int = 3,
        state_file: str | Path | None = None,
    ) -> None:
        self._session = RpcSession(
            base_url,
            email=email,
            password=password,
            totp=totp,
            refresh_token=refresh_token,
            on_refresh_token=on_refresh_token,
            device_name=device_name,
            timeout=timeout,
            retries=retries,
        )
        self._children: dict[str, list[Node]] = {}
        self._root: Node | None = None
        self.max_parallel = max_parallel
        self.state = _transfer.UploadState(Path(state_file) if state_file else None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (the session stays alive; `logout()` ends it)."""
        await self._session.close()

    @property
    def base_url(self) -> str:
        """The gateway this client talks to."""
        return self._session.base_url

    @property
    def retries(self) -> int:
        """How often a dropped connection or a short rate limit is retried before the call fails."""
        return self._session.retries

    @retries.setter
    def retries(self, value: int) -> None:
        self._session.retries = value

    # -- tokens ---------------------------------------------------------------------------------------------------

    @property
    def refresh_token(self) -> str:
        """The newest refresh token (they rotate: an older one is dead, and presenting it ends the session)."""
        return self._session.tokens.refresh

    async def register(self, email: str, password: str, *, display_name: str = "") -> None:
        """Create an account (the server may require a verified email before the first login)."""
        await self._session.call_anonymous(
            self._session.auth.Register,
            auth_pb2.RegisterRequest(email=email, password=password, display_name=display_name),
        )

    async def login(self, *, totp_code: str = "") -> None:
        """Log in with the email and password given at construction (2FA: `totp_code` or the `totp` callable)."""
        await self._session.login(totp_code)

    async def authenticate(self) -> None:
        """Get an access token now (refreshing, or logging in); calls otherwise do this by themselves."""
        await self._session.token()

    # -- account --------------------------------------------------------------------------------------------------

    async def me(self) -> User:
        """Your profile."""
        return User.from_pb(await self._session.call(self._session.auth.GetMe, auth_pb2.GetMeRequest()))

    async def logout(self) -> None:
        """End this session on the server (its refresh token dies with it)."""
        await self._session.call(self._session.auth.Logout, auth_pb2.LogoutRequest())
        self._session.forget()

    async def sessions(self) -> list[Session]:
        """Your live sessions (devices); `current` marks this one."""
        resp = await self._session.call(self._session.auth.ListSessions, auth_pb2.ListSessionsRequest())
        return [Session.from_pb(s) for s in resp.sessions]

    async def revoke_session(self, session_id: str) -> None:
        """End one of your sessions."""
        await self._session.call(self._session.auth.RevokeSession, auth_pb2.RevokeSessionRequest(session_id=session_id))

    async def revoke_other_sessions(self) -> int:
        """End every session but this one; returns how many ended."""
        resp = await self._session.call(self._session.auth.RevokeOtherSessions, auth_pb2.RevokeOtherSessionsRequest())
        return resp.revoked

    async def app_passwords(self) -> list[AppPassword]:
        """Your app passwords that still work, newest first."""
        resp = await self._session.call(self._session.auth.ListAppPasswords, auth_pb2.ListAppPasswordsRequest())
        return [AppPassword.from_pb(a) for a in resp.app_passwords]

    async def create_app_password(self, name: str) -> NewAppPassword:
        """A new app password for a WebDAV (or other HTTP Basic) client: log in there with your email and
        `secret`, which the server never shows again."""
        resp = await self._session.call(
            self._session.auth.CreateAppPassword, auth_pb2.CreateAppPasswordRequest(name=name)
        )
        return NewAppPassword(AppPassword.from_pb(resp.app_password), resp.secret)

    async def revoke_app_password(self, app_password_id: str) -> None:
        """End an app password: the next request made with it is refused."""
        await self._session.call(
            self._session.auth.RevokeAppPassword, auth_pb2.RevokeAppPasswordRequest(id=app_password_id)
        )

    async def start_2fa(self) -> TotpEnrollment:
        """Create a TOTP secret (inactive until `confirm_2fa`)."""
        resp = await self._session.call(self._session.auth.StartTotpEnrollment, auth_pb2.StartTotpEnrollmentRequest())
        return TotpEnrollment(resp.secret, resp.otpauth_uri, resp.qr_svg)

    async def confirm_2fa(self, code: str) -> list[str]:
        """Turn 2FA on with a first code; returns the 10 single-use recovery codes."""
        resp = await self._session.call(self._session.auth.ConfirmTotp, auth_pb2.ConfirmTotpRequest(code=code))
        return list(resp.recovery_codes)

    async def disable_2fa(self, *, password: str, code: str) -> None:
        """Turn 2FA off (your password and a current code)."""
        await self._session.call(
            self._session.auth.DisableTotp, auth_pb2.DisableTotpRequest(password=password, code=code)
        )

    # -- admin ----------------------------------------------------------------------------------------------------

    async def admin_users(self, query: str = "") -> list[User]:
        """Every account, or those whose email or name contains `query` (admin only)."""
        users: list[User] = []
        token = ""
        while True:
            resp = await self._session.call(
                self._session.auth.ListUsers, auth_pb2.ListUsersRequest(query=query, page_size=500, page_token=token)
            )
            users += [User.from_pb(u) for u in resp.users]
            token = resp.next_page_token
            if not token:
                return users

    async def admin_user(self, user_id: str) -> User:
        """One account (admin only)."""
        return User.from_pb(
            await self._session.call(self._session.auth.GetUser, auth_pb2.GetUserRequest(user_id=user_id))
        )

    async def admin_set_role(self, user_id: str, role: Literal["user", "admin"]) -> User:
        """Make an account a user or an admin (admin only)."""
        value = auth_pb2.ROLE_ADMIN if role == "admin" else auth_pb2.ROLE_USER
        return User.from_pb(
            await self._session.call(
                self._session.auth.SetUserRole, auth_pb2.SetUserRoleRequest(user_id=user_id, role=value)
            )
        )

    async def admin_set_disabled(self, user_id: str, disabled: bool) -> User:
        """Disable (ending its sessions) or enable an account (admin only)."""
        return User.from_pb(
            await self._session.call(
                self._session.auth.SetUserDisabled, auth_pb2.SetUserDisabledRequest(user_id=user_id, disabled=disabled)
            )
        )

    async def admin_quota(self, user_id: str) -> Quota:
        """An account's storage use and limit (admin only; trash and versions are not broken out here)."""
        q = await self._session.call(self._session.auth.GetUserQuota, auth_pb2.GetUserQuotaRequest(user_id=user_id))
        return Quota(q.used_bytes, q.reserved_bytes, q.limit_bytes, 0, 0)

    async def admin_set_quota(self, user_id: str, limit_bytes: int) -> Quota:
        """Set an account's storage limit in bytes (0: the server's default) (admin only)."""
        req = auth_pb2.SetUserQuotaRequest(user_id=user_id, limit_bytes=limit_bytes)
        q = await self._session.call(self._session.auth.SetUserQuota, req)
        return Quota(q.used_bytes, q.reserved_bytes, q.limit_bytes, 0, 0)

    async def admin_delete_user(self, user_id: str) -> int:
        """Delete an account and all its files for good; returns the bytes freed (admin only)."""
        resp = await self._session.call(self._session.auth.DeleteUser, auth_pb2.DeleteUserRequest(user_id=user_id))
        return resp.freed_bytes

    # -- tree -----------------------------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._children.clear()

    async def root(self) -> Node:
        """Your root folder."""
        if self._root is None:
            self._root = Node.from_pb(
                await self._session.call(self._session.storage.GetNode, storage_pb2.GetNodeRequest(node_id="root"))
            )
        return self._root

    async def listdir(self, folder: NodeRef = "/") -> list[Node]:
        """A folder's entries, folders first, by name (all pages)."""
        node = await self.stat(folder)
        if not node.is_folder:
            raise FlowDockError(f"{node.name!r} is a file, not a folder", code="INVALID_ARGUMENT")
        return await self._list_id(node.id)

    async def _list_id(self, folder_id: str) -> list[Node]:
        cached = self._children.get(folder_id)
        if cached is not None:
            return cached
        nodes: list[Node] = []
        token = ""
        while True:
            resp = await self._session.call(
                self._session.storage.ListChildren,
                storage_pb2.ListChildrenRequest(folder_id=folder_id, page_size=1000, page_token=token, compact=True),
            )
            nodes += [Node.from_pb(n, resp.parent_id) for n in resp.nodes]
            token = resp.next_page_token
            if not token:
                break
        self._children[folder_id] = nodes
        return nodes

    async def _child(self, folder_id: str, name: str) -> Node | None:
        children = await self._list_id(folder_id)
        exact = next((n for n in children if n.name == name), None)
        return exact or next((n for n in children if _name_key(n.name) == _name_key(name)), None)

    async def stat(self, ref: NodeRef) -> Node:
        """The node at a path ("/a/b", resolved by listing from the root, cached) or with an id."""
        if isinstance(ref, Node):
            return ref
        if not ref.startswith("/"):
            return Node.from_pb(
                await self._session.call(self._session.storage.GetNode, storage_pb2.GetNodeRequest(node_id=ref))
            )
        node = await self.root()
        walked: list[str] = []
        for part in split_path(ref):
            walked.append(part)
            child = await self._child(node.id, part) if node.is_folder else None
            if child is None:
                raise NotFound(f"/{'/'.join(walked)}: no such file or folder")
            node = child
        return node

    async def exists(self, ref: NodeRef) -> bool:
        """Whether a path or id names a live node."""
        try:
            await self.stat(ref)
        except NotFound:
            return False
        return True

    async def path_of(self, ref: NodeRef) -> str:
        """The absolute path of a node."""
        node = await self.stat(ref)
        resp = await self._session.call(
            self._session.storage.GetNodePath, storage_pb2.GetNodePathRequest(node_id=node.id)
        )
        return "/" + "/".join(n.name for n in resp.nodes[1:])

    async def walk(self, folder: NodeRef = "/") -> list[tuple[str, Node]]:
        """Every node below a folder with its path relative to it ("a/b.txt"), parents before children."""
        top = await self.stat(folder)
        found: list[tuple[str, Node]] = []

        async def visit(node: Node, prefix: str) -> None:
            for child in await self._list_id(node.id):
                rel = f"{prefix}{child.name}"
                found.append((rel, child))
                if child.is_folder:
                    await visit(child, rel + "/")

        await visit(top, "")
        return found

    async def create_folder(self, parent: NodeRef, name: str) -> Node:
        """A new folder called `name` in `parent` (ALREADY_EXISTS if the name is taken)."""
        parent_node = await self.stat(parent)
        self._changed()
        return Node.from_pb(
            await self._session.call(
                self._session.storage.CreateFolder, storage_pb2.CreateFolderRequest(parent_id=parent_node.id, name=name)
            )
        )

    async def mkdir(self, path: str, *, parents: bool = False) -> Node:
        """Create the folder at `path`; with `parents`, missing ones above it too (and no error if it exists)."""
        parts = split_path(path)
        if not parts:
            return await self.root()
        node = await self.root()
        for i, part in enumerate(parts):
            child = await self._child(node.id, part)
            last = i == len(parts) - 1
            if child is not None:
                if not child.is_folder:
                    raise AlreadyExists(f"/{'/'.join(parts[: i + 1])} is a file")
                if last and not parents:
                    raise AlreadyExists(f"{path} already exists")
                node = child
                continue
            if not (last or parents):
                raise NotFound(f"/{'/'.join(parts[: i + 1])}: no such folder (use parents=True)")
            try:
                node = await self.create_folder(node, part)
            except AlreadyExists:  # someone else made it meanwhile
                self._changed()
                again = await self._child(node.id, part)
                if again is None or not again.is_folder or (last and not parents):
                    raise
                node = again
        return node

    async def _makedirs(self, top: Node, rel: str) -> Node:
        node = top
        for part in rel.split("/"):
            child = await self._child(node.id, part)
            if child is None:
                try:
                    child = await self.create_folder(node, part)
                except AlreadyExists:
                    self._changed()
                    child = await self._child(node.id, part)
                    if child is None:
                        raise
            if not child.is_folder:
                raise AlreadyExists(f"{rel}: {part!r} exists and is a file, not a folder")
            node = child
        return node

    async def move(self, ref: NodeRef, folder: NodeRef, *, name: str = "", rename_on_conflict: bool = False) -> Node:
        """Move a node into `folder` (optionally renaming it)."""
        node, target = await self.stat(ref), await self.stat(folder)
        return await self._update(node.id, name=name, parent_id=target.id, rename_on_conflict=rename_on_conflict)

    async def rename(self, ref: NodeRef, name: str, *, rename_on_conflict: bool = False) -> Node:
        """Give a node a new name in the same folder."""
        node = await self.stat(ref)
        return await self._update(node.id, name=name, parent_id="", rename_on_conflict=rename_on_conflict)

    async def _update(self, node_id: str, *, name: str, parent_id: str, rename_on_conflict: bool) -> Node:
        self._changed()
        on_conflict = storage_pb2.ON_CONFLICT_RENAME if rename_on_conflict else storage_pb2.ON_CONFLICT_FAIL
        req = storage_pb2.UpdateNodeRequest(node_id=node_id, name=name, parent_id=parent_id, on_conflict=on_conflict)
        return Node.from_pb(await self._session.call(self._session.storage.UpdateNode, req))

    async def copy(self, ref: NodeRef, folder: NodeRef, *, name: str = "", rename_on_conflict: bool = False) -> Node:
        """Copy a file or a whole folder tree into `folder`, server-side."""
        node, target = await self.stat(ref), await self.stat(folder)
        self._changed()
        on_conflict = storage_pb2.ON_CONFLICT_RENAME if rename_on_conflict else storage_pb2.ON_CONFLICT_FAIL
        req = storage_pb2.CopyNodeRequest(node_id=node.id, parent_id=target.id, name=name, on_conflict=on_conflict)
        return Node.from_pb(await self._session.call(self._session.storage.CopyNode, req))

    async def delete(self, ref: NodeRef) -> Node:
        """Move a node (and everything below it) to the trash."""
        node = await self.stat(ref)
        self._changed()
        return Node.from_pb(
            await self._session.call(self._session.storage.DeleteNode, storage_pb2.DeleteNodeRequest(node_id=node.id))
        )

    # -- trash, versions, search, quota ---------------------------------------------------------------------------

    async def trash(self) -> list[TrashEntry]:
        """What you deleted (the top of each deleted tree), newest first."""
        entries: list[TrashEntry] = []
        token = ""
        while True:
            resp = await self._session.call(
                self._session.storage.ListTrash, storage_pb2.ListTrashRequest(page_size=500, page_token=token)
            )
            entries += [TrashEntry.from_pb(e) for e in resp.entries]
            token = resp.next_page_token
            if not token:
                return entries

    async def restore(self, node_id: str) -> Node:
        """Put a trashed node back where it was."""
        self._changed()
        return Node.from_pb(
            await self._session.call(
                self._session.storage.RestoreTrash, storage_pb2.RestoreTrashRequest(node_id=node_id)
            )
        )

    async def purge(self, node_id: str) -> int:
        """Delete one trashed tree for good; returns the bytes freed."""
        resp = await self._session.call(
            self._session.storage.PurgeTrash, storage_pb2.PurgeTrashRequest(node_id=node_id)
        )
        return resp.freed_bytes

    async def empty_trash(self) -> int:
        """Delete everything in the trash for good; returns the bytes freed."""
        return (await self._session.call(self._session.storage.EmptyTrash, storage_pb2.EmptyTrashRequest())).freed_bytes

    async def versions(self, ref: NodeRef) -> list[Version]:
        """A file's versions, newest (current) first."""
        node = await self.stat(ref)
        resp = await self._session.call(
            self._session.storage.ListVersions, storage_pb2.ListVersionsRequest(file_id=node.id)
        )
        return [Version.from_pb(v) for v in resp.versions]

    async def restore_version(self, ref: NodeRef, version_id: str) -> Node:
        """Make an older version current again (as a new version)."""
        node = await self.stat(ref)
        req = storage_pb2.RestoreVersionRequest(file_id=node.id, version_id=version_id)
        return Node.from_pb(await self._session.call(self._session.storage.RestoreVersion, req))

    async def search(
        self, query: str, *, kind: Literal["file", "folder"] | None = None, limit: int = 1000
    ) -> list[Node]:
        """Your live files and folders whose name contains `query` (case-insensitive)."""
        kinds = {
            "file": storage_pb2.NODE_KIND_FILE,
            "folder": storage_pb2.NODE_KIND_FOLDER,
            None: storage_pb2.NODE_KIND_UNSPECIFIED,
        }
        found: list[Node] = []
        token = ""
        while len(found) < limit:
            req = storage_pb2.SearchRequest(
                query=query, kind=kinds[kind], page_size=min(limit - len(found), 500), page_token=token
            )
            resp = await self._session.call(self._session.storage.Search, req)
            found += [Node.from_pb(n) for n in resp.nodes]
            token = resp.next_page_token
            if not token:
                break
        return found[:limit]

    async def quota(self) -> Quota:
        """Your storage use and limit."""
        return Quota.from_pb(await self._session.call(self._session.storage.GetQuota, storage_pb2.GetQuotaRequest()))

    # -- shares ---------------------------------------------------------------------------------------------------

    async def shares(self, *, direction: Literal["outgoing", "incoming"] = "outgoing") -> list[Share]:
        """What you share with others (outgoing) or others share with you (incoming)."""
        found: list[Share] = []
        token = ""
        while True:
            if direction == "incoming":
                resp: Any = await self._session.call(
                    self._session.share.ListIncomingShares,
                    share_pb2.ListIncomingSharesRequest(page_size=500, page_token=token),
                )
            else:
                resp = await self._session.call(
                    self._session.share.ListOutgoingShares,
                    share_pb2.ListOutgoingSharesRequest(page_size=500, page_token=token),
                )
            found += [Share.from_pb(s) for s in resp.shares]
            token = resp.next_page_token
            if not token:
                return found

    async def share(
        self, ref: NodeRef, email: str, *, role: Literal["viewer", "downloader", "editor"] = "viewer"
    ) -> Share:
        """Share a node you own with another account (by email): viewer lists, downloader also downloads,
        editor also writes."""
        node = await self.stat(ref)
        req = share_pb2.CreateShareRequest(node_id=node.id, grantee_email=email, role=_SHARE_ROLES[role])
        return Share.from_pb(await self._session.call(self._session.share.CreateShare, req))

    async def update_share(self, share_id: str, *, role: Literal["viewer", "downloader", "editor"]) -> Share:
        """Change the role of one of your shares."""
        req = share_pb2.UpdateShareRequest(share_id=share_id, role=_SHARE_ROLES[role])
        return Share.from_pb(await self._session.call(self._session.share.UpdateShare, req))

    async def unshare(self, share_id: str) -> None:
        """Revoke one of your shares (effective at once)."""
        await self._session.call(self._session.share.DeleteShare, share_pb2.DeleteShareRequest(share_id=share_id))

    async def create_link(
        self,
        ref: NodeRef,
        *,
        permission: Literal["view", "download", "upload"] = "download",
        password: str = "",
        expires: datetime | None = None,
        max_downloads: int = 0,
    ) -> Link:
        """A public link to a node you own (upload: a file drop into a folder); optional password, expiry and
        download limit."""
        node = await self.stat(ref)
        req = share_pb2.CreateLinkRequest(
            node_id=node.id, password=password, max_downloads=max_downloads, permission=_LINK_PERMISSIONS[permission]
        )
        if expires is not None:
            req.expire_time.FromDatetime(expires.astimezone(UTC))
        return Link.from_pb(await self._session.call(self._session.share.CreateLink, req), self.base_url)

    async def links(self) -> list[Link]:
        """Your live public links."""
        found: list[Link] = []
        token = ""
        while True:
            resp = await self._session.call(
                self._session.share.ListLinks, share_pb2.ListLinksRequest(page_size=500, page_token=token)
            )
            found += [Link.from_pb(link, self.base_url) for link in resp.links]
            token = resp.next_page_token
            if not token:
                return found

    async def delete_link(self, link_id: str) -> None:
        """Revoke a public link: its URL answers 404 from then on."""
        await self._session.call(self._session.share.DeleteLink, share_pb2.DeleteLinkRequest(link_id=link_id))

    # -- transfers ------------------------------------------------------------------------------------------------

    async def upload(
        self,
        local: str | Path,
        folder: NodeRef = "/",
        *,
        overwrite: bool = False,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        contents: bool = False,
    ) -> list[Node]:
        """Upload a file, or a directory tree keeping its structure, into the remote `folder` (created if missing).

        With `contents`, a directory's entries go into `folder`, not the directory itself: `folder` becomes a copy
        of it whether or not it existed (rclone's `copy`; `download(..., contents=True)` is the way back).
        `overwrite` adds a new version to files that exist; without it an existing name is ALREADY_EXISTS.
        `resume` continues uploads a previous run left open (from the state file and the server's committed offset).
        Files go `max_parallel` at a time, SHA-256 checked by the server. Returns the uploaded files.
        """
        jobs = await asyncio.to_thread(_transfer.plan_upload, Path(local), contents=contents)
        if isinstance(folder, str) and folder.startswith("/"):
            target = await self.mkdir(folder, parents=True)
        else:
            target = await self.stat(folder)
        if contents:
            tops = sorted({rel.partition("/")[0] for rel in [f.relative for f in jobs.files] + jobs.empty_dirs})
        else:
            tops = [jobs.source.name]
        if not overwrite and not resume:
            for name in tops:
                if await self._child(target.id, name) is not None:
                    raise AlreadyExists(f"{name} already exists in the destination (use overwrite=True)")
        # Folders first, one at a time (parallel uploads then find them); files still name their place by
        # relative_path, so a folder removed meanwhile is recreated by the server.
        folders = {rel.rpartition("/")[0] for rel in (f.relative for f in jobs.files)} | set(jobs.empty_dirs)
        for rel in sorted(f for f in folders if f):
            await self._makedirs(target, rel)
        uploader = _transfer.Uploader(
            self._session, self.state, target.id, overwrite=overwrite, resume=resume, progress=progress
        )
        nodes = await self._bounded([partial(uploader.one, f.path, f.relative) for f in jobs.files])
        self._changed()
        return nodes

    async def download(
        self,
        ref: NodeRef,
        local: str | Path,
        *,
        overwrite: bool = False,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        contents: bool = False,
    ) -> list[Path]:
        """Download a file or a folder tree to `local` (into it, if it is an existing directory).

        With `contents`, `local` is always the directory receiving a folder's entries (or the file), created if
        missing: it becomes a copy of the folder whether or not it existed (rclone's `copy`, the way back from
        `upload(..., contents=True)`).

        Each file is written beside its destination as `.<name>.flowdock-part`, checked against its SHA-256 and
        renamed into place: an interrupted download leaves no partial file — unless `resume`, which keeps part
        files and continues them next time. Existing files are refused unless `overwrite`. Returns the local
        paths written.
        """
        node = await self.stat(ref)
        dest = Path(local)
        if contents:
            if await asyncio.to_thread(_taken_by_a_non_directory, dest):
                raise AlreadyExists(f"{dest} exists and is not a directory")
            if not node.is_folder:
                dest = dest / safe_local_name(node.name)
        elif await asyncio.to_thread(dest.is_dir):
            dest = dest / (safe_local_name(node.name) if node.name else "root")
        if not node.is_folder:
            pairs = [(node, dest)]
        else:
            if await asyncio.to_thread(_taken_by_a_non_directory, dest):
                raise AlreadyExists(f"{dest} exists and is not a directory")
            tree = await self.walk(node)
            for _, child in tree:
                safe_local_name(child.name)  # before anything is written
            for rel, child in tree:
                if child.is_folder and (dest / rel).exists() and not (dest / rel).is_dir():
                    raise AlreadyExists(f"{dest / rel} exists and is not a directory")
            pairs = [(child, dest / rel) for rel, child in tree if not child.is_folder]
            dest.mkdir(parents=True, exist_ok=True)
            for rel, child in tree:
                if child.is_folder:
                    (dest / rel).mkdir(parents=True, exist_ok=True)
        if not overwrite:
            taken = [str(p) for _, p in pairs if p.exists() or p.is_symlink()]
            if taken:
                more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
                raise AlreadyExists(f"{taken[0]} already exists{more} (use overwrite=True)")
        return await self._bounded(
            [partial(_transfer.download_file, self._session, n, p, progress=progress, resume=resume) for n, p in pairs]
        )

    async def download_bytes(self, ref: NodeRef, *, offset: int = 0, length: int = 0, version: str = "") -> bytes:
        """A file's content (or a range of it) in memory."""
        node = await self.stat(ref)
        parts = [chunk async for chunk in _transfer.stream_download(self._session, node.id, offset, length, version)]
        return b"".join(parts)

    async def _bounded(self, thunks: Sequence[Callable[[], Awaitable[_transfer.T]]]) -> list[_transfer.T]:
        gate = asyncio.Semaphore(max(1, self.max_parallel))

        async def run(thunk: Callable[[], Awaitable[_transfer.T]]) -> _transfer.T:
            async with gate:
                return await thunk()

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(run(t)) for t in thunks]
        except BaseExceptionGroup as eg:
            raise _first(eg) from None
        return [t.result() for t in tasks]


def _taken_by_a_non_directory(path: Path) -> bool:
    return not path.is_dir() and (path.exists() or path.is_symlink())


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed parallel transfer: a FlowDockError if any, else the first."""
    flat: list[BaseException] = []

    def collect(g: BaseExceptionGroup[BaseException]) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                collect(e)
            else:
                flat.append(e)

    collect(group)
    return next((e for e in flat if isinstance(e, FlowDockError)), flat[0])
