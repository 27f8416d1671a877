"""Admin actions that reach storage_svc through its internal StorageAdminService: setting a user's quota (then
enforced on uploads) and deleting a user with their files (nothing left behind in storage_svc)."""

from __future__ import annotations

import base64
import os
import time

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from tests.support.accounts import make_admin, rest, user
from tests.support.mailbox import Mailbox
from tests.support.mesh import Running


def upload(mesh: Running, token: str, data: bytes, name: str = "f.bin") -> int:
    with rest(mesh, token) as c:
        r = c.post("/api/v1/uploads", json={"parent_id": "root", "name": name, "size": str(len(data))})
        if r.status_code != 200:
            return r.status_code
        upload_id = r.json()["uploadId"]
        assert c.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data).status_code == 200
        return c.post(f"/api/v1/uploads/{upload_id}/finish", json={}).status_code


def test_admin_sets_a_quota_that_storage_enforces(auth_mesh: Running, mailbox: Mailbox) -> None:
    admin = make_admin(auth_mesh)
    member = user(auth_mesh, mailbox)
    with rest(auth_mesh, member.access_token) as c:
        member_id = c.get("/api/v1/me").json()["id"]
        assert c.post(f"/api/v1/admin/users/{member_id}/quota", json={"limit_bytes": "10"}).status_code == 403
    with rest(auth_mesh, admin.access_token) as c:
        r = c.post(f"/api/v1/admin/users/{member_id}/quota", json={"limit_bytes": "5000"})
        assert r.status_code == 200, r.text
        assert r.json()["limitBytes"] == "5000"
        assert c.post(f"/api/v1/admin/users/{member_id}/quota", json={"limit_bytes": "-1"}).status_code == 400
        missing = "00000000-0000-0000-0000-000000000000"
        assert c.post(f"/api/v1/admin/users/{missing}/quota", json={"limit_bytes": "1"}).status_code == 404
    with rest(auth_mesh, member.access_token) as c:
        assert c.get("/api/v1/quota").json()["limitBytes"] == "5000"
    assert upload(auth_mesh, member.access_token, os.urandom(3000), "a.bin") == 200
    assert (
        upload(auth_mesh, member.access_token, os.urandom(3000), "b.bin") == 403
    )  # over the admin's limit (not 429: waiting will not help)
    with rest(auth_mesh, admin.access_token) as c:
        q = c.get(f"/api/v1/admin/users/{member_id}/quota").json()
    assert q["usedBytes"] == "3000" and q["limitBytes"] == "5000"


def test_admin_deletes_a_user_and_their_files(auth_mesh: Running, mailbox: Mailbox) -> None:
    admin = make_admin(auth_mesh)
    doomed = user(auth_mesh, mailbox)
    friend = user(auth_mesh, mailbox)
    with rest(auth_mesh, doomed.access_token) as c:
        doomed_id = c.get("/api/v1/me").json()["id"]
        folder = c.post("/api/v1/folders", json={"parent_id": "root", "name": "Mine"}).json()
        assert folder["id"]
        shared = c.post(
            "/api/v1/shares", json={"node_id": folder["id"], "grantee_email": friend.email, "role": "SHARE_ROLE_VIEWER"}
        )
        assert shared.status_code == 200, shared.text
        link = c.post("/api/v1/links", json={"node_id": folder["id"], "permission": "LINK_PERMISSION_VIEW"})
        assert link.status_code == 200, link.text
        token = link.json()["token"]
    with rest(auth_mesh, friend.access_token) as c:
        assert len(c.get("/api/v1/shares/incoming").json()["shares"]) == 1
    assert upload(auth_mesh, doomed.access_token, os.urandom(4096)) == 200
    with rest(auth_mesh, doomed.access_token) as c:
        # A small file sent in one call (its upload row stays, COMPLETED) and an upload left half-written.
        small = c.post(
            "/api/v1/uploads",
            json={"parent_id": "root", "name": "small", "size": 5, "content": base64.b64encode(b"hello").decode()},
        )
        assert small.status_code == 200 and small.json()["state"] == "UPLOAD_STATE_COMPLETED", small.text
        unfinished = c.post("/api/v1/uploads", json={"parent_id": "root", "name": "half", "size": 10}).json()
        half = unfinished["uploadId"]
        assert c.put(f"/api/v1/uploads/{half}", params={"offset": 0}, content=b"12345").status_code == 200
    assert list(auth_mesh.data_dir.rglob(half)), "the half-written upload's staging file"
    with rest(auth_mesh, doomed.access_token) as c:
        assert c.delete(f"/api/v1/admin/users/{doomed_id}").status_code == 403
    with rest(auth_mesh, admin.access_token) as c:
        admin_id = c.get("/api/v1/me").json()["id"]
        assert c.delete(f"/api/v1/admin/users/{admin_id}").status_code == 400  # not oneself
        r = c.delete(f"/api/v1/admin/users/{doomed_id}")
        # The token's bound runs from the deletion, not from the admin calls before it (slow on a loaded machine).
        started = time.monotonic()
        assert r.status_code == 200, r.text
        assert int(r.json()["freedBytes"]) >= 4096
        assert c.get(f"/api/v1/admin/users/{doomed_id}").status_code == 404
        assert c.delete(f"/api/v1/admin/users/{doomed_id}").status_code == 404
        kinds = [e["kind"] for e in c.get("/api/v1/admin/activity", params={"subject_id": doomed_id}).json()["events"]]
        # The trail is in order of arrival: other services' events (share.dropped, and on a loaded machine the
        # upload's own storage events, sent through their outboxes) may arrive after auth's own record of it.
        assert "admin.user_deleted" in kinds, kinds
    # The account is gone everywhere: its live token dies within the bound, it cannot log in.
    with rest(auth_mesh, doomed.access_token) as c:
        while c.get("/api/v1/folders/root/children").status_code != 401:
            assert time.monotonic() - started < 5
            time.sleep(0.05)
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": doomed.email, "password": doomed.password})
        assert r.status_code == 401
    # Nothing is left in storage_svc (asked directly, as an admin).
    with auth_mesh.channel("storage", "auth_svc") as ch:
        q = storage_pb2_grpc.StorageAdminServiceStub(ch).GetUserQuota(
            storage_pb2.GetUserQuotaRequest(user_id=doomed_id),
            metadata=[("authorization", f"Bearer {admin.access_token}")],
        )
    assert q.used_bytes == 0 and q.reserved_bytes == 0
    assert not list(auth_mesh.data_dir.rglob(half))  # its staging bytes went too
    # Their shares and links went with them: nothing orphaned in share_svc.
    with rest(auth_mesh, friend.access_token) as c:
        assert c.get("/api/v1/shares/incoming").json()["shares"] == []
    with rest(auth_mesh) as c:
        assert c.post(f"/api/v1/public/links/{token}/open", json={}).status_code == 404
    # The email can be registered again, as a new account.
    from tests.support.accounts import register_verified

    again = register_verified(auth_mesh, mailbox, doomed.email)
    assert again.email == doomed.email


def test_admin_deletes_an_account_without_files(auth_mesh: Running, mailbox: Mailbox) -> None:
    admin = make_admin(auth_mesh)
    doomed = user(auth_mesh, mailbox)
    with rest(auth_mesh, doomed.access_token) as c:
        doomed_id = c.get("/api/v1/me").json()["id"]
        assert c.delete(f"/api/v1/admin/users/{doomed_id}").status_code == 403
    with rest(auth_mesh, admin.access_token) as c:
        admin_id = c.get("/api/v1/me").json()["id"]
        assert c.delete(f"/api/v1/admin/users/{admin_id}").status_code == 400  # not oneself
        r = c.delete(f"/api/v1/admin/users/{doomed_id}")
        # The token's bound runs from the deletion, not from the admin calls before it (slow on a loaded machine).
        started = time.monotonic()
        assert r.status_code == 200, r.text
        assert c.get(f"/api/v1/admin/users/{doomed_id}").status_code == 404
        assert c.delete(f"/api/v1/admin/users/{doomed_id}").status_code == 404
    with rest(auth_mesh, doomed.access_token) as c:
        while c.get("/api/v1/me").status_code != 401:
            assert time.monotonic() - started < 5
            time.sleep(0.05)
    with rest(auth_mesh) as c:
        r = c.post("/api/v1/auth/login", json={"email": doomed.email, "password": doomed.password})
        assert r.status_code == 401
