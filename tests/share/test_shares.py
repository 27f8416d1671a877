"""User shares through the gateway: roles on every protocol, bad input, revocation at once, moves, deletes."""

from __future__ import annotations

import os
import uuid
from typing import Any

import grpc
import pytest

from flowdock.share.v1 import share_pb2, share_pb2_grpc
from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.share.support import User
from tests.support.mesh import Running

SVC = "flowdock.storage.v1.StorageService"


def shared_tree(mesh: Running) -> tuple[User, str, str, str]:
    """A with Shared/{inner/, f.txt}; returns (A, shared folder, inner folder, file)."""
    a = User(mesh, "a")
    top = a.folder("Shared")
    inner = a.folder("inner", top)
    f = a.upload("f.txt", b"file content", top)["node"]["id"]
    return a, top, inner, f


def native_code(fn: Any, *args: Any) -> grpc.StatusCode:
    try:
        result = fn(*args)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def web_code(web: GrpcWeb, method: str, request: Any, response: Any, *, stream: bool = False) -> int:
    try:
        web.call(f"{SVC}/{method}", request, response, stream=stream)
    except GrpcWebError as exc:
        return exc.status
    return 0


@pytest.mark.parametrize("role", ["viewer", "downloader", "editor"])
def test_each_role_on_rest_native_and_grpc_web(share_mesh: Running, role: str) -> None:
    a, top, inner, f = shared_tree(share_mesh)
    b = User(share_mesh, "b")
    a.share(top, b, role)
    can_download = role in ("downloader", "editor")
    can_write = role == "editor"
    ok_or = {True: 200, False: 403}

    # REST
    assert b.http.get(f"/api/v1/folders/{top}/children").status_code == 200
    assert b.http.get(f"/api/v1/nodes/{f}").status_code == 200
    assert b.http.get(f"/api/v1/files/{f}/content").status_code == ok_or[can_download]
    assert b.http.post(f"/api/v1/files/{f}/download-url", json={}).status_code == ok_or[can_download]
    r = b.http.post("/api/v1/folders", json={"parent_id": inner, "name": f"rest-{role}"})
    assert r.status_code == ok_or[can_write], r.text
    r = b.http.post("/api/v1/uploads", json={"parent_id": top, "name": f"rest-{role}.txt", "size": 3})
    assert r.status_code == ok_or[can_write], r.text
    assert b.http.patch(f"/api/v1/nodes/{f}", json={"name": f"renamed-{role}.txt"}).status_code == ok_or[can_write]
    # Nobody but the owner renames, moves or deletes the shared folder itself.
    assert b.http.patch(f"/api/v1/nodes/{top}", json={"name": "mine now"}).status_code == 403
    assert b.http.delete(f"/api/v1/nodes/{top}").status_code == 403
    # No role re-shares.
    c = User(share_mesh, "c")
    r = b.http.post("/api/v1/shares", json={"node_id": top, "grantee_email": c.email, "role": "SHARE_ROLE_VIEWER"})
    assert r.status_code == 403, r.text
    assert b.http.post("/api/v1/links", json={"node_id": f, "permission": "LINK_PERMISSION_VIEW"}).status_code == 403

    # native gRPC
    native = Native(native_channel(share_mesh.host_port))
    md = [("authorization", f"Bearer {b.token}")]
    st = native.storage
    assert native_code(lambda: st.ListChildren(S.ListChildrenRequest(folder_id=top), metadata=md)).name == "OK"
    want_dl = grpc.StatusCode.OK if can_download else grpc.StatusCode.PERMISSION_DENIED
    assert native_code(lambda: st.DownloadFile(S.DownloadFileRequest(file_id=f), metadata=md)) == want_dl
    want_w = grpc.StatusCode.OK if can_write else grpc.StatusCode.PERMISSION_DENIED
    req = S.CreateFolderRequest(parent_id=inner, name=f"native-{role}")
    assert native_code(lambda: st.CreateFolder(req, metadata=md)) == want_w
    shares = share_pb2_grpc.ShareServiceStub(native.channel)
    req_s = share_pb2.CreateShareRequest(node_id=top, grantee_email=c.email, role=share_pb2.SHARE_ROLE_VIEWER)
    assert native_code(lambda: shares.CreateShare(req_s, metadata=md)) == grpc.StatusCode.PERMISSION_DENIED

    # grpc-web
    web = GrpcWeb(share_mesh.url, b.token)
    assert web_code(web, "ListChildren", S.ListChildrenRequest(folder_id=top), S.ListChildrenResponse) == 0
    from google.api import httpbody_pb2

    dl = web_code(web, "DownloadFile", S.DownloadFileRequest(file_id=f), httpbody_pb2.HttpBody, stream=True)
    assert dl == (0 if can_download else grpc.StatusCode.PERMISSION_DENIED.value[0])
    w = web_code(web, "CreateFolder", S.CreateFolderRequest(parent_id=inner, name=f"web-{role}"), S.Node)
    assert w == (0 if can_write else grpc.StatusCode.PERMISSION_DENIED.value[0])
    # What was never shared stays invisible (404, not 403) on every protocol.
    private = a.folder(f"private-{role}")
    assert b.http.get(f"/api/v1/folders/{private}/children").status_code == 404
    assert native_code(lambda: st.GetNode(S.GetNodeRequest(node_id=private), metadata=md)) == grpc.StatusCode.NOT_FOUND
    assert web_code(web, "GetNode", S.GetNodeRequest(node_id=private), S.Node) == grpc.StatusCode.NOT_FOUND.value[0]


def test_editor_writes_within_the_shared_tree_into_the_owners_trash_and_quota(share_mesh: Running) -> None:
    a, top, inner, f = shared_tree(share_mesh)
    b = User(share_mesh, "b")
    a.share(top, b, "editor")
    used = a.quota()["usedBytes"]
    data = os.urandom(200_000)
    # Chunked upload through the usual chunk API, by the editor.
    up = b.ok("POST", "/api/v1/uploads", json={"parent_id": inner, "name": "big.bin", "size": len(data)})
    b.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=data[:100_000])
    assert a.quota()["reservedBytes"] >= len(data)  # reserved on the owner
    assert a.http.get(f"/api/v1/uploads/{up['uploadId']}").status_code == 404  # the creator's upload
    b.ok("PUT", f"/api/v1/uploads/{up['uploadId']}", params={"offset": 100_000}, content=data[100_000:])
    big = b.finish(up["uploadId"])["node"]["id"]
    assert a.quota()["usedBytes"] == used + len(data)
    # Move within the tree: fine. Out of it (into B's own folder or A's private one): refused.
    b.ok("PATCH", f"/api/v1/nodes/{big}", json={"parent_id": top})
    mine = b.folder("mine")
    assert b.http.patch(f"/api/v1/nodes/{big}", json={"parent_id": mine}).status_code in (400, 403, 404)
    private = a.folder("private")
    assert b.http.patch(f"/api/v1/nodes/{big}", json={"parent_id": private}).status_code == 404
    # Delete goes to the owner's trash.
    b.ok("DELETE", f"/api/v1/nodes/{f}")
    assert f in [e["node"]["id"] for e in a.ok("GET", "/api/v1/trash")["entries"]]
    assert b.ok("GET", "/api/v1/trash").get("entries", []) == []


def test_share_bad_input(share_mesh: Running) -> None:
    a, top, _, _ = shared_tree(share_mesh)
    b = User(share_mesh, "b")

    def post(user: User, **body: Any) -> Any:
        return user.http.post("/api/v1/shares", json=body)

    r = post(a, node_id=top, grantee_email=a.email, role="SHARE_ROLE_VIEWER")
    assert r.status_code == 400 and "yourself" in r.json()["message"]
    r = post(a, node_id=top, grantee_email=f"nobody-{uuid.uuid4().hex[:8]}@example.org", role="SHARE_ROLE_VIEWER")
    assert r.status_code == 400 and "no FlowDock account" in r.json()["message"]
    assert r.json()["details"][0]["fieldViolations"][0]["field"] == "grantee_email"
    assert post(a, node_id=top, grantee_email="not an email", role="SHARE_ROLE_VIEWER").status_code == 400
    assert post(a, node_id=top, grantee_email=b.email).status_code == 400  # no role
    assert post(a, node_id="root", grantee_email=b.email, role="SHARE_ROLE_VIEWER").status_code == 400
    assert post(a, node_id=str(uuid.uuid4()), grantee_email=b.email, role="SHARE_ROLE_VIEWER").status_code == 404
    assert post(b, node_id=top, grantee_email=a.email, role="SHARE_ROLE_VIEWER").status_code == 404  # not B's
    share = a.share(top, b, "viewer")
    assert post(a, node_id=top, grantee_email=b.email.upper(), role="SHARE_ROLE_EDITOR").status_code == 409
    # Another user's share id answers like an unknown one.
    c = User(share_mesh, "c")
    for user, sid in ((c, share["id"]), (b, share["id"]), (a, str(uuid.uuid4()))):
        assert user.http.patch(f"/api/v1/shares/{sid}", json={"role": "SHARE_ROLE_EDITOR"}).status_code == 404
        assert user.http.delete(f"/api/v1/shares/{sid}").status_code == 404
    assert a.http.patch(f"/api/v1/shares/{share['id']}", json={}).status_code == 400
    assert [s["id"] for s in a.ok("GET", "/api/v1/shares/outgoing")["shares"]] == [share["id"]]
    assert c.ok("GET", "/api/v1/shares/outgoing").get("shares", []) == []


def test_revocation_takes_effect_at_once_for_an_open_listing(share_mesh: Running) -> None:
    a, top, inner, f = shared_tree(share_mesh)
    b = User(share_mesh, "b")
    share = a.share(top, b, "editor")
    listing = b.ok("GET", f"/api/v1/folders/{top}/children")["nodes"]  # B keeps these ids on screen
    up = b.ok("POST", "/api/v1/uploads", json={"parent_id": top, "name": "late.bin", "size": 4})
    assert {n["id"] for n in listing} == {inner, f}
    a.ok("DELETE", f"/api/v1/shares/{share['id']}")
    assert b.http.get(f"/api/v1/folders/{top}/children").status_code == 404
    assert b.http.get(f"/api/v1/folders/{inner}/children").status_code == 404
    assert b.http.get(f"/api/v1/files/{f}/content").status_code == 404
    assert b.http.patch(f"/api/v1/nodes/{f}", json={"name": "x.txt"}).status_code == 404
    assert b.http.put(f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"late").status_code == 404
    assert b.ok("GET", "/api/v1/shares/incoming").get("shares", []) == []
    a.wait_activity("share.revoked", share_id=share["id"])


def test_moving_out_of_the_shared_folder_removes_access(share_mesh: Running) -> None:
    a, top, inner, f = shared_tree(share_mesh)
    b = User(share_mesh, "b")
    a.share(top, b, "downloader")
    assert b.content(f) == b"file content"
    elsewhere = a.folder("elsewhere")
    a.ok("PATCH", f"/api/v1/nodes/{f}", json={"parent_id": elsewhere})
    assert b.http.get(f"/api/v1/files/{f}/content").status_code == 404
    assert b.http.get(f"/api/v1/nodes/{f}").status_code == 404
    a.ok("PATCH", f"/api/v1/nodes/{f}", json={"parent_id": inner})  # back in: visible again
    assert b.content(f) == b"file content"


def test_deleting_a_shared_node_removes_its_shares_and_links(share_mesh: Running) -> None:
    a, top, inner, _ = shared_tree(share_mesh)
    b = User(share_mesh, "b")
    a.share(top, b, "viewer")
    a.share(inner, b, "downloader")
    link = a.link(inner, "view")
    a.ok("DELETE", f"/api/v1/nodes/{top}")
    assert a.ok("GET", "/api/v1/shares/outgoing").get("shares", []) == []
    assert b.ok("GET", "/api/v1/shares/incoming").get("shares", []) == []
    assert a.ok("GET", "/api/v1/links").get("links", []) == []
    assert b.mesh and b.http.get(f"/api/v1/public/links/{link['token']}/children").status_code == 404
    # Restored from the trash, the tree comes back without the old grants.
    a.ok("POST", f"/api/v1/trash/{top}/restore", json={})
    assert b.http.get(f"/api/v1/folders/{top}/children").status_code == 404
    a.wait_activity("share.dropped", node_id=top)


def test_deleting_an_account_drops_its_shares_and_links_admins_only(share_mesh: Running) -> None:
    """AccessService.DeleteUserShares is internal (auth_svc's admin "delete user" calls it with the admin's token):
    the test calls share_svc directly, as auth_svc would."""
    from tests.support.accounts import Account, make_admin

    a, top, inner, _ = shared_tree(share_mesh)
    b, c = User(share_mesh, "b"), User(share_mesh, "c")
    a.share(top, b, "viewer")
    c_folder = c.folder("c's")
    c.share(c_folder, a, "viewer")
    a.link(inner, "view")
    admin = make_admin(share_mesh)
    assert isinstance(admin, Account)
    stub = share_pb2_grpc.AccessServiceStub(share_mesh.channel("share", "auth_svc"))
    request = share_pb2.DeleteUserSharesRequest(user_id=a.ok("GET", "/api/v1/me")["id"])
    with pytest.raises(grpc.RpcError) as refused:
        stub.DeleteUserShares(request, metadata=(("authorization", f"Bearer {a.token}"),))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    reply = stub.DeleteUserShares(request, metadata=(("authorization", f"Bearer {admin.access_token}"),))
    assert reply.dropped == 3  # A's share to B, C's share to A, A's link
    assert a.ok("GET", "/api/v1/shares/outgoing").get("shares", []) == []
    assert a.ok("GET", "/api/v1/links").get("links", []) == []
    assert c.ok("GET", "/api/v1/shares/outgoing").get("shares", []) == []
    assert b.http.get(f"/api/v1/folders/{top}/children").status_code == 404
