"""A WebDAV user of the gateway's /dav/ (httpx), and the few XML readings the suites make of PROPFIND answers."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.mesh import Running
from tests.support.storage_client import Client

NS = {"D": "DAV:"}


@dataclass
class Entry:
    href: str
    props: dict[str, str]
    collection: bool


class Dav:
    """A REST user (for setting things up and checking them) who also speaks WebDAV with its access token."""

    def __init__(self, mesh: Running) -> None:
        self.rest = Client(mesh)
        self.token = self.rest.token
        self.http = httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {self.token}"}, timeout=120)

    @property
    def email(self) -> str:
        return str(self.rest.ok("GET", "/api/v1/me")["email"])

    def app_password(self, name: str = "WebDAV") -> tuple[str, str]:
        """(id, secret) of a new app password of this user (what WebDAV clients sign in with)."""
        made = self.rest.ok("POST", "/api/v1/me/app-passwords", json={"name": name})
        return str(made["appPassword"]["id"]), str(made["secret"])

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, "/dav/" + urllib.parse.quote(path.lstrip("/")), **kw)

    def put(self, path: str, data: bytes, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, content=data, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def propfind(self, path: str, depth: str = "1", body: bytes | None = None) -> httpx.Response:
        return self.request("PROPFIND", path, headers={"Depth": depth}, content=body or b"")

    def listing(self, path: str, depth: str = "1") -> dict[str, Entry]:
        r = self.propfind(path, depth)
        assert r.status_code == 207, r.text
        return parse_multistatus(r.content)

    def destination(self, path: str) -> str:
        return f"{self.http.base_url}".rstrip("/") + "/dav/" + urllib.parse.quote(path.lstrip("/"))


def parse_multistatus(body: bytes) -> dict[str, Entry]:
    """href (unquoted) -> the properties found (200 propstat only) as text, and whether it is a collection."""
    root = ET.fromstring(body)  # noqa: S314
    out: dict[str, Entry] = {}
    for resp in root.findall("D:response", NS):
        href = urllib.parse.unquote(resp.findtext("D:href", default="", namespaces=NS))
        props: dict[str, str] = {}
        collection = False
        for stat in resp.findall("D:propstat", NS):
            if " 200 " not in (stat.findtext("D:status", default="", namespaces=NS) + " "):
                continue
            for prop in stat.find("D:prop", NS) or []:
                name = prop.tag.split("}", 1)[-1]
                props[name] = (prop.text or "").strip()
                if name == "resourcetype" and prop.find("D:collection", NS) is not None:
                    collection = True
        out[href] = Entry(href, props, collection)
    return out
