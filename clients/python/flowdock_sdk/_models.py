"""What the SDK returns: plain frozen dataclasses built from the API's messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from flowdock.auth.v1 import auth_pb2
from flowdock.share.v1 import share_pb2
from flowdock.storage.v1 import storage_pb2


def _time(ts: Timestamp) -> datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class Node:
    """A file or a folder."""

    id: str
    parent_id: str
    name: str
    is_folder: bool
    size: int
    modified: datetime | None
    created: datetime | None
    content_type: str
    sha256: str

    @property
    def kind(self) -> str:
        return "folder" if self.is_folder else "file"

    @classmethod
    def from_pb(cls, n: storage_pb2.Node, parent_id: str = "") -> Node:
        """`parent_id`: the listed folder's, for an entry of a compact listing (which leaves its own out)."""
        return cls(
            id=n.id,
            parent_id=n.parent_id or parent_id,
            name=n.name,
            is_folder=n.kind == storage_pb2.NODE_KIND_FOLDER,
            size=n.size,
            modified=_time(n.modify_time),
            created=_time(n.create_time),
            content_type=n.content_type,
            sha256=n.sha256,
        )


@dataclass(frozen=True)
class TrashEntry:
    """The top of a deleted tree."""

    node: Node
    deleted: datetime | None
    size: int
    purge_at: datetime | None
    original_parent_id: str

    @classmethod
    def from_pb(cls, e: storage_pb2.TrashEntry) -> TrashEntry:
        return cls(Node.from_pb(e.node), _time(e.delete_time), e.size, _time(e.purge_time), e.original_parent_id)


@dataclass(frozen=True)
class Version:
    """One version of a file's content (number 1 is the first upload)."""

    id: str
    number: int
    size: int
    sha256: str
    created: datetime | None
    current: bool

    @classmethod
    def from_pb(cls, v: storage_pb2.Version) -> Version:
        return cls(v.id, v.number, v.size, v.sha256, _time(v.create_time), v.current)


@dataclass(frozen=True)
class Quota:
    """Storage use in bytes (trash and old versions count)."""

    used: int
    reserved: int
    limit: int
    trash: int
    versions: int

    @classmethod
    def from_pb(cls, q: storage_pb2.Quota) -> Quota:
        return cls(q.used_bytes, q.reserved_bytes, q.limit_bytes, q.trash_bytes, q.version_bytes)


@dataclass(frozen=True)
class User:
    """An account."""

    id: str
    email: str
    display_name: str
    role: str
    totp_enabled: bool
    email_verified: bool
    disabled: bool
    created: datetime | None

    @classmethod
    def from_pb(cls, u: auth_pb2.User) -> User:
        role = auth_pb2.Role.Name(u.role).removeprefix("ROLE_").lower()
        return cls(
            u.id, u.email, u.display_name, role, u.totp_enabled, u.email_verified, u.disabled, _time(u.create_time)
        )


_SESSION_KINDS = {
    auth_pb2.SESSION_KIND_LOGIN: "login",
    auth_pb2.SESSION_KIND_APP_PASSWORD: "app password",
    auth_pb2.SESSION_KIND_BASIC_PASSWORD: "basic password",
}


@dataclass(frozen=True)
class Session:
    """One login on one device, or an app password (`kind`: "login", "app password", "basic password")."""

    id: str
    device: str
    ip: str
    created: datetime | None
    last_seen: datetime | None
    current: bool
    kind: str = "login"

    @classmethod
    def from_pb(cls, s: auth_pb2.Session) -> Session:
        return cls(
            s.id,
            s.device_name,
            s.ip,
            _time(s.create_time),
            _time(s.last_seen_time),
            s.current,
            _SESSION_KINDS.get(s.kind, "login"),
        )


@dataclass(frozen=True)
class AppPassword:
    """A named app password (what WebDAV and other clients without a login page use); never its secret."""

    id: str
    name: str
    created: datetime | None
    last_used: datetime | None

    @classmethod
    def from_pb(cls, a: auth_pb2.AppPassword) -> AppPassword:
        return cls(a.id, a.name, _time(a.create_time), _time(a.last_used_time))


@dataclass(frozen=True)
class NewAppPassword:
    """A just-created app password and its secret: the only time the secret is available."""

    app_password: AppPassword
    secret: str


@dataclass(frozen=True)
class TotpEnrollment:
    """A new (not yet active) TOTP secret: show `uri` as a QR code, then `confirm_2fa(code)`."""

    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class Share:
    """A node shared by its owner with another account, with a role (viewer, downloader, editor)."""

    id: str
    node_id: str
    owner_id: str
    grantee_id: str
    grantee_email: str
    role: str
    created: datetime | None
    node: Node | None

    @classmethod
    def from_pb(cls, s: share_pb2.Share) -> Share:
        role = share_pb2.ShareRole.Name(s.role).removeprefix("SHARE_ROLE_").lower()
        node = Node.from_pb(s.node) if s.HasField("node") else None
        return cls(s.id, s.node_id, s.owner_id, s.grantee_id, s.grantee_email, role, _time(s.create_time), node)


@dataclass(frozen=True)
class Link:
    """A public link (`url` is absolute: the gateway's address + the link path); permission is view, download
    or upload (a file drop)."""

    id: str
    node_id: str
    token: str
    url: str
    permission: str
    has_password: bool
    expires: datetime | None
    max_downloads: int
    download_count: int
    created: datetime | None

    @classmethod
    def from_pb(cls, link: share_pb2.Link, base_url: str = "") -> Link:
        permission = share_pb2.LinkPermission.Name(link.permission).removeprefix("LINK_PERMISSION_").lower()
        path = link.url or (f"/api/v1/public/links/{link.token}" if link.token else "")
        url = path if "://" in path or not path else base_url.rstrip("/") + path
        return cls(
            link.id,
            link.node_id,
            link.token,
            url,
            permission,
            link.has_password,
            _time(link.expire_time),
            link.max_downloads,
            link.download_count,
            _time(link.create_time),
        )


@dataclass(frozen=True)
class TransferProgress:
    """Reported while a file moves: `done` of `total` bytes; `resumed_from` > 0 when it continued an earlier run;
    `hashing` while an upload computes the file's SHA-256 before sending it."""

    path: str
    done: int
    total: int
    resumed_from: int = 0
    hashing: bool = False
