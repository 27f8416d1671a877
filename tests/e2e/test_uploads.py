"""The upload protocol under abuse: wrong, duplicated and out-of-order offsets, oversized bodies, two writers, a
client killed mid-stream (resumed byte-exact from the committed offset), and another user's ids on gRPC and
grpc-web."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowdock.storage.v1 import storage_pb2 as S
from tests.e2e.protocols import GrpcWeb, GrpcWebError, Native, native_channel
from tests.support.mesh import Running
from tests.support.storage_client import Client

MiB = 1024 * 1024


def committed_in(exc: grpc.RpcError) -> int:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "UPLOAD_OFFSET_MISMATCH"
    return int(info.metadata["committed_size"])


def test_wrong_duplicated_and_out_of_order_offsets_change_nothing(store: Running) -> None:
    c = Client(store)
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    data = os.urandom(300_000)
    up = native.storage.CreateUpload(
        S.CreateUploadRequest(parent_id="root", name="offsets", size=len(data)), metadata=md
    )
    write = native.storage.WriteUploadChunk
    assert (
        write(
            S.WriteUploadChunkRequest(upload_id=up.upload_id, offset=0, data=data[:100_000]), metadata=md
        ).committed_size
        == 100_000
    )
    for offset in (0, 50_000, 200_000):  # duplicated, overlapping, ahead
        with pytest.raises(grpc.RpcError) as exc:
            write(S.WriteUploadChunkRequest(upload_id=up.upload_id, offset=offset, data=b"x" * 1000), metadata=md)
        assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert committed_in(exc.value) == 100_000

    def messages():  # type: ignore[no-untyped-def]
        yield S.UploadStreamRequest(upload_id=up.upload_id, offset=100_000, data=data[100_000:150_000])
        yield S.UploadStreamRequest(upload_id=up.upload_id, offset=170_000, data=data[170_000:200_000])  # a gap

    with pytest.raises(grpc.RpcError) as exc:
        list(native.storage.UploadStream(messages(), metadata=md))
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    state = native.storage.GetUpload(S.GetUploadRequest(upload_id=up.upload_id), metadata=md)
    assert state.committed_size in (100_000, 150_000)  # never beyond what was contiguous and durable
    r = c.http.put(f"/api/v1/uploads/{up.upload_id}", params={"offset": 7}, content=b"abc")
    assert r.status_code == 400
    assert r.json()["details"][0]["reason"] == "UPLOAD_OFFSET_MISMATCH"
    rest = data[state.committed_size :]
    assert write(
        S.WriteUploadChunkRequest(upload_id=up.upload_id, offset=state.committed_size, data=rest), metadata=md
    ).committed_size == len(data)
    node = native.storage.FinishUpload(S.FinishUploadRequest(upload_id=up.upload_id), metadata=md).node
    assert c.content(node.id) == data


def test_a_body_longer_than_declared_is_refused(store: Running) -> None:
    c = Client(store)
    up = c.ok("POST", "/api/v1/uploads", json={"parent_id": "root", "name": "ten", "size": 10})
    r = c.http.put(f"/api/v1/uploads/{up['uploadId']}", params={"offset": 0}, content=b"z" * 20)
    assert r.status_code == 400
    assert r.json()["details"][0]["fieldViolations"][0]["field"] == "data"
    assert c.ok("GET", f"/api/v1/uploads/{up['uploadId']}")["committedSize"] == "0"
    r = c.http.post(f"/api/v1/uploads/{up['uploadId']}/finish", json={})
    assert r.status_code == 400
    assert "0 of 10 bytes" in r.json()["message"]


def test_one_writer_at_a_time(store: Running) -> None:
    c = Client(store)
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    up = native.storage.CreateUpload(S.CreateUploadRequest(parent_id="root", name="solo", size=4 * MiB), metadata=md)
    first = native.storage.UploadStream(
        iter([S.UploadStreamRequest(upload_id=up.upload_id, offset=0, data=b"a" * MiB)]), metadata=md
    )
    assert [a.committed_size for a in first] == [MiB]
    gate = threading.Event()

    def held():  # type: ignore[no-untyped-def]
        yield S.UploadStreamRequest(upload_id=up.upload_id, offset=MiB, data=b"b" * MiB)
        gate.wait(10)  # keep the stream (and its lease) open

    holder = native.storage.UploadStream(held(), metadata=md)
    time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as exc:
        native.storage.WriteUploadChunk(
            S.WriteUploadChunkRequest(upload_id=up.upload_id, offset=MiB, data=b"c"), metadata=md
        )
    assert exc.value.code() == grpc.StatusCode.ABORTED  # try again later, not a permanent refusal
    assert "try again in" in (exc.value.details() or "")
    gate.set()
    assert [a.committed_size for a in holder][-1] == 2 * MiB


def test_the_committed_offset_comes_back_without_waiting_for_more_bytes(store: Running) -> None:
    """Flushes run in the background while the next bytes arrive; a client that sends no more until its bytes are
    acknowledged (a bounded window) still gets the acknowledgement."""
    c = Client(store)
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    data = os.urandom(10 * MiB)
    up = native.storage.CreateUpload(
        S.CreateUploadRequest(parent_id="root", name="window.bin", size=len(data)), metadata=md
    )
    acked = threading.Event()
    waited: list[bool] = []

    def window():  # type: ignore[no-untyped-def]
        for off in range(0, 8 * MiB, MiB):  # storage_sync_bytes (8 MiB): one flush is due
            yield S.UploadStreamRequest(upload_id=up.upload_id, offset=off, data=data[off : off + MiB])
        waited.append(acked.wait(20))  # nothing more until the server says those bytes are safe
        for off in range(8 * MiB, len(data), MiB):
            yield S.UploadStreamRequest(upload_id=up.upload_id, offset=off, data=data[off : off + MiB])

    acks = []
    for ack in native.storage.UploadStream(window(), metadata=md):
        acks.append(ack.committed_size)
        if ack.committed_size >= 8 * MiB:
            acked.set()
    assert waited == [True]
    assert acks[0] == 8 * MiB and acks[-1] == len(data) and acks == sorted(acks)
    assert native.storage.GetUpload(S.GetUploadRequest(upload_id=up.upload_id), metadata=md).committed_size == len(data)


CLIENT = textwrap.dedent(
    """
    import sys, grpc
    from flowdock.storage.v1 import storage_pb2 as S, storage_pb2_grpc
    target, token, upload_id, path = sys.argv[1:5]
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    stub = storage_pb2_grpc.StorageServiceStub(channel)
    def chunks():
        with open(path, "rb") as f:
            offset = 0
            while block := f.read(1 << 20):
                yield S.UploadStreamRequest(upload_id=upload_id, offset=offset, data=block)
                offset += len(block)
    for ack in stub.UploadStream(chunks(), metadata=[("authorization", "Bearer " + token)]):
        print(ack.committed_size, flush=True)
    """
)


def test_a_killed_client_resumes_byte_exact_from_the_committed_offset(store: Running, tmp_path: Path) -> None:
    c = Client(store)
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {c.token}")]
    data = os.urandom(48 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    up = native.storage.CreateUpload(
        S.CreateUploadRequest(
            parent_id="root", name="killed.bin", size=len(data), sha256=hashlib.sha256(data).hexdigest()
        ),
        metadata=md,
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, store.host_port, c.token, up.upload_id, str(source)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acked = 0
    while acked < 8 * MiB:
        line = proc.stdout.readline()
        assert line, "the client ended before the first acknowledgements"
        acked = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    committed = native.storage.GetUpload(S.GetUploadRequest(upload_id=up.upload_id), metadata=md).committed_size
    assert acked <= committed < len(data)  # every acknowledged byte survived; the rest is resumable

    def rest():  # type: ignore[no-untyped-def]
        for off in range(committed, len(data), MiB):
            yield S.UploadStreamRequest(upload_id=up.upload_id, offset=off, data=data[off : off + MiB])

    deadline = time.monotonic() + 90  # the dead stream's lease must lapse or be released first
    while True:
        try:
            acks = [a.committed_size for a in native.storage.UploadStream(rest(), metadata=md)]
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ABORTED or time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert acks[-1] == len(data)
    done = native.storage.FinishUpload(S.FinishUploadRequest(upload_id=up.upload_id), metadata=md)
    while done.state == S.UPLOAD_STATE_FINISHING:
        time.sleep(0.1)
        done = native.storage.GetUpload(S.GetUploadRequest(upload_id=up.upload_id), metadata=md)
    assert done.state == S.UPLOAD_STATE_COMPLETED
    got = hashlib.sha256()
    for m in native.storage.DownloadFile(S.DownloadFileRequest(file_id=done.node.id), metadata=md):
        got.update(m.data)
    assert got.hexdigest() == hashlib.sha256(data).hexdigest()


def test_another_users_ids_are_not_found_over_grpc_and_grpc_web(store: Running) -> None:
    owner, stranger = Client(store), Client(store)
    folder = owner.folder("Private")
    fid = owner.upload("p.txt", b"private", folder)["node"]["id"]
    up = owner.ok("POST", "/api/v1/uploads", json={"parent_id": folder, "name": "wip", "size": 3})["uploadId"]
    version = owner.ok("GET", f"/api/v1/files/{fid}/versions")["versions"][0]["id"]
    native = Native(native_channel(store.host_port))
    md = [("authorization", f"Bearer {stranger.token}")]
    st = native.storage
    calls = [
        lambda: st.GetNode(S.GetNodeRequest(node_id=fid), metadata=md),
        lambda: st.GetNodePath(S.GetNodePathRequest(node_id=fid), metadata=md),
        lambda: st.ListChildren(S.ListChildrenRequest(folder_id=folder), metadata=md),
        lambda: st.CreateFolder(S.CreateFolderRequest(parent_id=folder, name="x"), metadata=md),
        lambda: st.UpdateNode(S.UpdateNodeRequest(node_id=fid, name="y"), metadata=md),
        lambda: st.DeleteNode(S.DeleteNodeRequest(node_id=fid), metadata=md),
        lambda: st.CopyNode(S.CopyNodeRequest(node_id=fid, parent_id="root"), metadata=md),
        lambda: st.ListVersions(S.ListVersionsRequest(file_id=fid), metadata=md),
        lambda: st.RestoreVersion(S.RestoreVersionRequest(file_id=fid, version_id=version), metadata=md),
        lambda: st.CreateDownloadUrl(S.CreateDownloadUrlRequest(file_id=fid), metadata=md),
        lambda: list(st.DownloadFile(S.DownloadFileRequest(file_id=fid), metadata=md)),
        lambda: st.GetUpload(S.GetUploadRequest(upload_id=up), metadata=md),
        lambda: st.WriteUploadChunk(S.WriteUploadChunkRequest(upload_id=up, offset=0, data=b"abc"), metadata=md),
        lambda: st.FinishUpload(S.FinishUploadRequest(upload_id=up), metadata=md),
        lambda: st.AbortUpload(S.AbortUploadRequest(upload_id=up), metadata=md),
        lambda: st.CreateUpload(S.CreateUploadRequest(parent_id=folder, name="z", size=1), metadata=md),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND, (i, exc.value.details())
    web = GrpcWeb(store.url, stranger.token)
    svc = "flowdock.storage.v1.StorageService"
    for method, request, response in [
        ("GetNode", S.GetNodeRequest(node_id=fid), S.Node),
        ("ListChildren", S.ListChildrenRequest(folder_id=folder), S.ListChildrenResponse),
        (
            "WriteUploadChunk",
            S.WriteUploadChunkRequest(upload_id=up, offset=0, data=b"abc"),
            S.WriteUploadChunkResponse,
        ),
        ("DownloadFile", S.DownloadFileRequest(file_id=fid), httpbody_pb2.HttpBody),
    ]:
        with pytest.raises(GrpcWebError) as web_exc:
            web.call(f"{svc}/{method}", request, response, stream=method == "DownloadFile")
        assert web_exc.value.status == grpc.StatusCode.NOT_FOUND.value[0], method
    assert owner.content(fid) == b"private"
    assert owner.ok("GET", f"/api/v1/uploads/{up}")["committedSize"] == "0"
    assert httpx.get(f"{store.url}/api/v1/nodes/{fid}").status_code == 401
