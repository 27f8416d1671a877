"""Helpers of the sharing suites: users with an email, anonymous visitors, the three protocols."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.support.accounts import register_and_login
from tests.support.mesh import Running
from tests.support.storage_client import Client

LINKS = "/api/v1/public/links"


class User(Client):
    """A logged-in REST user who knows their email."""

    def __init__(self, mesh: Running, name: str = "u") -> None:
        self.email = f"{name}{uuid.uuid4().hex[:10]}@example.org"
        self.mesh = mesh
        self.token = register_and_login(mesh, self.email)
        self.http = httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {self.token}"}, timeout=60)

    def share(self, node_id: str, grantee: User | str, role: str = "viewer") -> dict[str, Any]:
        email = grantee if isinstance(grantee, str) else grantee.email
        return dict(
            self.ok(
                "POST",
                "/api/v1/shares",
                json={"node_id": node_id, "grantee_email": email, "role": f"SHARE_ROLE_{role.upper()}"},
            )
        )

    def link(self, node_id: str, permission: str = "download", **extra: Any) -> dict[str, Any]:
        body = {"node_id": node_id, "permission": f"LINK_PERMISSION_{permission.upper()}", **extra}
        return dict(self.ok("POST", "/api/v1/links", json=body))

    def activity(self) -> list[dict[str, Any]]:
        return list(self.ok("GET", "/api/v1/me/activity", params={"page_size": 200}).get("events", []))

    def wait_activity(self, kind: str, timeout: float = 15.0, **details: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.activity():
                if e["kind"] == kind and all(e.get("details", {}).get(k) == v for k, v in details.items()):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} {details} in the activity of {self.email}: {self.activity()}")
            time.sleep(0.2)


class Visitor:
    """An anonymous client of the gateway (no token)."""

    def __init__(self, mesh: Running, local_address: str = "") -> None:
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        self.http = httpx.Client(base_url=mesh.url, timeout=60, transport=transport)
        self.session = ""

    def open(self, token: str, password: str = "") -> httpx.Response:
        r = self.http.post(f"{LINKS}/{token}/open", json={"password": password} if password else {})
        if r.status_code == 200:
            self.session = r.json()["linkSession"]
        # A script's view: the session travels as X-Link-Session (headers()), not as the cookie OpenLink also sets
        # for browsers (tested on its own in test_links.py).
        self.http.cookies.clear()
        return r

    def headers(self) -> dict[str, str]:
        return {"x-link-session": self.session} if self.session else {}

    def children(self, token: str, folder_id: str = "", **params: Any) -> httpx.Response:
        if folder_id:
            params["folder_id"] = folder_id
        return self.http.get(f"{LINKS}/{token}/children", params=params, headers=self.headers())

    def content(self, token: str, file_id: str) -> httpx.Response:
        return self.http.get(f"{LINKS}/{token}/files/{file_id}/content", headers=self.headers())
