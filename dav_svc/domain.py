"""WebDAV paths and the rules on them: which names are acceptable, where the shared-items collection is.

Pure: no gRPC, no SQLAlchemy, no WsgiDAV. The provider turns these errors into HTTP statuses (statuses.py).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The collection at the top of a user's tree that lists what others shared with the user.
SHARED_WITH_ME = "Shared with me"

#: Longest name a segment may have (storage_svc's own limit is checked there again).
MAX_NAME_CHARS = 255


class BadPath(ValueError):
    """The URL names no acceptable resource (empty, `..`, NUL or a slash inside a segment)."""


@dataclass(frozen=True)
class DavPath:
    """A resource path below the provider's mount, as decoded segments."""

    segments: tuple[str, ...]

    @property
    def is_root(self) -> bool:
        return not self.segments

    @property
    def in_shared(self) -> bool:
        """Below (or at) the `Shared with me` collection."""
        return bool(self.segments) and self.segments[0] == SHARED_WITH_ME

    @property
    def name(self) -> str:
        return self.segments[-1] if self.segments else ""

    def parent(self) -> DavPath:
        return DavPath(self.segments[:-1])

    def child(self, name: str) -> DavPath:
        return DavPath((*self.segments, check_name(name)))

    def contains(self, other: DavPath) -> bool:
        """True when `other` is this path or lies below it (a MOVE into its own subtree)."""
        return other.segments[: len(self.segments)] == self.segments

    def __str__(self) -> str:
        return "/" + "/".join(self.segments)


def check_name(name: str) -> str:
    """A single segment as storage_svc will see it; BadPath saying why it is refused."""
    if name in ("", ".", ".."):
        raise BadPath(f"the name {name!r} is not allowed")
    if "\x00" in name:
        raise BadPath("a name may not contain NUL")
    if "/" in name or "\\" in name:
        raise BadPath("a name may not contain a slash (%2F)")
    if "\ufffd" in name or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise BadPath("the name is not valid UTF-8")
    if len(name) > MAX_NAME_CHARS:
        raise BadPath(f"a name may have at most {MAX_NAME_CHARS} characters")
    return name


def parse(path: str) -> DavPath:
    """WsgiDAV's decoded path ("/a/b/") to segments; `..`, NUL and the like refused, not resolved."""
    parts = [p for p in path.split("/") if p != ""]
    return DavPath(tuple(check_name(p) for p in parts))
