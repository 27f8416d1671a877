"""`flowdock logs --request ID`: one request across the mesh, from the JSON lines in `<data_dir>/logs/`.

Envoy writes one access-log line per request (gateway.log: method, path, response and gRPC status, duration,
`request_id`); Envoy makes the `x-request-id` and passes it upstream, each service logs one `call` line per gRPC
call with it (method, code, ms, user_id — never a token) and forwards it on its own calls to other services. The
same join without FlowDock installed: `jq -c 'select(.request_id == "ID")' <data_dir>/logs/*.log`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowdock_runtime.settings import SetupError, add_server_options, resolve


def entries(log_dir: Path, request_id: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(time, source, entry) of every JSON line of every log in `log_dir` carrying `request_id`."""
    for path in sorted(log_dir.glob("*.log")):
        with open(path, errors="replace") as f:
            for line in f:
                if request_id not in line or not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("request_id") == request_id:
                    when = str(entry.get("ts") or entry.get("start_time") or "")
                    yield when, path.stem, entry


def describe(source: str, entry: dict[str, Any]) -> str:
    if "start_time" in entry:  # Envoy's access log
        status = entry.get("response_code")
        grpc = entry.get("grpc_status")
        return (
            f"{entry.get('method', '')} {entry.get('path', '')} -> HTTP {status}"
            + (f" grpc {grpc}" if grpc not in (None, "", "-") else "")
            + f" in {entry.get('duration_ms')} ms (upstream {entry.get('upstream_host') or '-'})"
        )
    if entry.get("msg") == "call":
        user = entry.get("user_id")
        return f"{entry.get('method')} -> {entry.get('code')} in {entry.get('ms')} ms" + (
            f" user {user}" if user else ""
        )
    return f"{entry.get('level', '')} {entry.get('logger', '')}: {entry.get('msg', '')}"


def run_logs(args: argparse.Namespace) -> int:
    try:
        settings = resolve(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log_dir = settings.data_dir / "logs"
    if not log_dir.is_dir():
        print(f"error: no logs in {log_dir} (flowdock up writes them there)", file=sys.stderr)
        return 4
    found = sorted(entries(log_dir, args.request), key=lambda e: e[0])
    if not found:
        print(f"error: no log line carries request id {args.request} in {log_dir}", file=sys.stderr)
        return 4
    for when, source, entry in found:
        print(json.dumps(entry) if args.json else f"{when}  {source:<10} {describe(source, entry)}")
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "logs",
        help="follow one request across the gateway and the services (--request ID)",
        description="Print every log line of one request (the x-request-id the gateway returns in its response "
        "headers), from Envoy's access log and each service's call log, in time order.",
    )
    add_server_options(p)
    p.add_argument("--request", required=True, metavar="ID", help="the request id (response header x-request-id)")
    p.add_argument("--json", action="store_true", help="the raw JSON lines")
    p.set_defaults(func=run_logs)
