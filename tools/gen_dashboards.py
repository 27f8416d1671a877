#!/usr/bin/env python3
"""Write the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel lists below.

Why generated: four dashboards share one datasource, one layout and many queries; writing the JSON by hand drifts.
`python tools/gen_dashboards.py` rewrites them; `--check` exits 1 when a committed file differs (the test runs it).
Every query here is evaluated against a live mesh by tests/deploy/test_prometheus.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "deploy" / "grafana" / "dashboards"
#: The uid of the provisioned Prometheus datasource (deploy/grafana/provisioning/datasources/prometheus.yml).
DATASOURCE = {"type": "prometheus", "uid": "flowdock-prometheus"}

# Grafana units
RPS, PERCENT, SECONDS, MS, BYTES, BYTES_PS, COUNT = "reqps", "percentunit", "s", "ms", "bytes", "Bps", "short"

UNARY = 'method!~".*(Stream|DownloadFile|Watch).*"'
SERVER_ERRORS = 'code=~"INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS"'
PROTOCOLS = 'envoy_virtual_cluster=~"rest|grpc_web|grpc"'
SERVICES = 'envoy_cluster_name=~"auth|storage|share"'

P99_UNARY = f"histogram_quantile(0.99, sum by (le) (rate(flowdock_grpc_request_seconds_bucket{{{UNARY}}}[5m])))"
GATEWAY_RATE = f"sum by (envoy_virtual_cluster) (rate(envoy_vhost_vcluster_upstream_rq_total{{{PROTOCOLS}}}[5m]))"


def error_ratio(by: str) -> str:
    """Server errors / all calls; 0 rather than no data while nothing failed (`or` the total times 0)."""
    group = f"sum by ({by}) " if by else "sum "
    total = f"{group}(rate(flowdock_grpc_requests_total[5m]))"
    return f"({group}(rate(flowdock_grpc_requests_total{{{SERVER_ERRORS}}}[5m])) or {total} * 0) / {total}"


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = COUNT
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    width: int = 12


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


DASHBOARDS = [
    Dashboard(
        "flowdock-overview",
        "FlowDock Overview",
        "Is FlowDock up, how busy is it, is it failing, and is it running out of room: one screen.",
        [
            Panel("Targets up", [('sum(up{job=~"auth|storage|share|gateway"})', "up")], kind="stat", width=4),
            Panel("Requests / s", [("sum(rate(flowdock_grpc_requests_total[5m]))", "calls")], RPS, "stat", width=4),
            Panel(
                "Server error ratio",
                [(error_ratio(""), "errors")],
                PERCENT,
                "stat",
                width=4,
            ),
            Panel(
                "p99 unary latency",
                [
                    (
                        P99_UNARY,
                        "p99",
                    )
                ],
                SECONDS,
                "stat",
                width=4,
            ),
            Panel("Active uploads", [("sum(flowdock_uploads_active)", "uploads")], kind="stat", width=4),
            Panel(
                "Data disk free",
                [("min(flowdock_data_disk_free_bytes / flowdock_data_disk_size_bytes)", "free")],
                PERCENT,
                "stat",
                width=4,
            ),
            Panel(
                "Requests / s by service",
                [("sum by (service) (rate(flowdock_grpc_requests_total[5m]))", "{{service}}")],
                RPS,
            ),
            Panel(
                "Gateway requests / s by protocol",
                [
                    (
                        GATEWAY_RATE,
                        "{{envoy_virtual_cluster}}",
                    )
                ],
                RPS,
            ),
            Panel(
                "File bytes / s",
                [("sum by (direction) (rate(flowdock_bytes_streamed_total[5m]))", "{{direction}}")],
                BYTES_PS,
            ),
            Panel(
                "Upload outcomes (last hour)",
                [("sum by (outcome) (increase(flowdock_upload_outcomes_total[1h]))", "{{outcome}}")],
            ),
            Panel(
                "Open streams and uploads",
                [
                    ("sum(flowdock_grpc_streams_in_flight)", "streams"),
                    ("sum by (state) (flowdock_uploads_active)", "uploads {{state}}"),
                ],
            ),
            Panel("Accounts by quota use", [("sum by (bucket) (flowdock_quota_accounts)", "{{bucket}}")]),
        ],
    ),
    Dashboard(
        "flowdock-service-health",
        "Service Health",
        "Each process and dependency: scrape targets, Envoy's health checks, databases, clamd, outbox, pools, disk, "
        "scrub.",
        [
            Panel("Scrape targets up", [('up{job=~"auth|storage|share|gateway"}', "{{job}} {{instance}}")]),
            Panel(
                "Envoy: healthy endpoints per service",
                [
                    (
                        f"sum by (envoy_cluster_name) (envoy_cluster_membership_healthy{{{SERVICES}}})",
                        "{{envoy_cluster_name}}",
                    )
                ],
            ),
            Panel("Database reachable", [("flowdock_database_up", "{{service}}")]),
            Panel("clamd answering", [("flowdock_clamd_up", "clamd")]),
            Panel(
                "Scan duration p50 / p95",
                [
                    ("histogram_quantile(0.5, sum by (le) (rate(flowdock_scan_seconds_bucket[5m])))", "p50"),
                    ("histogram_quantile(0.95, sum by (le) (rate(flowdock_scan_seconds_bucket[5m])))", "p95"),
                ],
                SECONDS,
            ),
            Panel(
                "Scans / s by result", [("sum by (result) (rate(flowdock_scan_seconds_count[5m]))", "{{result}}")], RPS
            ),
            Panel("Audit outbox backlog", [("flowdock_audit_outbox_pending", "{{service}}")]),
            Panel(
                "Database pool connections",
                [("sum by (service, state) (flowdock_db_pool_connections)", "{{service}} {{state}}")],
            ),
            Panel(
                "Data disk free",
                [
                    ("flowdock_data_disk_free_bytes", "{{service}} free"),
                    ("flowdock_data_disk_size_bytes", "{{service}} size"),
                ],
                BYTES,
            ),
            Panel(
                "Gauge sample age",
                [("time() - flowdock_sample_timestamp_seconds", "{{service}}")],
                SECONDS,
                description="Seconds since each service refreshed its sampled gauges (every 10 s when healthy).",
            ),
            Panel(
                "Scrub: damaged blobs found (1 h)",
                [("sum(increase(flowdock_scrub_damaged_blobs_total[1h]))", "damaged")],
                description="Stored blobs the background scrub found damaged or missing in the last hour (alert "
                "FlowDockStoredDataDamaged; the storage log's DATA_LOSS lines name them).",
            ),
            Panel(
                "Scrub: bytes verified / s",
                [("sum(rate(flowdock_scrub_bytes_verified_total[5m]))", "read")],
                BYTES_PS,
                description="Stored bytes the scrub reads and authenticates (at most storage_scrub_bytes_per_second).",
            ),
            Panel(
                "Scrub: time since the last complete pass",
                [("time() - max(flowdock_scrub_last_pass_timestamp_seconds)", "age")],
                SECONDS,
                description="Every blob is checked once per pass (about 1 / storage_scrub_fraction_per_day days); "
                "huge before the first pass ends.",
            ),
        ],
    ),
    Dashboard(
        "flowdock-api-performance",
        "API Performance",
        "Throughput and latency per service, method and protocol (REST, grpc-web, native gRPC as Envoy tells them).",
        [
            Panel(
                "Requests / s by method",
                [("sum by (service, method) (rate(flowdock_grpc_requests_total[5m]))", "{{method}}")],
                RPS,
                width=24,
            ),
            Panel(
                "p50 / p99 unary latency by service",
                [
                    (
                        f"histogram_quantile(0.5, sum by (service, le) "
                        f"(rate(flowdock_grpc_request_seconds_bucket{{{UNARY}}}[5m])))",
                        "{{service}} p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (service, le) "
                        f"(rate(flowdock_grpc_request_seconds_bucket{{{UNARY}}}[5m])))",
                        "{{service}} p99",
                    ),
                ],
                SECONDS,
            ),
            Panel(
                "p99 latency, slowest methods",
                [
                    (
                        "topk(10, histogram_quantile(0.99, sum by (method, le) "
                        "(rate(flowdock_grpc_request_seconds_bucket[5m]))))",
                        "{{method}}",
                    )
                ],
                SECONDS,
            ),
            Panel(
                "Gateway p99 by protocol",
                [
                    (
                        f"histogram_quantile(0.99, sum by (envoy_virtual_cluster, le) "
                        f"(rate(envoy_vhost_vcluster_upstream_rq_time_bucket{{{PROTOCOLS}}}[5m])))",
                        "{{envoy_virtual_cluster}}",
                    )
                ],
                MS,
            ),
            Panel(
                "Gateway requests / s by protocol",
                [
                    (
                        GATEWAY_RATE,
                        "{{envoy_virtual_cluster}}",
                    )
                ],
                RPS,
            ),
            Panel("Open streams by method", [("sum by (method) (flowdock_grpc_streams_in_flight)", "{{method}}")]),
            Panel(
                "File bytes / s",
                [("sum by (direction) (rate(flowdock_bytes_streamed_total[5m]))", "{{direction}}")],
                BYTES_PS,
            ),
        ],
    ),
    Dashboard(
        "flowdock-error-rates",
        "Error Rates",
        "What fails and how: gRPC status codes per service, gateway answers per protocol, rate limiting, uploads.",
        [
            Panel(
                "Non-OK calls / s by code",
                [
                    (
                        'sum by (service, code) (rate(flowdock_grpc_requests_total{code!="OK"}[5m]))',
                        "{{service}} {{code}}",
                    )
                ],
                RPS,
                width=24,
            ),
            Panel(
                "Server error ratio by service",
                [(error_ratio("service"), "{{service}}")],
                PERCENT,
            ),
            Panel(
                "Gateway answers / s by protocol and status",
                [
                    (
                        f"sum by (envoy_virtual_cluster, envoy_response_code) "
                        f"(rate(envoy_vhost_vcluster_upstream_rq{{{PROTOCOLS}}}[5m]))",
                        "{{envoy_virtual_cluster}} {{envoy_response_code}}",
                    )
                ],
                RPS,
            ),
            Panel(
                "Rate-limited requests / s",
                [
                    (
                        'sum(rate(envoy_http_local_rate_limit_rate_limited{envoy_local_http_ratelimit_prefix="gateway_rate_limit"}[5m]))',
                        "refused",
                    )
                ],
                RPS,
            ),
            Panel(
                "Failed uploads / s by outcome",
                [('sum by (outcome) (rate(flowdock_upload_outcomes_total{outcome!="completed"}[5m]))', "{{outcome}}")],
                RPS,
            ),
            Panel("Scan errors / s", [('sum(rate(flowdock_scan_seconds_count{result="error"}[5m]))', "errors")], RPS),
        ],
    ),
]


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    height = 4 if panel.kind == "stat" else 8
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if panel.kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.queries)
        ],
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """Grafana's dashboard model (schemaVersion 39): panels laid out left to right, 24 columns per row."""
    panels, x, y, row_height = [], 0, 0, 0
    for n, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        built = _panel(n, panel, x, y)
        panels.append(built)
        x += panel.width
        row_height = max(row_height, built["gridPos"]["h"])
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["flowdock"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def file_name(dashboard: Dashboard) -> str:
    return dashboard.uid.removeprefix("flowdock-") + ".json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard differs")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for dashboard in DASHBOARDS:
        path = OUT / file_name(dashboard)
        text = json.dumps(render(dashboard), indent=2) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO)))
        else:
            path.write_text(text)
    if stale:
        print(f"stale (run python tools/gen_dashboards.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
