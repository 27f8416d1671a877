"""Wire-level helpers: protobuf Timestamps ↔ datetimes, and gRPC method handlers that send pre-serialised bytes.

Fast paths that write protobuf by hand (storage_svc's listing read model and downloads) and every servicer's
timestamp conversions go through here, so that knowledge lives in one module:

- `set_timestamp` / `timestamp` / `to_datetime`: one conversion, naive datetimes meaning UTC. `set_timestamp` fills
  a Timestamp in place with integer timedelta arithmetic (4x cheaper than `Timestamp.FromDatetime`, which builds a
  time tuple for `calendar.timegm`; same result, tested from year 1 to 9999).
- `serialised` marks a servicer method whose answers are already serialised; `add_servicer` registers a servicer
  as its generated `add_*_to_server` function does, but builds the marked methods' handlers with grpc's public
  constructors and no response serializer (grpc then sends the bytes as they are).
- `rebuilt`: a method handler made again with a serializer swapped (the interceptor's tolerant deserializer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, overload

import grpc
from google.protobuf import timestamp_pb2

# -- timestamps ----------------------------------------------------------------------------------------------------

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH: Final = datetime(1970, 1, 1)


def set_timestamp(ts: timestamp_pb2.Timestamp, value: datetime) -> None:
    """Fill a Timestamp in place (a message field, e.g. `node.create_time`: no Timestamp copied in) from a datetime;
    naive means UTC. Exactly `Timestamp.FromDatetime`, before 1970 too (nanos stay positive: -0.5 s is seconds -1,
    nanos 500,000,000)."""
    since = value - (_NAIVE_EPOCH if value.tzinfo is None else EPOCH)
    ts.seconds = since.days * 86_400 + since.seconds
    ts.nanos = since.microseconds * 1_000


@overload
def timestamp(value: datetime) -> timestamp_pb2.Timestamp: ...
@overload
def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None: ...
def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A Timestamp from a datetime (naive means UTC); None stays None (an unset field)."""
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    set_timestamp(ts, value)
    return ts


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    """A Timestamp as an aware UTC datetime (microseconds; protobuf rounds nanos toward zero)."""
    return ts.ToDatetime(tzinfo=UTC)


# -- pre-serialised responses ---------------------------------------------------------------------------------------

_MARK = "__flowdock_serialised__"

#: The generated `add_<Service>Servicer_to_server(servicer, server)` functions.
AddToServer = Callable[[Any, Any], None]


def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a servicer method that answers (returns, or for a server stream yields) messages already serialised, as
    bytes: `add_servicer` registers it without a response serializer, so grpc sends them untouched.

    Typed `Callable[..., Any]` on purpose: the generated base class declares the response message, and bytes of
    that message stand in for it, which no static type says. Example::

        @wire.serialised
        async def ListChildren(self, request, context) -> bytes: ...
    """
    setattr(method, _MARK, True)
    return method


def is_serialised(behaviour: object) -> bool:
    """Whether a method (bound or not) was marked with `serialised`."""
    return getattr(behaviour, _MARK, False) is True


_KEEP: Any = object()


def rebuilt(
    handler: grpc.RpcMethodHandler[Any, Any],
    *,
    request_deserializer: Callable[[bytes], Any] | None = _KEEP,
    response_serializer: Callable[[Any], bytes] | None = _KEEP,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same method handler made again with grpc's public constructor for its kind (unary/stream on each side),
    with the serializers given; an omitted one is kept. None means bytes: a request reaches the method unparsed, a
    response goes out as the method gave it."""
    req = handler.request_deserializer if request_deserializer is _KEEP else request_deserializer
    res = handler.response_serializer if response_serializer is _KEEP else response_serializer
    make: Callable[..., grpc.RpcMethodHandler[Any, Any]]
    if handler.request_streaming and handler.response_streaming:
        make, behaviour = grpc.stream_stream_rpc_method_handler, handler.stream_stream
    elif handler.request_streaming:
        make, behaviour = grpc.stream_unary_rpc_method_handler, handler.stream_unary
    elif handler.response_streaming:
        make, behaviour = grpc.unary_stream_rpc_method_handler, handler.unary_stream
    else:
        make, behaviour = grpc.unary_unary_rpc_method_handler, handler.unary_unary
    if behaviour is None:
        raise ValueError("a method handler without the behaviour its kind needs")
    return make(behaviour, request_deserializer=req, response_serializer=res)


def _behaviour(handler: grpc.RpcMethodHandler[Any, Any]) -> object:
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


class _Collected:
    """Stands in for the server while a generated add_*_to_server function registers its handlers."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        pass  # the same handlers come by name too (add_registered_method_handlers): registered from those

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.services[service] = dict(handlers)


def add_servicer(server: grpc.aio.Server, add_to_server: AddToServer, servicer: object) -> dict[str, list[str]]:
    """Register `servicer` on `server` as the generated `add_to_server` does (the generated code stays as generated),
    except that methods marked `serialised` get handlers without a response serializer. Returns the marked
    methods by service (for logs and tests)."""
    collected = _Collected()
    add_to_server(servicer, collected)
    if not collected.services:
        raise RuntimeError(f"{add_to_server.__name__} registered no method handlers by name (grpcio-tools too old?)")
    passed: dict[str, list[str]] = {}
    for service, handlers in collected.services.items():
        for name, handler in handlers.items():
            if is_serialised(_behaviour(handler)):
                handlers[name] = rebuilt(handler, response_serializer=None)
                passed.setdefault(service, []).append(name)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_registered_method_handlers(service, handlers)
    return passed
