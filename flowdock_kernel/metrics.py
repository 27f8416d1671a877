"""Prometheus metrics every service exports on its own /metrics port."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "flowdock_grpc_requests_total", "gRPC calls handled, by final status code.", ["service", "method", "code"]
)
LATENCY = Histogram(
    "flowdock_grpc_request_seconds",
    "gRPC call duration (streams: until the last message).",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
STREAMS_IN_FLIGHT = Gauge("flowdock_grpc_streams_in_flight", "Streaming calls now open.", ["service", "method"])
BYTES_STREAMED = Counter(
    "flowdock_bytes_streamed_total", "File bytes moved by streaming calls.", ["service", "direction"]
)


def serve_metrics(host: str, port: int) -> int:
    """Start the /metrics HTTP server in a thread; returns the bound port (useful when port is 0)."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
