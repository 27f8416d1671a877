"""PROPFIND depth 0 and 1 rendered straight from the folder listing (issue 20: p50 within 2x the REST listing).

WsgiDAV answers a PROPFIND generically: per member a resource object, per property a getter, an ElementTree of the
whole multistatus serialised at the end, about 0.1 ms an entry (a 1,000-entry folder took 5x its REST listing).
Here the common requests (allprop, an empty body, named properties) of plain files and folders are written as
text from the nodes of the one ListChildren walk, the same properties with the same values and statuses as
WsgiDAV's answer (tests/dav/test_propfind_render.py compares the two as namespace-resolved XML). A member WsgiDAV
must answer itself is rendered by it and spliced in: one with dead properties or a lock, the virtual
`Shared with me`. Whole requests go the generic way when they ask for property names, carry conditional headers,
or name something that is not a plain file or folder.
"""

from __future__ import annotations

import functools
import io
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any
from xml.etree import ElementTree

from wsgidav import util, xml_tools

#: Conditional headers WsgiDAV evaluates before a PROPFIND (its `_evaluate_if_headers`): such requests go its way.
CONDITIONAL = ("HTTP_IF", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")
#: What `DAVResource.get_href` leaves unquoted (Nautilus chokes on an encoded parenthesis).
HREF_SAFE = "/" + "!*'()," + "$-_|."
DAV = "{DAV:}"
OK = "HTTP/1.1 200 OK"
NOT_FOUND = "HTTP/1.1 404 Not Found"
SUPPORTED_LOCK = (
    "<D:supportedlock>"
    "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    "<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    "</D:supportedlock>"
)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


@functools.lru_cache(maxsize=4096)
def rfc1123(secs: int) -> str:
    """email.utils.formatdate(secs, usegmt=True), as WsgiDAV writes getlastmodified (a folder's files often share a
    second: cached)."""
    t = time.gmtime(secs)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


@functools.lru_cache(maxsize=4096)
def rfc3339(secs: int) -> str:
    """WsgiDAV's creationdate format."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))


def seconds(ts: Any) -> int | None:
    """A node's timestamp as WsgiDAV shows it: whole seconds (storage keeps microseconds, so WsgiDAV's float of
    it never rounds up to the next second); None when unset (the property is left out)."""
    if not ts.seconds and not ts.nanos:
        return None
    return int(ts.seconds)


def _element(name: str, text: str | None) -> str:
    """<name>text</name> for a DAV: name, or with its own namespace declaration for any other."""
    ns, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
    if ns == "DAV:":
        tag, decl = f"D:{local}", ""
    elif ns:
        tag, decl = f"ns0:{local}", f' xmlns:ns0="{escape(ns).replace(chr(34), "&quot;")}"'
    else:
        tag, decl = local, ""
    if text is None or text == "":
        return f"<{tag}{decl}/>"
    return f"<{tag}{decl}>{text}</{tag}>"


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-~!*'(),$|]*")


def quote_name(name: str) -> str:
    """One path segment quoted as `DAVResource.get_href` quotes it (most names need nothing)."""
    if _SAFE_NAME.fullmatch(name):
        return name
    return urllib.parse.quote(name, safe=HREF_SAFE)


class Member:
    """One resource to answer for, from its node; with `resource`, WsgiDAV renders it."""

    __slots__ = ("collection", "content_type", "href", "name", "node", "quota", "resource")

    def __init__(
        self,
        href: str,
        node: Any = None,
        *,
        collection: bool = False,
        name: str = "",
        content_type: str = "",
        quota: tuple[int | None, int | None] = (None, None),
        resource: Any = None,
    ) -> None:
        self.href = href
        self.node = node
        self.collection = collection
        self.name = name
        self.content_type = content_type
        self.quota = quota
        self.resource = resource


def live_properties(member: Member) -> dict[str, str | None]:
    """A file's or folder's live properties as WsgiDAV's getters give them, rendered (a named PROPFIND's)."""
    node = member.node
    collection = member.collection
    props: dict[str, str | None] = {}
    props["{DAV:}resourcetype"] = (
        "<D:resourcetype><D:collection/></D:resourcetype>" if collection else "<D:resourcetype/>"
    )
    created = seconds(node.create_time)
    if created is not None:
        props["{DAV:}creationdate"] = f"<D:creationdate>{rfc3339(created)}</D:creationdate>"
    if not collection:
        props["{DAV:}getcontentlength"] = f"<D:getcontentlength>{int(node.size)}</D:getcontentlength>"
        props["{DAV:}getcontenttype"] = f"<D:getcontenttype>{escape(member.content_type)}</D:getcontenttype>"
    # Asked by name, a quota getter's None is an empty 200 element (WsgiDAV's answer); allprop leaves it out.
    used, available = member.quota
    props["{DAV:}quota-used-bytes"] = _element("{DAV:}quota-used-bytes", None if used is None else str(used))
    props["{DAV:}quota-available-bytes"] = _element(
        "{DAV:}quota-available-bytes", None if available is None else str(available)
    )
    modified = seconds(node.modify_time)
    if modified is not None:
        props["{DAV:}getlastmodified"] = f"<D:getlastmodified>{rfc1123(modified)}</D:getlastmodified>"
    props["{DAV:}displayname"] = f"<D:displayname>{escape(member.name)}</D:displayname>"
    if not collection:
        props["{DAV:}getetag"] = f"<D:getetag>{escape(f'{node.id}-{node.sha256[:24]}')}</D:getetag>"
    props["{DAV:}lockdiscovery"] = "<D:lockdiscovery/>"
    props["{DAV:}supportedlock"] = SUPPORTED_LOCK
    return props


_TAIL = f"<D:lockdiscovery/>{SUPPORTED_LOCK}</D:prop><D:status>{OK}</D:status></D:propstat></D:response>"


def render_allprop(member: Member) -> str:
    """allprop (the usual request) in one piece: live_properties' values in WsgiDAV's order, quota where it has one."""
    node = member.node
    ts = node.create_time
    when = f"<D:creationdate>{rfc3339(ts.seconds)}</D:creationdate>" if ts.seconds or ts.nanos else ""
    ts = node.modify_time
    changed = f"<D:getlastmodified>{rfc1123(ts.seconds)}</D:getlastmodified>" if ts.seconds or ts.nanos else ""
    name = member.name
    if "&" in name or "<" in name or ">" in name:
        name = escape(name)
    if member.collection:
        used, available = member.quota
        quota = "" if used is None else f"<D:quota-used-bytes>{used}</D:quota-used-bytes>"
        if available is not None:
            quota += f"<D:quota-available-bytes>{available}</D:quota-available-bytes>"
        return (
            f"<D:response><D:href>{member.href}</D:href><D:propstat><D:prop>"
            f"<D:resourcetype><D:collection/></D:resourcetype>{when}{quota}{changed}"
            f"<D:displayname>{name}</D:displayname>{_TAIL}"
        )
    return (
        f"<D:response><D:href>{member.href}</D:href><D:propstat><D:prop>"
        f"<D:resourcetype/>{when}<D:getcontentlength>{node.size}</D:getcontentlength>"
        f"<D:getcontenttype>{escape(member.content_type)}</D:getcontenttype>{changed}"
        f"<D:displayname>{name}</D:displayname><D:getetag>{escape(node.id)}-{node.sha256[:24]}</D:getetag>{_TAIL}"
    )


def render(member: Member, mode: str, names: list[str]) -> str:
    """One <D:response>, as WsgiDAV's add_property_response groups it (one propstat per status, first seen first)."""
    if mode == "allprop":
        return render_allprop(member)
    live = live_properties(member)
    found: list[str] = []
    missing: list[str] = []
    first_missing = False
    for name in names:
        value = live.get(name)
        if value is None:
            if not found and not missing:
                first_missing = True
            missing.append(_element(name, None))
        else:
            found.append(value)
    stats = []
    if found:
        stats.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop><D:status>{OK}</D:status></D:propstat>")
    if missing:
        stat = f"<D:propstat><D:prop>{''.join(missing)}</D:prop><D:status>{NOT_FOUND}</D:status></D:propstat>"
        stats.insert(0 if first_missing else len(stats), stat)
    return f"<D:response><D:href>{member.href}</D:href>{''.join(stats)}</D:response>"


def render_generic(resource: Any, mode: str, names: list[str]) -> str:
    """WsgiDAV's own answer for one resource (its getters, its XML), as a fragment to splice in."""
    multistatus = xml_tools.make_multistatus_el()
    props = resource.get_properties(mode, name_list=names if mode == "named" else None)
    util.add_property_response(multistatus, resource.get_href(), props)
    return "".join(ElementTree.tostring(el, encoding="unicode") for el in multistatus)


def request_mode(environ: dict[str, Any]) -> tuple[str, list[str]] | None:
    """allprop or named (with the names) as WsgiDAV reads the body; None for a request rendered its way (propname).

    The body is read once and put back, so the generic handler can read it again."""
    raw_length = environ.get("CONTENT_LENGTH", "").strip()
    if raw_length and not raw_length.isdigit():
        return None  # WsgiDAV words the 400
    body = environ["wsgi.input"].read(int(raw_length)) if raw_length and int(raw_length) > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        request = util.parse_xml_body(environ, allow_empty=True)
    finally:
        environ["wsgi.input"] = io.BytesIO(body)
    if request is None:
        return "allprop", []
    if request.tag != "{DAV:}propfind":
        return None
    mode = ""
    names: list[str] = []
    for child in request:
        if child.tag == "{DAV:}allprop" and not mode:
            mode = "allprop"
        elif child.tag == "{DAV:}prop" and mode in ("", "named"):
            mode = "named"
            names.extend(str(p.tag) for p in child)
        elif child.tag in ("{DAV:}allprop", "{DAV:}prop", "{DAV:}name"):
            return None  # propname, or a mix WsgiDAV refuses with 400
    return (mode, names) if mode else None


def respond(start_response: Callable[..., Any], members: Iterator[Member], mode: str, names: list[str]) -> list[bytes]:
    parts = ["<?xml version='1.0' encoding='UTF-8'?>\n<D:multistatus xmlns:D=\"DAV:\">"]
    for member in members:
        if member.resource is not None:
            parts.append(render_generic(member.resource, mode, names))
        else:
            parts.append(render(member, mode, names))
    parts.append("</D:multistatus>")
    body = "".join(parts).encode("utf-8")
    start_response(
        "207 Multi-Status",
        [
            ("Content-Type", "application/xml; charset=utf-8"),
            ("Date", util.get_rfc1123_time()),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def href(mount: str, path: str, collection: bool) -> str:
    if collection and not path.endswith("/"):
        path += "/"
    return urllib.parse.quote(mount + path, safe=HREF_SAFE)


__all__ = ["CONDITIONAL", "Member", "href", "live_properties", "quote_name", "request_mode", "respond"]
