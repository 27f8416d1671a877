"""The mesh's one keepalive policy (issue 16, item 2): client pings, server ping policy and Envoy's upstream pings
agree, so an idle internal channel is never sent away with GOAWAY too_many_pings; idempotent calls retry once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from flowdock_kernel.channels import (
    IDEMPOTENT_INTERNAL_METHODS,
    Keepalive,
    internal_channel,
    retry_service_config,
    server_options,
)
from gateway.envoy_config import GatewaySpec, build_bootstrap

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


@pytest.mark.parametrize("seconds", [0.5, 1, 30, 300])
def test_client_and_server_options_agree(seconds: float) -> None:
    k = Keepalive.every(seconds)
    client = dict(k.client_options())
    server = dict(k.server_options())
    assert client["grpc.keepalive_permit_without_calls"] == server["grpc.keepalive_permit_without_calls"] == 1
    assert client["grpc.http2.max_pings_without_data"] == 0
    # The server accepts pings at the client's interval, with room for timer jitter (Envoy's 15 % included).
    accepted = server["grpc.http2.min_ping_interval_without_data_ms"]
    assert accepted <= client["grpc.keepalive_time_ms"] * (100 - k.envoy_jitter_percent) / 100
    assert client["grpc.keepalive_timeout_ms"] <= max(client["grpc.keepalive_time_ms"], 1000)


def test_envoy_upstreams_ping_within_what_servers_accept() -> None:
    k = Keepalive.every(7)
    spec = GatewaySpec(
        descriptor_path=ROOT / "gen" / "python" / "flowdock" / "descriptor.binpb",
        upstreams={n: [("127.0.0.1", 1)] for n in ("auth", "storage", "share")},
        keepalive=k,
    )
    clusters = build_bootstrap(spec)["static_resources"]["clusters"]
    upstreams = [c for c in clusters if c["name"] in ("auth", "storage", "share")]
    assert len(upstreams) == 3
    accepted = dict(k.server_options())["grpc.http2.min_ping_interval_without_data_ms"] / 1000
    for cluster in upstreams:
        options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        ping = options["explicit_http_config"]["http2_protocol_options"]["connection_keepalive"]
        interval = float(ping["interval"].rstrip("s"))
        jitter = ping["interval_jitter"]["value"]
        assert interval * (100 - jitter) / 100 >= accepted
        assert interval == 7


def test_retry_policy_covers_only_idempotent_methods() -> None:
    config = json.loads(retry_service_config())
    (method,) = config["methodConfig"]
    assert method["retryPolicy"]["maxAttempts"] == 2
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    names = {(n["service"], n["method"]) for n in method["name"]}
    assert ("flowdock.auth.v1.AuthInternalService", "NotifyUser") not in names
    assert ("flowdock.auth.v1.AuthInternalService", "RecordEvents") not in names
    assert ("flowdock.storage.v1.StorageService", "GetNode") in names
    assert len(names) == sum(len(m) for m in IDEMPOTENT_INTERNAL_METHODS.values())


async def _serve(options: list[tuple[str, Any]]) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(options=options)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _idle_then_call(options: list[tuple[str, Any]], keepalive: Keepalive, idle: float) -> list[str]:
    """Connect, stay idle `idle` seconds (calls only at the start and the end), and return every connectivity state
    the channel went through after it was first READY."""
    server, address = await _serve(options)
    channel = internal_channel(address, 4 * MiB, keepalive=keepalive)
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        seen: list[str] = []

        async def watch() -> None:
            state = channel.get_state()
            while True:
                await channel.wait_for_state_change(state)
                state = channel.get_state()
                seen.append(state.name)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(idle)
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        watcher.cancel()
        return seen
    finally:
        await channel.close()
        await server.stop(None)


def test_an_idle_channel_is_not_sent_away(capfd: pytest.CaptureFixture[str]) -> None:
    """1 s pings for 6 s of quiet: a server on gRPC's default policy (the bug) sends GOAWAY after 3 strikes."""
    k = Keepalive.every(1)
    seen = asyncio.run(_idle_then_call(server_options(4 * MiB, k), k, 6))
    assert seen == []  # READY throughout: no GOAWAY, no reconnect
    assert "too_many_pings" not in capfd.readouterr().err


def test_the_policy_is_what_keeps_the_channel(capfd: pytest.CaptureFixture[str]) -> None:
    """The same client against a server without the policy (what every server had before): sent away."""
    k = Keepalive.every(1)
    seen = asyncio.run(_idle_then_call([], k, 6))
    assert seen  # it left READY (GOAWAY too_many_pings)
    assert "too_many_pings" in capfd.readouterr().err


class _FlakyHealth(health_pb2_grpc.HealthServicer):
    """UNAVAILABLE on the first call of each method, as a connection that went away under a call would give."""

    def __init__(self) -> None:
        self.calls = 0

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        if self.calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "going away")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _call_twice_flaky(method: str) -> tuple[grpc.StatusCode, int]:
    """Call `method` (served by a flaky Check handler) through an internal channel; the code and the calls made."""
    servicer = _FlakyHealth()
    server = grpc.aio.server()
    service, name = method.rsplit("/", 1)
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.Check,
        request_deserializer=health_pb2.HealthCheckRequest.FromString,
        response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {name: handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = internal_channel(f"127.0.0.1:{port}", 4 * MiB)
    try:
        call = channel.unary_unary(
            f"/{method}",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            await call(health_pb2.HealthCheckRequest(), timeout=5)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        return code, servicer.calls
    finally:
        await channel.close()
        await server.stop(None)


def test_idempotent_internal_calls_retry_once_on_unavailable() -> None:
    assert asyncio.run(_call_twice_flaky("flowdock.storage.v1.StorageService/GetNode")) == (grpc.StatusCode.OK, 2)
    # Not idempotent (a second mail): the caller sees the UNAVAILABLE.
    code, calls = asyncio.run(_call_twice_flaky("flowdock.auth.v1.AuthInternalService/NotifyUser"))
    assert (code, calls) == (grpc.StatusCode.UNAVAILABLE, 1)


async def _code_after_outage(outage: float, settle: float) -> grpc.StatusCode:
    """A peer (a health server) goes away for `outage` s while calls to it keep failing, then comes back on its
    port; the code of one call `settle` s later (no wait_for_ready: a channel still backing off fails at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])

    async def serve() -> grpc.aio.Server:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        assert server.add_insecure_port(f"127.0.0.1:{port}") == port
        await server.start()
        return server

    server = await serve()
    channel = internal_channel(f"127.0.0.1:{port}", 4 * MiB)
    check = health_pb2_grpc.HealthStub(channel).Check
    try:
        await check(health_pb2.HealthCheckRequest(), timeout=5)
        await server.stop(None)
        gone = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - gone < outage:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await check(health_pb2.HealthCheckRequest(), timeout=1)
            await asyncio.sleep(0.1)
        server = await serve()
        await asyncio.sleep(settle)
        try:
            await check(health_pb2.HealthCheckRequest(), timeout=5)
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    finally:
        await channel.close()
        await server.stop(None)


def test_a_restarted_peer_is_reached_again_within_seconds() -> None:
    """Issue 18: after a peer's restart (`flowdock up` brings a crashed service back in seconds) the internal channel
    reconnects within max_reconnect_backoff_ms (2 s, +20 % jitter), not gRPC's default backoff (1 s growing 1.6x to
    120 s: after a 12 s outage it waited up to ~4 s more, longer the longer the outage)."""
    assert asyncio.run(_code_after_outage(outage=12.0, settle=3.0)) == grpc.StatusCode.OK
