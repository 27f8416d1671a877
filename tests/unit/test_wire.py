"""flowdock_kernel.wire on a real grpc.aio server: a method marked `serialised` sends its bytes exactly as given
(unary and streamed; bytes a parse-and-serialise round trip would change), other methods still serialise their
messages; handlers rebuilt with grpc's public constructors keep their kind; timestamps convert both ways exactly
(microseconds, before 1970, naive meaning UTC)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2

from flowdock.storage.v1 import storage_pb2, storage_pb2_grpc
from flowdock_kernel import wire

# Field 2 (next_page_token) before field 1 (nodes), and an unknown field 99: valid protobuf that no serialiser
# writes this way, so it arrives unchanged only if nothing parsed and re-serialised it.
ODD_LISTING = (
    storage_pb2.ListChildrenResponse(next_page_token="t").SerializeToString()
    + storage_pb2.ListChildrenResponse(nodes=[storage_pb2.Node(id="n1", name="a")]).SerializeToString()
    + b"\x9a\x06\x03xyz"
)
CHUNKS = [
    httpbody_pb2.HttpBody(content_type="text/plain").SerializeToString() + b"\x12\x03abc",
    b"\x12\x02de",
    b"",  # an empty message
]


class Servicer(storage_pb2_grpc.StorageServiceServicer):
    @wire.serialised
    async def ListChildren(self, request: storage_pb2.ListChildrenRequest, context: Any) -> bytes:
        assert request.folder_id == "f1"  # the request is still parsed by the generated deserializer
        return ODD_LISTING

    @wire.serialised
    async def DownloadFile(self, request: storage_pb2.DownloadFileRequest, context: Any) -> AsyncIterator[bytes]:
        for chunk in CHUNKS:
            yield chunk

    async def GetNode(self, request: storage_pb2.GetNodeRequest, context: Any) -> storage_pb2.Node:
        return storage_pb2.Node(id=request.node_id, name="plain")


async def test_serialised_responses_go_out_byte_identical() -> None:
    server = grpc.aio.server()
    passed = wire.add_servicer(server, storage_pb2_grpc.add_StorageServiceServicer_to_server, Servicer())
    assert passed == {"flowdock.storage.v1.StorageService": ["ListChildren", "DownloadFile"]}
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            prefix = "/flowdock.storage.v1.StorageService/"
            raw = channel.unary_unary(
                prefix + "ListChildren", request_serializer=storage_pb2.ListChildrenRequest.SerializeToString
            )
            assert await raw(storage_pb2.ListChildrenRequest(folder_id="f1")) == ODD_LISTING
            stream = channel.unary_stream(
                prefix + "DownloadFile", request_serializer=storage_pb2.DownloadFileRequest.SerializeToString
            )
            assert [m async for m in stream(storage_pb2.DownloadFileRequest(file_id="x"))] == CHUNKS
            # Through the generated stub, the bytes parse as the declared messages.
            stub = storage_pb2_grpc.StorageServiceStub(channel)
            listed = await stub.ListChildren(storage_pb2.ListChildrenRequest(folder_id="f1"))
            assert (listed.next_page_token, [n.id for n in listed.nodes]) == ("t", ["n1"])
            bodies = [b async for b in stub.DownloadFile(storage_pb2.DownloadFileRequest(file_id="x"))]
            assert [(b.content_type, b.data) for b in bodies] == [("text/plain", b"abc"), ("", b"de"), ("", b"")]
            # An unmarked method still serialises its message; an unimplemented one is still UNIMPLEMENTED.
            node = await stub.GetNode(storage_pb2.GetNodeRequest(node_id="n2"))
            assert (node.id, node.name) == ("n2", "plain")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CreateFolder(storage_pb2.CreateFolderRequest(parent_id="p", name="n"))
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


async def test_add_servicer_refuses_a_registration_it_cannot_see() -> None:
    """Async: grpc.aio.server() needs a running loop (a sync test meets a closed one after other async tests)."""

    def old_style(servicer: object, server: Any) -> None:
        server.add_generic_rpc_handlers(())  # handlers only as an opaque generic handler

    with pytest.raises(RuntimeError, match="registered no method handlers by name"):
        wire.add_servicer(grpc.aio.server(), old_style, Servicer())


def _behaviour(request: Any, context: Any) -> Any:
    return request


@pytest.mark.parametrize(
    "make",
    [
        grpc.unary_unary_rpc_method_handler,
        grpc.unary_stream_rpc_method_handler,
        grpc.stream_unary_rpc_method_handler,
        grpc.stream_stream_rpc_method_handler,
    ],
)
def test_rebuilt_keeps_the_kind_and_swaps_only_what_is_given(make: Callable[..., Any]) -> None:
    def parse(b: bytes) -> bytes:
        return b

    handler = make(_behaviour, request_deserializer=bytes.upper, response_serializer=bytes.lower)
    again = wire.rebuilt(handler, request_deserializer=parse)
    kinds = ("request_streaming", "response_streaming", "unary_unary", "unary_stream", "stream_unary", "stream_stream")
    assert [getattr(again, k) for k in kinds] == [getattr(handler, k) for k in kinds]
    assert (again.request_deserializer, again.response_serializer) == (parse, bytes.lower)
    passing = wire.rebuilt(handler, response_serializer=None)
    assert (passing.request_deserializer, passing.response_serializer) == (bytes.upper, None)


def test_serialised_marks_the_method_and_only_it() -> None:
    servicer = Servicer()
    assert wire.is_serialised(servicer.ListChildren) and wire.is_serialised(Servicer.DownloadFile)
    assert not wire.is_serialised(servicer.GetNode)
    assert not wire.is_serialised(servicer.CreateFolder)


MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # -0.5 s: seconds -1, nanos 500,000,000
    datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),
    datetime(1900, 2, 28, 12, 0, 0, 999999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2030, 6, 1, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_timestamps_round_trip(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    ts = wire.timestamp(moment)
    assert ts == expected
    assert 0 <= ts.nanos < 1_000_000_000 and ts.nanos == moment.microsecond * 1000
    back = wire.to_datetime(ts)
    assert back == moment and back.utcoffset() == timedelta(0)
    node = storage_pb2.Node()
    wire.set_timestamp(node.create_time, moment)  # in place, on a message field
    assert node.create_time == expected


def test_naive_datetimes_are_utc_and_none_stays_unset() -> None:
    naive = datetime(1969, 12, 31, 23, 59, 59, 250000)
    assert wire.timestamp(naive) == wire.timestamp(naive.replace(tzinfo=UTC))
    assert (wire.timestamp(naive).seconds, wire.timestamp(naive).nanos) == (-1, 250_000_000)
    assert wire.timestamp(None) is None
    assert not storage_pb2.Upload(expire_time=wire.timestamp(None)).HasField("expire_time")
