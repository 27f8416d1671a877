"""The three calls for a small file through the gateway (issue 15 item 3), REST and grpc-web: create leaves nothing
on disk, the PUT (or WriteUploadChunk) carrying the whole file completes the upload, finish answers it; a small file
sent in two pieces takes the resumable path. The crash side: tests/e2e/test_small_files_crash.py."""

from __future__ import annotations

import hashlib
import os

from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import GrpcWeb
from tests.support.mesh import Running
from tests.support.storage_client import Client

SVC = "flowdock.storage.v1.StorageService"


def _staged(store: Running, upload_id: str) -> bool:
    return (store.data_dir / "storage" / "staging" / upload_id).exists()


def test_rest_create_put_finish_of_a_small_file(store: Running) -> None:
    c = Client(store)
    data = os.urandom(1024)
    before = c.quota()
    up = c.ok(
        "POST",
        "/api/v1/uploads",
        json={"parent_id": "root", "name": "small.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
    )
    uid = up["uploadId"]
    assert not _staged(store, uid) and c.quota()["reservedBytes"] == before["reservedBytes"] + len(data)
    put = c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": 0}, content=data)
    assert int(put["committedSize"]) == len(data)
    state = c.ok("GET", f"/api/v1/uploads/{uid}")
    assert state["state"] == "UPLOAD_STATE_COMPLETED" and int(state["committedSize"]) == len(data)
    q = c.quota()
    assert (q["usedBytes"], q["reservedBytes"]) == (before["usedBytes"] + len(data), before["reservedBytes"])
    done = c.finish(uid)
    assert done["state"] == "UPLOAD_STATE_COMPLETED" and done["node"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert c.content(done["node"]["id"]) == data and "small.bin" in c.children()
    assert not _staged(store, uid)


def test_grpc_web_create_write_finish_of_a_small_file(store: Running) -> None:
    c = Client(store)
    web = GrpcWeb(store.url, c.token)
    data = os.urandom(3000)
    up = web.call(f"{SVC}/CreateUpload", S.CreateUploadRequest(parent_id="root", name="web.bin", size=3000), S.Upload)
    assert not _staged(store, up.upload_id)
    wrote = web.call(
        f"{SVC}/WriteUploadChunk",
        S.WriteUploadChunkRequest(upload_id=up.upload_id, offset=0, data=data),
        S.WriteUploadChunkResponse,
    )
    assert wrote.committed_size == len(data)
    done = web.call(f"{SVC}/FinishUpload", S.FinishUploadRequest(upload_id=up.upload_id), S.Upload)
    assert done.state == S.UPLOAD_STATE_COMPLETED and done.node.sha256 == hashlib.sha256(data).hexdigest()
    assert c.content(done.node.id) == data and not _staged(store, up.upload_id)


def test_a_small_file_in_two_puts_takes_the_resumable_path(store: Running) -> None:
    c = Client(store)
    data = os.urandom(5000)
    uid = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "two.bin", "size": len(data)})["uploadId"]
    assert (
        int(c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": 0}, content=data[:2000])["committedSize"]) == 2000
    )
    state = c.ok("GET", f"/api/v1/uploads/{uid}")
    assert state["state"] == "UPLOAD_STATE_OPEN" and _staged(store, uid)
    c.ok("PUT", f"/api/v1/uploads/{uid}", params={"offset": 2000}, content=data[2000:])
    done = c.finish(uid)
    assert done["state"] == "UPLOAD_STATE_COMPLETED" and c.content(done["node"]["id"]) == data
    assert not _staged(store, uid)
