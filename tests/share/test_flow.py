"""The end-to-end flow of issue 5, through the gateway, on SQLite and PostgreSQL: A uploads a folder and shares
it with B as viewer (B lists, cannot download); A upgrades B to editor (B uploads, A's quota pays); A makes a
password link with an expiry; an anonymous client opens it, browses, and downloads a file with curl; A revokes
the link and the same URL answers 404."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess

from tests.share.support import LINKS, User, Visitor
from tests.support.mailbox import Mailbox, body
from tests.support.mesh import Running


def test_share_upgrade_link_curl_revoke(share_mesh: Running, share_mailbox: Mailbox) -> None:
    a, b = User(share_mesh, "a"), User(share_mesh, "b")
    # A uploads a folder (a relative path keeps its structure).
    report = os.urandom(300_000)
    a.folder("Project")
    top = next(n for n in a.ok("GET", "/api/v1/folders/root/children")["nodes"] if n["name"] == "Project")["id"]
    up = a.ok(
        "POST",
        "/api/v1/uploads",
        json={"parent_id": top, "relative_path": "docs/report.bin", "size": len(report)},
    )
    a.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=report)
    report_id = a.finish(up["uploadId"])["node"]["id"]
    a.upload("readme.txt", b"read me", top)
    docs = a.ok("GET", f"/api/v1/nodes/{report_id}")["parentId"]

    # Viewer: B sees it under "shared with me", lists it, cannot download.
    before = share_mailbox.count()
    share = a.share(top, b, "viewer")
    assert share["role"] == "SHARE_ROLE_VIEWER" and share["granteeEmail"] == b.email
    mail = share_mailbox.wait(b.email, "shared with you", after=before)
    assert "viewer" in body(mail)
    incoming = b.ok("GET", "/api/v1/shares/incoming")["shares"]
    assert [(s["nodeId"], s["node"]["name"]) for s in incoming] == [(top, "Project")]
    assert sorted(b.children(top)) == ["docs", "readme.txt"]
    assert b.children(docs) == ["report.bin"]
    crumbs = b.ok("GET", f"/api/v1/nodes/{report_id}/path")["nodes"]
    assert [n["name"] for n in crumbs] == ["Project", "docs", "report.bin"]  # never above the shared folder
    r = b.http.get(f"/api/v1/files/{report_id}/content")
    assert r.status_code == 403, r.text

    # Editor: B uploads into A's folder; A's quota pays, B's does not.
    a_before, b_before = a.quota()["usedBytes"], b.quota().get("usedBytes", 0)
    a.ok("PATCH", f"/api/v1/shares/{share['id']}", json={"role": "SHARE_ROLE_EDITOR"})
    added = os.urandom(50_000)
    node = b.upload("from-b.bin", added, docs)["node"]
    assert node["ownerId"] != "" and node["ownerId"] == a.ok("GET", f"/api/v1/nodes/{top}")["ownerId"]
    assert a.quota()["usedBytes"] == a_before + len(added)
    assert b.quota().get("usedBytes", 0) == b_before
    assert a.content(node["id"]) == added
    assert b.content(report_id) == report

    # A password link with an expiry; an anonymous client opens it, browses, downloads with curl.
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    link = a.link(top, "download", password="link pass 123", expire_time=expiry)
    token = link["token"]
    assert len(token) >= 22 and link["hasPassword"] and link["url"] == f"{LINKS}/{token}"
    visitor = Visitor(share_mesh)
    assert visitor.children(token).status_code == 401  # the password comes first
    assert visitor.open(token, "wrong password").status_code == 403
    assert visitor.open(token, "link pass 123").status_code == 200
    listing = visitor.children(token)
    assert listing.status_code == 200, listing.text
    assert sorted(n["name"] for n in listing.json()["nodes"]) == ["docs", "readme.txt"]
    inner = visitor.children(token, docs).json()
    assert sorted(n["name"] for n in inner["nodes"]) == ["from-b.bin", "report.bin"]
    assert [n["name"] for n in inner["path"]] == ["Project", "docs"]
    url = f"{share_mesh.url}{LINKS}/{token}/files/{report_id}/content?session={visitor.session}"
    got = subprocess.run(["curl", "-sS", "-f", "-D", "-", url], capture_output=True, check=True)
    head, _, data = got.stdout.partition(b"\r\n\r\n")
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(report).hexdigest()
    assert b"report.bin" in head.lower()  # Content-Disposition

    # A revokes the link: the same URL is a 404, as is opening it again.
    a.ok("DELETE", f"/api/v1/links/{link['id']}")
    gone = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True)
    assert gone.stdout == b"404"
    assert visitor.open(token, "link pass 123").status_code == 404
    assert visitor.children(token).status_code == 404

    # All of it is in A's activity log (with the visitor's IP for the download).
    download = a.wait_activity("link.downloaded", link_id=link["id"])
    assert download["ip"]
    for kind in ("share.created", "share.changed", "link.created", "link.opened", "link.revoked"):
        a.wait_activity(kind)
