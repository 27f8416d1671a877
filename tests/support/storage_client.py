"""A logged-in REST user of storage_svc through the gateway (folders, uploads, content, quota)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.accounts import register_and_login
from tests.support.mesh import Running


class Client:
    """A logged-in REST user."""

    def __init__(self, mesh: Running) -> None:
        self.mesh = mesh
        self.token = register_and_login(mesh)
        self.http = httpx.Client(base_url=mesh.url, headers={"authorization": f"Bearer {self.token}"}, timeout=60)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def folder(self, name: str, parent: str = "root") -> str:
        return str(self.ok("POST", "/api/v1/folders", json={"parent_id": parent, "name": name})["id"])

    def upload(self, name: str, data: bytes, parent: str = "root", **extra: Any) -> dict[str, Any]:
        up = self.ok("POST", "/api/v1/uploads", json={"parent_id": parent, "name": name, "size": len(data), **extra})
        if data:
            self.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=data)
        return self.finish(up["uploadId"])

    def finish(self, upload_id: str) -> dict[str, Any]:
        state = self.ok("POST", f"/api/v1/uploads/{upload_id}/finish", json={})
        deadline = time.monotonic() + 60
        while state["state"] == "UPLOAD_STATE_FINISHING" and time.monotonic() < deadline:
            time.sleep(0.05)
            state = self.ok("GET", f"/api/v1/uploads/{upload_id}")
        return dict(state)

    def children(self, folder: str = "root", **params: Any) -> list[str]:
        return [n["name"] for n in self.ok("GET", f"/api/v1/folders/{folder}/children", params=params)["nodes"]]

    def content(self, file_id: str, **params: Any) -> bytes:
        r = self.http.get(f"/api/v1/files/{file_id}/content", params=params)
        assert r.status_code == 200, r.text
        return r.content

    def quota(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.ok("GET", "/api/v1/quota").items()}
