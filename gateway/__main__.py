"""`python -m gateway render|validate|serve`: the gateway's command line.

Example::

    python -m gateway serve --upstream auth=127.0.0.1:50051 \\
        --upstream storage=127.0.0.1:50052,127.0.0.1:50062 --upstream share=127.0.0.1:50053
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
from datetime import timedelta
from importlib import resources
from pathlib import Path
from types import FrameType

from flowdock_kernel.channels import Keepalive
from flowdock_kernel.config import ConfigError, load
from gateway.config import GatewayConfig
from gateway.descriptor import DescriptorError
from gateway.envoy_config import DEFAULT_CORS_ORIGINS, EdgeTls, GatewaySpec, MeshFiles
from gateway.runner import (
    EnvoyNotFoundError,
    EnvoyValidationError,
    PortInUseError,
    check_ports_free,
    envoy_command,
    render,
    validate,
)
from gateway.webapp import BUILD_HINT, resolve_web_dir, scan

# The descriptor set ships inside the generated package, so installed and editable copies both find it.
DEFAULT_DESCRIPTOR = Path(str(resources.files("flowdock") / "descriptor.binpb"))


def parse_upstream(value: str) -> tuple[str, list[tuple[str, int]]]:
    """Parse `NAME=HOST:PORT[,HOST:PORT...]` (IPv6 as `[::1]:PORT`)."""
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT[,HOST:PORT...], got {value!r}")
    endpoints: list[tuple[str, int]] = []
    for item in rest.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"bad endpoint {item!r} in {value!r} (want HOST:PORT)")
        endpoints.append((host.strip("[]"), int(port)))
    return name, endpoints


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return port


def _add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen-host", default="127.0.0.1", help="listener address (default %(default)s)")
    parser.add_argument("--port", type=_port, default=8080, help="listener port (default %(default)s)")
    parser.add_argument("--admin-host", default="127.0.0.1", help="admin address (default %(default)s)")
    parser.add_argument("--admin-port", type=_port, default=9901, help="admin port (default %(default)s)")
    parser.add_argument(
        "--descriptor", type=Path, default=DEFAULT_DESCRIPTOR, help="FileDescriptorSet (default %(default)s)"
    )
    parser.add_argument(
        "--upstream",
        type=parse_upstream,
        action="append",
        default=[],
        metavar="NAME=HOST:PORT[,HOST:PORT...]",
        help="a cluster (auth, storage, share) and its replicas; repeat per cluster",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="REGEX",
        help="allowed browser origin (RE2, whole match); repeatable; default: localhost and 127.0.0.1",
    )
    parser.add_argument(
        "--rate-limit-per-second",
        type=int,
        default=None,
        help="per-client token refill per second (default: gateway_rate_limit_per_second)",
    )
    parser.add_argument(
        "--rate-limit-burst", type=int, default=None, help="per-client bucket size (default: gateway_rate_limit_burst)"
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log requests to stdout")
    mesh = parser.add_argument_group("mesh (mutual TLS to the services; all three or none)")
    mesh.add_argument("--mesh-ca", type=Path, help="mesh CA certificate (PEM)")
    mesh.add_argument("--mesh-cert", type=Path, help="the gateway's mesh certificate (PEM, SAN gateway)")
    mesh.add_argument("--mesh-key", type=Path, help="the gateway's mesh private key (PEM)")
    edge = parser.add_argument_group("public listener TLS (both or none)")
    edge.add_argument("--tls-cert", type=Path, help="certificate chain (PEM) served on the public listener")
    edge.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    edge.add_argument(
        "--hsts-max-age", type=int, default=None, help="Strict-Transport-Security max-age over TLS (seconds)"
    )
    parser.add_argument(
        "--stats-port",
        type=int,
        default=0,
        help="serve only /stats/prometheus (from the admin interface) on this port of --listen-host (default: none)",
    )
    parser.add_argument(
        "--xff-trusted-hops",
        type=int,
        default=None,
        help="proxies in front of the gateway whose X-Forwarded-For is trusted (default: gateway_xff_trusted_hops, 0)",
    )
    parser.add_argument(
        "--keepalive-seconds",
        type=float,
        default=None,
        help="HTTP/2 ping interval to the upstreams (default: FLOWDOCK_KEEPALIVE_SECONDS, as the services use)",
    )
    parser.add_argument(
        "--web-dir",
        help="built browser app served at / (default: $FLOWDOCK_GATEWAY_WEB_DIR, else clients/web/dist of the source)",
    )


def spec_from_args(args: argparse.Namespace, config: GatewayConfig | None = None) -> GatewaySpec:
    """Turn parsed options and the gateway settings into a GatewaySpec (later --upstream for the same name wins)."""
    cfg = config or load(GatewayConfig)
    mesh_paths = (args.mesh_ca, args.mesh_cert, args.mesh_key)
    if any(mesh_paths) and not all(mesh_paths):
        raise ValueError("--mesh-ca, --mesh-cert and --mesh-key go together")
    tls_cert = args.tls_cert or (Path(cfg.gateway_tls_cert) if cfg.gateway_tls_cert else None)
    tls_key = args.tls_key or (Path(cfg.gateway_tls_key) if cfg.gateway_tls_key else None)
    hsts = args.hsts_max_age if args.hsts_max_age is not None else cfg.gateway_hsts_max_age
    hops = args.xff_trusted_hops if args.xff_trusted_hops is not None else cfg.gateway_xff_trusted_hops
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    if hops < 0:
        raise ValueError("--xff-trusted-hops must be 0 or more")
    for path in [*mesh_paths, tls_cert, tls_key]:
        if path is not None and not path.is_file():
            raise ValueError(f"{path}: no such file")
    return GatewaySpec(
        listen_host=args.listen_host,
        port=args.port,
        admin_host=args.admin_host,
        admin_port=args.admin_port,
        descriptor_path=args.descriptor,
        upstreams=dict(args.upstream),
        cors_allowed_origins=tuple(args.cors_origin) or DEFAULT_CORS_ORIGINS,
        rate_limit_per_second=args.rate_limit_per_second or cfg.gateway_rate_limit_per_second,
        rate_limit_burst=args.rate_limit_burst or cfg.gateway_rate_limit_burst,
        global_rate_limit_per_second=cfg.gateway_global_rate_limit_per_second,
        global_rate_limit_burst=cfg.gateway_global_rate_limit_burst,
        rate_limit_max_clients=cfg.gateway_rate_limit_max_clients,
        public_body_bytes=cfg.gateway_public_body_bytes,
        json_body_bytes=cfg.gateway_json_body_bytes,
        max_body_bytes=cfg.gateway_upload_body_bytes,
        unary_timeout=timedelta(seconds=cfg.gateway_unary_timeout_seconds),
        max_heap_bytes=cfg.gateway_max_heap_bytes,
        jwks_cache_seconds=cfg.gateway_jwks_cache_seconds,
        access_log=not args.no_access_log,
        keepalive=Keepalive.every(args.keepalive_seconds or _configured_keepalive_seconds()),
        web_dir=web_dir(args.web_dir),
        mesh=MeshFiles(*(p.resolve() for p in mesh_paths)) if all(mesh_paths) else None,
        edge_tls=EdgeTls(tls_cert.resolve(), tls_key.resolve(), hsts) if tls_cert and tls_key else None,
        xff_num_trusted_hops=hops,
        stats_port=args.stats_port,
    )


def _configured_keepalive_seconds() -> float:
    """The services' setting (same environment under `flowdock up`), so both ends of a connection agree."""
    try:
        return load(GatewayConfig).keepalive_seconds
    except ConfigError:
        return GatewayConfig.keepalive_seconds


def web_dir(flag: str | None) -> Path:
    """--web-dir, else the setting, else the source tree's clients/web/dist."""
    if flag:
        return resolve_web_dir(flag)
    return resolve_web_dir(load(GatewayConfig).gateway_web_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gateway", description="Render, validate and run FlowDock's Envoy gateway."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_render = sub.add_parser("render", help="write the Envoy bootstrap JSON")
    p_render.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    p_render.add_argument("--validate", action="store_true", help="also run envoy --mode validate")
    _add_spec_options(p_render)
    p_validate = sub.add_parser("validate", help="check a bootstrap with envoy --mode validate")
    p_validate.add_argument("config", type=Path)
    p_serve = sub.add_parser("serve", help="render, validate and run Envoy in the foreground")
    _add_spec_options(p_serve)
    p_serve.add_argument("--run-dir", type=Path, help="keep the rendered config here (default: a temp dir)")
    p_serve.add_argument("--log-level", default="info", help="Envoy log level (default %(default)s)")
    return parser


def _serve(spec: GatewaySpec, run_dir: Path | None, log_level: str) -> int:
    """Run Envoy as a child, forwarding SIGTERM/SIGINT so it drains and exits; return its code."""
    check_ports_free((spec.listen_host, spec.port), (spec.admin_host, spec.admin_port))
    with tempfile.TemporaryDirectory(prefix="flowdock-gateway-") as tmp:
        config = render(spec, (run_dir or Path(tmp)) / "envoy.json")
        validate(config)
        print(f"gateway: serving on {spec.listen_host}:{spec.port} (config {config})", file=sys.stderr)
        if spec.web_dir is not None and scan(spec.web_dir) is None:
            print(f"gateway: no web app build in {spec.web_dir}.\n{BUILD_HINT}", file=sys.stderr)
        proc = subprocess.Popen(envoy_command(config, log_level))

        def forward(signum: int, _frame: FrameType | None) -> None:
            proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = proc.wait()
        if code < 0:  # say what ended Envoy (`flowdock up` restarts it), and exit as a shell reports a signal
            print(f"gateway: Envoy was ended by {signal.Signals(-code).name}", file=sys.stderr)
            return 128 - code
        return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (Envoy's own for `serve`)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="gateway: %(levelname)s: %(message)s")
    try:
        if args.command == "validate":
            validate(args.config)
            print(f"{args.config}: OK")
            return 0
        spec = spec_from_args(args)
        if args.command == "render":
            out = render(spec, args.out)
            if args.validate:
                validate(out)
            print(out)
            return 0
        return _serve(spec, args.run_dir, args.log_level)
    except (
        ConfigError,
        PortInUseError,
        EnvoyValidationError,
        EnvoyNotFoundError,
        DescriptorError,
        ValueError,
        OSError,
    ) as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
