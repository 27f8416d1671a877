"""Issue 2's acceptance path: through `flowdock up` and Envoy, with each protocol, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import uuid

import grpc
import httpx
import pytest

from flowdock.auth.v1 import auth_pb2
from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.accounts import MESH_PASSWORD as PASSWORD
from tests.support.accounts import register_and_login
from tests.support.mesh import Running


def test_native_grpc_round_trip(mesh: Running) -> None:
    native = Native(native_channel(mesh.host_port))
    email = f"n{uuid.uuid4().hex[:10]}@example.org"
    native.auth.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD, display_name="Nat"))
    login = native.auth.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    md = [("authorization", f"Bearer {login.access_token}")]
    me = native.auth.GetMe(auth_pb2.GetMeRequest(), metadata=md)
    assert me.email == email and me.display_name == "Nat"

    folder = native.storage.CreateFolder(S.CreateFolderRequest(parent_id="root", name="Photos"), metadata=md)
    data = os.urandom(5 * 1024 * 1024 + 123)
    upload = native.storage.CreateUpload(
        S.CreateUploadRequest(
            parent_id=folder.id, name="big.bin", size=len(data), sha256=hashlib.sha256(data).hexdigest()
        ),
        metadata=md,
    )
    chunk = int(upload.stream_chunk_size)  # a stream sends the stream message size (chunk_size is per request)

    def chunks():  # type: ignore[no-untyped-def]
        for off in range(0, len(data), chunk):
            yield S.UploadStreamRequest(upload_id=upload.upload_id, offset=off, data=data[off : off + chunk])

    acks = [a.committed_size for a in native.storage.UploadStream(chunks(), metadata=md)]
    assert acks and acks[-1] == len(data) and acks == sorted(acks)
    done = native.storage.FinishUpload(S.FinishUploadRequest(upload_id=upload.upload_id), metadata=md)
    assert done.state == S.UPLOAD_STATE_COMPLETED
    node = done.node
    assert node.size == len(data) and node.sha256 == hashlib.sha256(data).hexdigest()
    got = b"".join(m.data for m in native.storage.DownloadFile(S.DownloadFileRequest(file_id=node.id), metadata=md))
    assert got == data
    part = b"".join(
        m.data
        for m in native.storage.DownloadFile(S.DownloadFileRequest(file_id=node.id, offset=100, length=50), metadata=md)
    )
    assert part == data[100:150]
    listing = native.storage.ListChildren(S.ListChildrenRequest(folder_id=folder.id), metadata=md)
    assert [n.name for n in listing.nodes] == ["big.bin"]


def test_grpc_web_round_trip(mesh: Running) -> None:
    token = register_and_login(mesh)
    web = GrpcWeb(mesh.url, token)
    svc = "flowdock.storage.v1.StorageService"
    folder = web.call(f"{svc}/CreateFolder", S.CreateFolderRequest(parent_id="root", name="Web"), S.Node)
    data = os.urandom(300_000)
    upload = web.call(
        f"{svc}/CreateUpload",
        S.CreateUploadRequest(parent_id=folder.id, name="w.bin", size=len(data)),
        S.Upload,
    )
    step = 128 * 1024
    for off in range(0, len(data), step):
        ack = web.call(
            f"{svc}/WriteUploadChunk",
            S.WriteUploadChunkRequest(upload_id=upload.upload_id, offset=off, data=data[off : off + step]),
            S.WriteUploadChunkResponse,
        )
        assert ack.committed_size == min(off + step, len(data))
    node = web.call(f"{svc}/FinishUpload", S.FinishUploadRequest(upload_id=upload.upload_id), S.Upload).node
    from google.api import httpbody_pb2

    parts = web.call(f"{svc}/DownloadFile", S.DownloadFileRequest(file_id=node.id), httpbody_pb2.HttpBody, stream=True)
    assert b"".join(p.data for p in parts) == data


def test_rest_round_trip(mesh: Running) -> None:
    token = register_and_login(mesh)
    h = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=mesh.url, headers=h, timeout=60) as c:
        folder = c.post("/api/v1/folders", json={"parent_id": "root", "name": "Réports"}).json()
        assert folder["name"] == "Réports" and folder["kind"] == "NODE_KIND_FOLDER"
        data = os.urandom(3 * 1024 * 1024 + 7)
        up = c.post(
            "/api/v1/uploads",
            json={
                "parentId": folder["id"],
                "name": "data ü.bin",
                "size": str(len(data)),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        assert up.status_code == 200, up.text
        upload_id = up.json()["uploadId"]
        half = len(data) // 2
        r = c.put(f"/api/v1/uploads/{upload_id}", params={"offset": 0}, content=data[:half])
        assert r.status_code == 200, r.text
        assert int(r.json()["committedSize"]) == half
        status = c.get(f"/api/v1/uploads/{upload_id}").json()
        assert int(status["committedSize"]) == half and status["state"] == "UPLOAD_STATE_OPEN"
        r = c.put(f"/api/v1/uploads/{upload_id}", params={"offset": half}, content=data[half:])
        assert int(r.json()["committedSize"]) == len(data)
        node = c.post(f"/api/v1/uploads/{upload_id}/finish", json={}).json()["node"]
        got = c.get(f"/api/v1/files/{node['id']}/content")
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["content-type"] == "application/octet-stream"
        assert "filename*=UTF-8''data%20%C3%BC.bin" in got.headers["content-disposition"]
        children = c.get(f"/api/v1/folders/{folder['id']}/children").json()
        assert [n["name"] for n in children["nodes"]] == ["data ü.bin"]
        root = c.get("/api/v1/folders/root/children").json()
        assert "Réports" in [n["name"] for n in root["nodes"]]


def test_another_users_ids_look_missing(mesh: Running) -> None:
    owner = register_and_login(mesh)
    other = register_and_login(mesh)
    r = httpx.post(
        f"{mesh.url}/api/v1/folders",
        json={"parent_id": "root", "name": "Private"},
        headers={"authorization": f"Bearer {owner}"},
    )
    folder_id = r.json()["id"]
    seen = httpx.get(f"{mesh.url}/api/v1/nodes/{folder_id}", headers={"authorization": f"Bearer {other}"})
    missing = httpx.get(f"{mesh.url}/api/v1/nodes/{uuid.uuid4()}", headers={"authorization": f"Bearer {other}"})
    assert seen.status_code == missing.status_code == 404
    assert seen.json()["code"] == missing.json()["code"] == 5
    native = Native(native_channel(mesh.host_port))
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.GetNode(S.GetNodeRequest(node_id=folder_id), metadata=[("authorization", f"Bearer {other}")])
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(GrpcWebError) as web_exc:
        GrpcWeb(mesh.url, other).call(
            "flowdock.storage.v1.StorageService/GetNode", S.GetNodeRequest(node_id=folder_id), S.Node
        )
    assert web_exc.value.status == grpc.StatusCode.NOT_FOUND.value[0]
