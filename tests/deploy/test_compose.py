"""Static checks of the deployment files.

Files: docker-compose.yml, Dockerfile, .dockerignore and deploy/prometheus/prometheus.yml.

No Docker engine is needed: every check is a small function that takes a loaded ``Deployment`` and returns a
list of problems (empty when consistent). Each check is run against the real files (expecting no problems)
and against deliberately broken copies (expecting the breakage to be reported), so a check that silently
stopped checking would fail here too.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.compose import (
    COMPOSE_NAME,
    DB_SERVICES,
    GRPC_SERVICES,
    MESH_MOUNT,
    PROMETHEUS_NAME,
    REPO,
    Deployment,
    env_of,
    interpolate,
    load_deployment,
    services,
    unaliased,
)

# Not in the wheel; the gateway needs it at run time (gateway.GatewaySpec.descriptor_path).
GENERATED_PACKAGE = "gen/python/flowdock"  # holds descriptor.binpb, which the gateway reads

REQUIRED_SERVICES = {"postgres", "clamav", *GRPC_SERVICES, "gateway", "prometheus", "grafana", "certs"}
# Which FLOWDOCK_*_ADDRESS each service must be given.
REQUIRED_ADDRESSES = {
    "auth": {"FLOWDOCK_STORAGE_ADDRESS", "FLOWDOCK_SHARE_ADDRESS"},
    "storage": {"FLOWDOCK_AUTH_ADDRESS", "FLOWDOCK_SHARE_ADDRESS", "FLOWDOCK_STORAGE_CLAMD_ADDRESS"},
    "share": {"FLOWDOCK_AUTH_ADDRESS", "FLOWDOCK_STORAGE_ADDRESS"},
}
GATEWAY_HTTP_PORT = 8080
GATEWAY_ADMIN_PORT = 9901
GATEWAY_STATS_PORT = 9902
# The one-shot step that creates the mesh and the first-start TLS certificate.
CERTS_SERVICE = "certs"
ROLES_SQL = "deploy/postgres/roles.sql"
ROLES_SCRIPT = "deploy/postgres/init-roles.sh"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
POSTGRES_PORT = 5432
CLAMD_PORT = 3310
ADDRESS_KEY = re.compile(r"^FLOWDOCK_(?P<what>[A-Z0-9_]+)_ADDRESS$")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|CREDENTIAL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^@\s]+@")


# --------------------------------------------------------------------------------------------------------
# Compose accessors (normalise the short and long syntaxes)
# --------------------------------------------------------------------------------------------------------


def command_of(service: Mapping[str, Any]) -> list[str]:
    raw = service.get("command")
    if raw is None:
        return []
    if isinstance(raw, str):
        return shlex.split(raw)
    return [str(item) for item in raw]


def module_of(service: Mapping[str, Any]) -> str | None:
    """``X`` for a command ``python -m X ...``."""
    cmd = command_of(service)
    if len(cmd) >= 3 and PurePosixPath(cmd[0]).name.startswith("python") and cmd[1] == "-m":
        return cmd[2]
    return None


def depends_of(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    return {str(name): str((spec or {}).get("condition", "service_started")) for name, spec in raw.items()}


def _parse_port(spec: Any) -> tuple[str | None, int | None, int]:
    """(host_ip, published_port, container_port) of a ``ports``/``expose`` entry."""
    if isinstance(spec, dict):
        published = spec.get("published")
        return spec.get("host_ip"), int(published) if published is not None else None, int(spec["target"])
    parts = str(spec).split("/")[0].rsplit(":", 2)
    container = int(parts[-1])
    published = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
    host_ip = parts[0] if len(parts) == 3 else None
    return host_ip, published, container


def published_ports(service: Mapping[str, Any]) -> list[tuple[str | None, int | None, int]]:
    return [_parse_port(spec) for spec in service.get("ports") or []]


def container_ports(service: Mapping[str, Any]) -> set[int]:
    ports = {container for _, _, container in published_ports(service)}
    ports |= {_parse_port(spec)[2] for spec in service.get("expose") or []}
    return ports


def mounts_of(service: Mapping[str, Any]) -> list[tuple[str, str | None, str]]:
    """(type, source, target) with type ``bind``, ``volume`` (named) or ``anonymous``."""
    found: list[tuple[str, str | None, str]] = []
    for spec in service.get("volumes") or []:
        if isinstance(spec, dict):
            source = spec.get("source")
            kind = str(spec.get("type", "volume"))
            found.append((kind if source else "anonymous", source, str(spec["target"])))
            continue
        parts = str(spec).split(":")
        if len(parts) == 1:
            found.append(("anonymous", None, parts[0]))
        else:
            source = parts[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            found.append((kind, source, parts[1]))
    return found


def volume_subpath(service: Mapping[str, Any], target: str) -> tuple[str | None, str | None, bool]:
    """(volume, subpath, read_only) of the long-syntax volume mounted at `target`."""
    for spec in service.get("volumes") or []:
        if isinstance(spec, dict) and str(spec.get("target")) == target:
            sub = (spec.get("volume") or {}).get("subpath")
            return spec.get("source"), str(sub) if sub is not None else None, bool(spec.get("read_only"))
    return None, None, False


def parse_address(value: str) -> tuple[str, int] | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host, int(port)


def gateway_args(service: Mapping[str, Any]) -> dict[str, list[str]]:
    """``--flag value`` / ``--flag=value`` options of the gateway command, every value of repeated flags."""
    args: dict[str, list[str]] = {}
    cmd = command_of(service)
    index = 0
    while index < len(cmd):
        token = cmd[index]
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if not eq and index + 1 < len(cmd):
                index += 1
                value = cmd[index]
            args.setdefault(name, []).append(value)
        index += 1
    return args


def _single_int(args: Mapping[str, list[str]], flag: str) -> int | None:
    values = args.get(flag) or []
    return int(values[-1]) if values and values[-1].isdigit() else None


def grpc_port(service: Mapping[str, Any]) -> int | None:
    value = env_of(service).get("FLOWDOCK_GRPC_PORT", "")
    return int(value) if value.isdigit() else None


def listening_ports(service: Mapping[str, Any]) -> set[int]:
    ports = container_ports(service)
    for key in ("FLOWDOCK_GRPC_PORT", "FLOWDOCK_METRICS_PORT"):
        value = env_of(service).get(key, "")
        if value.isdigit():
            ports.add(int(value))
    return ports


def has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test != ["NONE"]


def healthcheck_text(service: Mapping[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def _flowdock_services(d: Deployment) -> dict[str, dict[str, Any]]:
    """Services that run the FlowDock image (a ``python -m`` command)."""
    return {name: svc for name, svc in services(d).items() if module_of(svc)}


# --------------------------------------------------------------------------------------------------------
# Checks: each returns a list of problems
# --------------------------------------------------------------------------------------------------------


def check_services(d: Deployment) -> list[str]:
    problems: list[str] = []
    svcs = services(d)
    if not svcs:
        return ["compose file defines no services"]
    for missing in sorted(REQUIRED_SERVICES - set(svcs)):
        problems.append(f"required service {missing!r} is not defined")
    images = {
        "postgres": "postgres:16",
        "clamav": "clamav/clamav",
        "prometheus": "prom/prometheus",
        "grafana": "grafana/grafana",
    }
    for name, prefix in images.items():
        if name in svcs and not str(svcs[name].get("image", "")).startswith(prefix):
            problems.append(f"{name}: image should be {prefix}*, got {svcs[name].get('image')!r}")
    one_shot = {
        target
        for svc in svcs.values()
        for target, condition in depends_of(svc).items()
        if condition == "service_completed_successfully"
    }
    for name, svc in svcs.items():
        if name in one_shot:
            continue  # runs to completion before its dependants; restarting it would be wrong
        if svc.get("restart") in (None, "no") and "restart_policy" not in (svc.get("deploy") or {}):
            problems.append(f"{name}: no restart policy")
    flowdock = {name: svc for name, svc in svcs.items() if name in GRPC_SERVICES or name == "gateway"}
    builds = {json.dumps(svc.get("build"), sort_keys=True) for svc in flowdock.values()}
    tags = {svc.get("image") for svc in flowdock.values()}
    if any(not svc.get("build") for svc in flowdock.values()) or len(builds) > 1 or len(tags) > 1:
        problems.append("auth/storage/share/gateway must all build and use the same FlowDock image")
    for name, svc in flowdock.items():
        module = module_of(svc)
        expected = GRPC_SERVICES[name][0] if name in GRPC_SERVICES else "gateway"
        if module != expected or command_of(svc)[3:4] != ["serve"]:
            problems.append(f"{name}: command should be `python -m {expected} serve ...`, got {command_of(svc)}")
    published: dict[int, str] = {}
    for name, svc in svcs.items():
        for _, host_port, _ in published_ports(svc):
            if host_port is not None and host_port in published:
                problems.append(f"host port {host_port} published by both {published[host_port]} and {name}")
            if host_port is not None:
                published[host_port] = name
    for name, port in (("gateway", GATEWAY_HTTP_PORT), ("prometheus", PROMETHEUS_PORT), ("grafana", GRAFANA_PORT)):
        if name in svcs and port not in {c for _, p, c in published_ports(svcs[name]) if p is not None}:
            problems.append(f"{name}: container port {port} is not published")
    for name, svc in svcs.items():
        if name not in ("gateway", "prometheus", "grafana") and published_ports(svc):
            problems.append(f"{name}: publishes ports on the host; keep it on the compose network")
    declared = set((d.compose.get("volumes") or {}).keys())
    for required in ("pgdata", "blobs"):
        if required not in declared:
            problems.append(f"named volume {required!r} is not declared")
    for name, svc in svcs.items():
        for kind, source, _ in mounts_of(svc):
            if kind == "volume" and source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared under top-level volumes")
    if "postgres" in svcs and ("volume", "pgdata", "/var/lib/postgresql/data") not in mounts_of(svcs["postgres"]):
        problems.append("postgres: pgdata must be mounted at /var/lib/postgresql/data")
    return problems


def check_depends_on(d: Deployment) -> list[str]:
    problems: list[str] = []
    svcs = services(d)
    for name, svc in svcs.items():
        for target, condition in depends_of(svc).items():
            if target not in svcs:
                problems.append(f"{name}: depends_on undefined service {target!r}")
            elif target == name:
                problems.append(f"{name}: depends on itself")
            elif condition == "service_healthy" and not has_healthcheck(svcs[target]):
                problems.append(f"{name}: waits for {target} to be healthy but {target} has no healthcheck")
            if condition not in DEPENDS_CONDITIONS:
                problems.append(f"{name}: unknown depends_on condition {condition!r} for {target}")
        if "FLOWDOCK_DB_URL" in env_of(svc) and depends_of(svc).get("postgres") != "service_healthy":
            problems.append(f"{name}: uses the database but does not wait for postgres to be healthy")
    if "gateway" in svcs:
        gateway_deps = depends_of(svcs["gateway"])
        for upstream in gateway_args(svcs["gateway"]).get("--upstream", []):
            address = parse_address(upstream.partition("=")[2])
            if address and gateway_deps.get(address[0]) != "service_healthy":
                problems.append(f"gateway: does not wait for upstream {address[0]!r} to be healthy")
    problems.extend(_dependency_cycles(svcs))
    return problems


def _dependency_cycles(svcs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    graph = {name: [t for t in depends_of(svc) if t in svcs and t != name] for name, svc in svcs.items()}
    state: dict[str, str] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycle = [*path[path.index(nxt) :], nxt]
                cycles.append("depends_on cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    return cycles


def check_healthchecks(d: Deployment) -> list[str]:
    problems: list[str] = []
    svcs = services(d)
    for name in [*GRPC_SERVICES, "postgres", "gateway", "clamav"]:
        if name in svcs and not has_healthcheck(svcs[name]):
            problems.append(f"{name}: no healthcheck")
    for name in GRPC_SERVICES:
        if name in svcs and has_healthcheck(svcs[name]):
            text = healthcheck_text(svcs[name])
            port = grpc_port(svcs[name])
            if "grpc_health" not in text or ("FLOWDOCK_GRPC_PORT" not in text and f":{port}" not in text):
                problems.append(f"{name}: healthcheck should query grpc.health.v1 on the service's gRPC port")
            if "ssl_channel_credentials" not in text or "insecure_channel" in text:
                problems.append(f"{name}: healthcheck must speak mutual TLS (the port accepts nothing else)")
    if "postgres" in svcs and "pg_isready" not in healthcheck_text(svcs["postgres"]):
        problems.append("postgres: healthcheck should use pg_isready")
    if "gateway" in svcs and has_healthcheck(svcs["gateway"]):
        admin = _single_int(gateway_args(svcs["gateway"]), "--admin-port")
        if f":{admin}/" not in healthcheck_text(svcs["gateway"]):
            problems.append(f"gateway: healthcheck does not probe the Envoy admin port {admin}")
    return problems


# Restart policies under which Docker restarts a container whose process died (kill -9 exits 137: non-zero).
RESTARTING_POLICIES = re.compile(r"^(always|unless-stopped|on-failure(:\d+)?)$")


def check_supervision(d: Deployment) -> list[str]:
    """What `flowdock up`'s supervisor does, compose does with these (issue 18): every long-running service is
    restarted when it dies and declares a healthcheck (dependants wait for it; `docker compose ps` shows it)."""
    problems: list[str] = []
    svcs = services(d)
    one_shot = {
        target
        for svc in svcs.values()
        for target, condition in depends_of(svc).items()
        if condition == "service_completed_successfully"
    }
    for name, svc in svcs.items():
        if name in one_shot:
            continue
        policy = svc.get("restart") or (svc.get("deploy") or {}).get("restart_policy", {}).get("condition")
        if not RESTARTING_POLICIES.match(str(policy or "")) and policy != "any":
            problems.append(f"{name}: restart policy {policy!r} does not restart it when it dies")
        if not has_healthcheck(svc):
            problems.append(f"{name}: no healthcheck")
    return problems


def check_referenced_files(d: Deployment) -> list[str]:
    problems: list[str] = []
    for name, svc in services(d).items():
        build = svc.get("build")
        if build:
            context = build if isinstance(build, str) else str(build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else str(build.get("dockerfile", "Dockerfile"))
            if not (d.repo / context).is_dir():
                problems.append(f"{name}: build context {context!r} does not exist")
            elif not (d.repo / context / dockerfile).is_file():
                problems.append(f"{name}: {dockerfile!r} does not exist in build context {context!r}")
        for kind, source, target in mounts_of(svc):
            if kind == "bind" and source is not None and not (d.repo / source).exists():
                problems.append(f"{name}: mounted file {source!r} (-> {target}) does not exist")
        env_files = svc.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            path = entry if isinstance(entry, str) else entry.get("path")
            required = True if isinstance(entry, str) else entry.get("required", True)
            if required and not (d.repo / str(path)).is_file():
                problems.append(f"{name}: env_file {path!r} does not exist")
    return problems


def check_service_env(d: Deployment) -> list[str]:
    problems: list[str] = []
    svcs = services(d)
    for name, (_, grpc, metrics) in GRPC_SERVICES.items():
        if name not in svcs:
            continue
        env = env_of(svcs[name])
        expected = {
            "FLOWDOCK_LISTEN_HOST": "0.0.0.0",
            "FLOWDOCK_GRPC_PORT": str(grpc),
            "FLOWDOCK_METRICS_PORT": str(metrics),
            "FLOWDOCK_LOG_FORMAT": "json",
        }
        for key, value in expected.items():
            if env.get(key) != value:
                problems.append(f"{name}: {key} should be {value!r}, got {env.get(key)!r}")
        if not env.get("FLOWDOCK_DB_URL"):
            problems.append(f"{name}: FLOWDOCK_DB_URL is not set")
        module = GRPC_SERVICES[name][0]
        mesh_files = {
            "FLOWDOCK_MESH_CA_FILE": f"{MESH_MOUNT}/ca.pem",
            "FLOWDOCK_MESH_CERT_FILE": f"{MESH_MOUNT}/{module}.pem",
            "FLOWDOCK_MESH_KEY_FILE": f"{MESH_MOUNT}/{module}.key",
        }
        for key, value in mesh_files.items():
            if env.get(key) != value:
                problems.append(f"{name}: {key} should be {value!r}, got {env.get(key)!r}")
        if env.get("FLOWDOCK_MESH_TLS", "true").lower() in ("0", "false", "no", "off"):
            problems.append(f"{name}: FLOWDOCK_MESH_TLS must stay on")
        problems += _mesh_mount_problems(svcs, name, module)
        for key in sorted(REQUIRED_ADDRESSES[name] - set(env)):
            problems.append(f"{name}: {key} is not set")
    if "storage" in svcs:
        data_dir = env_of(svcs["storage"]).get("FLOWDOCK_DATA_DIR")
        if not any(kind == "volume" and target == data_dir for kind, _, target in mounts_of(svcs["storage"])):
            problems.append(f"storage: FLOWDOCK_DATA_DIR {data_dir!r} is not a named-volume mount")
    return problems


def _mesh_mount_problems(svcs: Mapping[str, Mapping[str, Any]], name: str, identity: str) -> list[str]:
    """The container mounts its own folder of the mesh volume, read-only, and waits for the certs step."""
    volume, subpath, read_only = volume_subpath(svcs[name], MESH_MOUNT)
    problems: list[str] = []
    if volume != "mesh" or subpath != identity or not read_only:
        problems.append(f"{name}: must mount volume 'mesh' subpath {identity!r} read-only at {MESH_MOUNT}")
    if depends_of(svcs[name]).get(CERTS_SERVICE) != "service_completed_successfully":
        problems.append(f"{name}: must wait for {CERTS_SERVICE} to complete (service_completed_successfully)")
    return problems


def check_mesh(d: Deployment) -> list[str]:
    """The certs step creates the mesh (split per identity) and the edge certificate in the volumes mounted."""
    svcs = services(d)
    certs = svcs.get(CERTS_SERVICE)
    if certs is None:
        return [f"{CERTS_SERVICE} service is not defined"]
    text = " ".join(command_of(certs))
    problems: list[str] = []
    if "flowdock_kernel.mesh init /mesh --split" not in text:
        problems.append(f"{CERTS_SERVICE}: must run `python -m flowdock_kernel.mesh init /mesh --split`")
    if "flowdock_kernel.mesh edge /tls" not in text:
        problems.append(f"{CERTS_SERVICE}: must create the first-start TLS certificate (`mesh edge /tls`)")
    mounts = {(kind, source, target) for kind, source, target in mounts_of(certs)}
    for volume, target in (("mesh", "/mesh"), ("tls", "/tls")):
        if ("volume", volume, target) not in mounts:
            problems.append(f"{CERTS_SERVICE}: volume {volume!r} is not mounted at {target}")
    return problems


def check_addresses(d: Deployment) -> list[str]:
    """Every FLOWDOCK_*_ADDRESS points at a defined service, the right one, on a port it listens on."""
    problems: list[str] = []
    svcs = services(d)
    for name, svc in svcs.items():
        for key, value in env_of(svc).items():
            match = ADDRESS_KEY.match(key)
            if not match:
                continue
            address = parse_address(value)
            if address is None:
                problems.append(f"{name}: {key}={value!r} is not host:port")
                continue
            host, port = address
            target = svcs.get(host)
            if target is None:
                problems.append(f"{name}: {key} points at undefined service {host!r}")
                continue
            what = match.group("what").lower()
            expected_module = f"{what}_svc"
            if expected_module in {module for module, _, _ in GRPC_SERVICES.values()}:
                if module_of(target) != expected_module:
                    problems.append(f"{name}: {key} points at {host!r}, which does not run {expected_module}")
                if port != grpc_port(target):
                    problems.append(f"{name}: {key} port {port} != {host} FLOWDOCK_GRPC_PORT {grpc_port(target)}")
            elif what == "clamd" and (
                not str(target.get("image", "")).startswith("clamav/clamav") or port != CLAMD_PORT
            ):
                problems.append(f"{name}: {key}={value!r} should point at the clamav service on {CLAMD_PORT}")
            if port not in listening_ports(target):
                problems.append(f"{name}: {key} port {port} is not a port {host!r} listens on")
    return problems


def check_database_url(d: Deployment) -> list[str]:
    """Each service logs in as its own role (`<db>_<service>`, created by deploy/postgres/roles.sql with the
    password the postgres service passes to init-roles.sh), never as the superuser."""
    problems: list[str] = []
    svcs = services(d)
    users: dict[str, str] = {}
    for name, svc in svcs.items():
        url = env_of(svc).get("FLOWDOCK_DB_URL")
        if url is None:
            continue
        parts = urlsplit(url)
        db = svcs.get(parts.hostname or "")
        if not parts.scheme.startswith("postgresql"):
            problems.append(f"{name}: FLOWDOCK_DB_URL is not a postgresql:// URL")
        if db is None or not str(db.get("image", "")).startswith("postgres"):
            problems.append(f"{name}: FLOWDOCK_DB_URL host {parts.hostname!r} is not the postgres service")
            continue
        db_env = env_of(db)
        superuser = db_env.get("POSTGRES_USER", "postgres")
        expected_user = f"{parts.path.lstrip('/')}_{name}"
        if parts.port != POSTGRES_PORT:
            problems.append(f"{name}: FLOWDOCK_DB_URL port does not match the postgres service")
        if parts.username == superuser:
            problems.append(f"{name}: FLOWDOCK_DB_URL logs in as the superuser {superuser!r}; use its own role")
        elif parts.username != expected_user:
            problems.append(f"{name}: FLOWDOCK_DB_URL user should be its own role {expected_user!r}")
        if parts.path.lstrip("/") != "flowdock":
            problems.append(f"{name}: FLOWDOCK_DB_URL database prefix should be 'flowdock' (roles.sql prefix)")
        if parts.password != db_env.get(f"FLOWDOCK_DB_PASSWORD_{name.upper()}"):
            problems.append(f"{name}: FLOWDOCK_DB_URL password does not match the postgres service")
        if parts.username in users.values():
            problems.append(f"{name}: shares its database role with another service")
        users[name] = str(parts.username)
    if "postgres" in svcs:
        mounted = {(source, target) for kind, source, target in mounts_of(svcs["postgres"]) if kind == "bind"}
        if not any(
            src == f"./{ROLES_SCRIPT}" and tgt.startswith("/docker-entrypoint-initdb.d/") for src, tgt in mounted
        ):
            problems.append(f"postgres: {ROLES_SCRIPT} is not mounted in /docker-entrypoint-initdb.d")
        if (f"./{ROLES_SQL}", "/flowdock/roles.sql") not in mounted:
            problems.append(f"postgres: {ROLES_SQL} is not mounted at /flowdock/roles.sql")
    return problems


def check_gateway(d: Deployment) -> list[str]:
    problems: list[str] = []
    svcs = services(d)
    if "gateway" not in svcs:
        return ["gateway service is not defined"]
    args = gateway_args(svcs["gateway"])
    if args.get("--listen-host") != ["0.0.0.0"]:
        problems.append(f"gateway: --listen-host should be 0.0.0.0, got {args.get('--listen-host')}")
    # The admin interface can quit Envoy and dump its config: loopback inside the container only.
    if args.get("--admin-host") != ["127.0.0.1"]:
        problems.append(f"gateway: --admin-host should be 127.0.0.1 (loopback), got {args.get('--admin-host')}")
    if _single_int(args, "--stats-port") != GATEWAY_STATS_PORT:
        problems.append(f"gateway: --stats-port should be {GATEWAY_STATS_PORT} (Prometheus' view of the admin)")
    if args.get("--tls-cert") != ["/tls/cert.pem"] or args.get("--tls-key") != ["/tls/key.pem"]:
        problems.append("gateway: TLS must be on (--tls-cert /tls/cert.pem --tls-key /tls/key.pem)")
    elif not any(target == "/tls" for _, _, target in mounts_of(svcs["gateway"])):
        problems.append("gateway: nothing is mounted at /tls")
    mesh_flags = {"--mesh-ca": "ca.pem", "--mesh-cert": "gateway.pem", "--mesh-key": "gateway.key"}
    for flag, file in mesh_flags.items():
        if args.get(flag) != [f"{MESH_MOUNT}/{file}"]:
            problems.append(f"gateway: {flag} should be {MESH_MOUNT}/{file}")
    problems += _mesh_mount_problems(svcs, "gateway", "gateway")
    if _single_int(args, "--port") != GATEWAY_HTTP_PORT:
        problems.append(f"gateway: --port should be {GATEWAY_HTTP_PORT}")
    if _single_int(args, "--admin-port") != GATEWAY_ADMIN_PORT:
        problems.append(f"gateway: --admin-port should be {GATEWAY_ADMIN_PORT}")
    upstreams: dict[str, str] = {}
    for spec in args.get("--upstream", []):
        label, _, target = spec.partition("=")
        if label in upstreams:
            problems.append(f"gateway: upstream {label!r} given twice")
        upstreams[label] = target
    if set(upstreams) != set(DB_SERVICES):
        problems.append(f"gateway: upstreams {sorted(upstreams)} != {sorted(DB_SERVICES)}")
    for label, target in upstreams.items():
        address = parse_address(target)
        if address is None:
            problems.append(f"gateway: upstream {label}={target!r} is not host:port")
            continue
        host, port = address
        if host not in svcs:
            problems.append(f"gateway: upstream {label} points at undefined service {host!r}")
            continue
        if label in DB_SERVICES and module_of(svcs[host]) != DB_SERVICES[label][0]:
            problems.append(f"gateway: upstream {label} points at {host!r}, which does not run {label}_svc")
        if port != grpc_port(svcs[host]):
            problems.append(f"gateway: upstream {label} port {port} != {host} FLOWDOCK_GRPC_PORT")
    return problems


def prometheus_targets(prometheus: Mapping[str, Any]) -> set[tuple[str, int, str]]:
    """(host, port, metrics_path) of every static scrape target."""
    found: set[tuple[str, int, str]] = set()
    for job in prometheus.get("scrape_configs") or []:
        path = str(job.get("metrics_path", "/metrics"))
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                address = parse_address(str(target))
                found.add((address[0], address[1], path) if address else (str(target), -1, path))
    return found


def check_prometheus(d: Deployment) -> list[str]:
    problems: list[str] = []
    svcs = services(d)
    expected: set[tuple[str, int, str]] = set()
    for name, svc in svcs.items():
        metrics = env_of(svc).get("FLOWDOCK_METRICS_PORT", "")
        if metrics.isdigit():
            expected.add((name, int(metrics), "/metrics"))
    if "gateway" in svcs:
        stats = _single_int(gateway_args(svcs["gateway"]), "--stats-port")
        expected.add(("gateway", stats if stats is not None else -1, "/stats/prometheus"))
    actual = prometheus_targets(d.prometheus)
    for host, port, path in sorted(expected - actual):
        problems.append(f"prometheus.yml: {host}:{port}{path} is not scraped")
    for host, port, path in sorted(actual - expected):
        problems.append(f"prometheus.yml: target {host}:{port}{path} is not a metrics endpoint of the stack")
    if "prometheus" in svcs:
        prom = svcs["prometheus"]
        config_flags = [arg for arg in command_of(prom) if arg.startswith("--config.file=")]
        config_path = config_flags[-1].partition("=")[2] if config_flags else "/etc/prometheus/prometheus.yml"
        mounted = {target: source for kind, source, target in mounts_of(prom) if kind == "bind" and source is not None}
        source = mounted.get(config_path)
        if source is None or (d.repo / source).resolve() != (d.repo / PROMETHEUS_NAME).resolve():
            problems.append(f"prometheus: {PROMETHEUS_NAME} is not mounted at its --config.file {config_path}")
    return problems


# --------------------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def _exec_or_words(args: str) -> list[str]:
    if args.startswith("["):
        return [str(item) for item in json.loads(args)]
    return shlex.split(args)


def copy_sources(text: str) -> Iterator[tuple[str, list[str]]]:
    """(keyword, sources) of every COPY/ADD from the build context (``--from`` copies are skipped)."""
    for instruction in dockerfile_instructions(text):
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        words = _exec_or_words(instruction.args)
        flags = [word for word in words if word.startswith("--")]
        paths = [word for word in words if not word.startswith("--")]
        if any(flag.startswith("--from") for flag in flags) or len(paths) < 2:
            continue
        yield instruction.keyword, paths[:-1]


def _stages(text: str) -> list[tuple[str, list[Instruction]]]:
    stages: list[tuple[str, list[Instruction]]] = []
    for instruction in dockerfile_instructions(text):
        if instruction.keyword == "FROM":
            stages.append((instruction.args, []))
        elif stages:
            stages[-1][1].append(instruction)
    return stages


def _stage_text(instructions: list[Instruction]) -> str:
    return "\n".join(f"{instruction.keyword} {instruction.args}" for instruction in instructions)


def _env_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    words = shlex.split(instruction.args)
    if not words:
        return []
    if instruction.keyword == "ENV" and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(word.partition("=")[0], word.partition("=")[2]) for word in words]


def check_dockerfile(d: Deployment) -> list[str]:
    problems: list[str] = []
    stages = _stages(d.dockerfile)
    if not stages:
        return ["Dockerfile has no FROM"]
    names: set[str] = set()
    for from_args, _ in stages:
        words = [word for word in from_args.split() if not word.startswith("--")]
        image = words[0] if words else ""
        if image not in names and not re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image):
            problems.append(f"Dockerfile: base image {image!r} is not python:3.11-slim")
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    final = stages[-1][1]
    users = [instruction.args.split(":")[0] for instruction in final if instruction.keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("Dockerfile: the final stage does not switch to a non-root USER")
    volumes = [i for i in final if i.keyword == "VOLUME"]
    if not any("/data" in _exec_or_words(i.args) for i in volumes):
        problems.append("Dockerfile: the final stage does not declare VOLUME /data")
    installs = [i.args for stage in stages for i in stage[1] if i.keyword == "RUN" and "pip install" in i.args]
    if not any(_is_pinned_install(args) for args in installs):
        problems.append("Dockerfile: no `pip install --no-cache-dir -c constraints.txt .`")
    copied = {source for _, sources in copy_sources(d.dockerfile) for source in sources}
    if GENERATED_PACKAGE not in copied:
        problems.append(f"Dockerfile: {GENERATED_PACKAGE} (stubs and the gateway's descriptor set) is not copied")
    for required in ("pyproject.toml", "constraints.txt"):
        if required not in copied:
            problems.append(f"Dockerfile: {required} is not copied into the build")
    for stage in stages:
        for instruction in stage[1]:
            if instruction.keyword in ("ENV", "ARG"):
                for key, value in _env_pairs(instruction):
                    if SECRET_NAME.search(key) or URL_WITH_PASSWORD.search(value):
                        problems.append(f"Dockerfile: {instruction.keyword} {key} looks like a baked-in secret")
    for source in copied:
        name = PurePosixPath(source).name
        if name.startswith(".env") or name.endswith((".pem", ".key")):
            problems.append(f"Dockerfile: copies secret-looking file {source!r}")
    return problems


def _is_pinned_install(run_args: str) -> bool:
    for command in re.split(r"&&|;|\|\|", run_args):
        words = shlex.split(command)
        if "pip" not in [PurePosixPath(word).name for word in words] or "install" not in words:
            continue
        rest = words[words.index("install") + 1 :]
        pairs = list(itertools.pairwise(rest))
        constrained = (
            any(flag in ("-c", "--constraint") and value == "constraints.txt" for flag, value in pairs)
            or "--constraint=constraints.txt" in rest
        )
        if "--no-cache-dir" in rest and constrained and "." in rest:
            return True
    return False


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/").rstrip("/")
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out)


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore excludes ``path`` (or a parent directory of it); last matching pattern wins."""
    pure = PurePosixPath(path.lstrip("./") if path.startswith("./") else path)
    candidates = [str(pure), *(str(parent) for parent in pure.parents if str(parent) != ".")]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex(pattern[1:] if negate else pattern)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def check_dockerfile_sources(d: Deployment) -> list[str]:
    """Every COPY/ADD source exists in the repo and is not excluded by .dockerignore."""
    problems: list[str] = []
    for keyword, sources in copy_sources(d.dockerfile):
        for source in sources:
            if any(char in source for char in "*?["):
                if not list(d.repo.glob(source)):
                    problems.append(f"Dockerfile: {keyword} {source!r} matches nothing in the repo")
            elif not (d.repo / source).exists():
                problems.append(f"Dockerfile: {keyword} source {source!r} does not exist in the repo")
            if is_dockerignored(source, d.dockerignore):
                problems.append(f"Dockerfile: {keyword} source {source!r} is excluded by .dockerignore")
    return problems


def check_dockerignore(d: Deployment) -> list[str]:
    problems: list[str] = []
    for path in (
        ".venv",
        ".git",
        "data",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        ".env",
    ):
        if not is_dockerignored(path, d.dockerignore):
            problems.append(f".dockerignore: {path} is not excluded")
    for path in ("auth_svc/__pycache__/x.pyc", "clients/web/node_modules/x/index.js"):
        if not is_dockerignored(path, d.dockerignore):
            problems.append(f".dockerignore: nested {path} is not excluded")
    return problems


def check_service_modules(d: Deployment) -> list[str]:
    """Each ``python -m X`` is a package directory with __main__.py, copied by the Dockerfile and packaged."""
    problems: list[str] = []
    copied_roots = {PurePosixPath(source).parts[0] for _, sources in copy_sources(d.dockerfile) for source in sources}
    find = d.pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    include = find.get("include") or ["*"]
    for name, svc in _flowdock_services(d).items():
        module = module_of(svc) or ""
        if not (d.repo / module / "__main__.py").is_file():
            problems.append(f"{name}: `python -m {module}` needs {module}/__main__.py in the repo")
        if module not in copied_roots:
            problems.append(f"{name}: the Dockerfile does not copy {module}/")
        if not any(fnmatchcase(module, pattern) for pattern in include):
            problems.append(f"{name}: {module} is not included in the setuptools packages of pyproject.toml")
    return problems


CHECKS: dict[str, Callable[[Deployment], list[str]]] = {
    "services": check_services,
    "depends_on": check_depends_on,
    "healthchecks": check_healthchecks,
    "supervision": check_supervision,
    "referenced_files": check_referenced_files,
    "service_env": check_service_env,
    "addresses": check_addresses,
    "database_url": check_database_url,
    "gateway": check_gateway,
    "mesh": check_mesh,
    "prometheus": check_prometheus,
    "dockerfile": check_dockerfile,
    "dockerfile_sources": check_dockerfile_sources,
    "dockerignore": check_dockerignore,
    "service_modules": check_service_modules,
}


# --------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Deployment:
    return load_deployment()


def test_compose_parses() -> None:
    raw = yaml.safe_load((REPO / COMPOSE_NAME).read_text())
    assert isinstance(raw, dict)
    assert isinstance(raw.get("services"), dict)
    assert set(raw["services"]) >= REQUIRED_SERVICES


@pytest.mark.parametrize("check", list(CHECKS))
def test_real_files_have_no_problems(real: Deployment, check: str) -> None:
    assert CHECKS[check](real) == []


def test_db_passwords_come_from_one_variable_per_role() -> None:
    env = {
        "FLOWDOCK_DB_PASSWORD": "super-Pw",
        "FLOWDOCK_DB_PASSWORD_AUTH": "auth-Pw",
        "FLOWDOCK_DB_PASSWORD_STORAGE": "storage-Pw",
        "FLOWDOCK_DB_PASSWORD_SHARE": "share-Pw",
        "FLOWDOCK_DB_PASSWORD_DAV": "dav-Pw",
    }
    deployment = load_deployment(env=env)
    svcs = services(deployment)
    assert env_of(svcs["postgres"])["POSTGRES_PASSWORD"] == "super-Pw"
    for name in DB_SERVICES:
        url = urlsplit(env_of(svcs[name])["FLOWDOCK_DB_URL"])
        assert (url.username, url.password) == (f"flowdock_{name}", f"{name}-Pw")
        assert env_of(svcs["postgres"])[f"FLOWDOCK_DB_PASSWORD_{name.upper()}"] == f"{name}-Pw"
    assert check_database_url(deployment) == []
    raw = (REPO / COMPOSE_NAME).read_text()
    for suffix in ("", "_AUTH", "_STORAGE", "_SHARE", "_DAV"):
        assert f"${{FLOWDOCK_DB_PASSWORD{suffix}:-" in raw


def test_interpolation() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d}/${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}/$SET/$$", env) == "v/d/d//v/$"
    assert interpolate("${SET:+alt}${UNSET:+alt}", env) == "alt"
    with pytest.raises(ValueError, match="UNSET"):
        interpolate("${UNSET:?needed}", env)


def test_dockerignore_matching() -> None:
    patterns = ["data", "**/__pycache__", "*.egg-info", "docs", "!docs/keep.md"]
    assert is_dockerignored("data/blob", patterns)
    assert not is_dockerignored("storage_svc/data", patterns)
    assert is_dockerignored("a/b/__pycache__/c.pyc", patterns)
    assert is_dockerignored("flowdock.egg-info", patterns)
    assert is_dockerignored("docs/other.md", patterns)
    assert not is_dockerignored("docs/keep.md", patterns)


# ---- broken copies: every mutation must be reported by the named check ---------------------------------


def _svc(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def _set_env(name: str, key: str, value: str) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        _svc(compose, name)["environment"][key] = value

    return mutate


def _replace_in_command(name: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        service = _svc(compose, name)
        service["command"] = [new if arg == old else arg for arg in command_of(service)]

    return mutate


def _compose_edit(func: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        func(compose)

    return mutate


COMPOSE_MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "storage never restarted",
        _compose_edit(lambda c: _svc(c, "storage").update({"restart": "no"})),
        "supervision",
        "storage: restart policy 'no' does not restart it",
    ),
    (
        "gateway restart policy missing",
        _compose_edit(lambda c: _svc(c, "gateway").pop("restart")),
        "supervision",
        "gateway: restart policy None",
    ),
    (
        "prometheus without healthcheck",
        _compose_edit(lambda c: _svc(c, "prometheus").pop("healthcheck")),
        "supervision",
        "prometheus: no healthcheck",
    ),
    (
        "postgres healthcheck disabled",
        _compose_edit(lambda c: _svc(c, "postgres").update({"healthcheck": {"disable": True}})),
        "supervision",
        "postgres: no healthcheck",
    ),
    (
        "depends on undefined service",
        _compose_edit(lambda c: _svc(c, "storage")["depends_on"].update({"clamd": {"condition": "service_started"}})),
        "depends_on",
        "undefined service 'clamd'",
    ),
    (
        "healthy wait on service without healthcheck",
        _compose_edit(lambda c: _svc(c, "auth").pop("healthcheck")),
        "depends_on",
        "auth has no healthcheck",
    ),
    (
        "grpc service without healthcheck",
        _compose_edit(lambda c: _svc(c, "share").pop("healthcheck")),
        "healthchecks",
        "share: no healthcheck",
    ),
    (
        "healthcheck not grpc",
        _compose_edit(lambda c: _svc(c, "auth").update({"healthcheck": {"test": ["CMD", "true"]}})),
        "healthchecks",
        "auth: healthcheck should query grpc.health.v1",
    ),
    (
        "dependency cycle",
        _compose_edit(lambda c: _svc(c, "auth")["depends_on"].update({"storage": {"condition": "service_healthy"}})),
        "depends_on",
        "cycle",
    ),
    (
        "service does not wait for postgres",
        _compose_edit(lambda c: _svc(c, "share")["depends_on"].pop("postgres")),
        "depends_on",
        "share: uses the database",
    ),
    (
        "gateway upstream wrong port",
        _replace_in_command("gateway", "storage=storage:50052", "storage=storage:50053"),
        "gateway",
        "upstream storage port 50053",
    ),
    (
        "gateway upstream unknown host",
        _replace_in_command("gateway", "share=share:50053", "share=sharing:50053"),
        "gateway",
        "undefined service 'sharing'",
    ),
    (
        "gateway upstream swapped service",
        _replace_in_command("gateway", "auth=auth:50051", "auth=share:50053"),
        "gateway",
        "does not run auth_svc",
    ),
    (
        "grpc port changed without the gateway",
        _set_env("storage", "FLOWDOCK_GRPC_PORT", "50062"),
        "gateway",
        "upstream storage port 50052",
    ),
    (
        "grpc port changed without the addresses",
        _set_env("auth", "FLOWDOCK_GRPC_PORT", "50061"),
        "addresses",
        "FLOWDOCK_AUTH_ADDRESS port 50051",
    ),
    (
        "address points at wrong service",
        _set_env("storage", "FLOWDOCK_AUTH_ADDRESS", "share:50053"),
        "addresses",
        "does not run auth_svc",
    ),
    (
        "address points at undefined service",
        _set_env("share", "FLOWDOCK_AUTH_ADDRESS", "authsvc:50051"),
        "addresses",
        "undefined service 'authsvc'",
    ),
    (
        "clamd address wrong port",
        _set_env("storage", "FLOWDOCK_STORAGE_CLAMD_ADDRESS", "clamav:3311"),
        "addresses",
        "FLOWDOCK_STORAGE_CLAMD_ADDRESS",
    ),
    (
        "required address missing",
        _compose_edit(lambda c: _svc(c, "storage")["environment"].pop("FLOWDOCK_SHARE_ADDRESS")),
        "service_env",
        "storage: FLOWDOCK_SHARE_ADDRESS is not set",
    ),
    (
        "listen host not 0.0.0.0",
        _set_env("share", "FLOWDOCK_LISTEN_HOST", "127.0.0.1"),
        "service_env",
        "FLOWDOCK_LISTEN_HOST",
    ),
    (
        "data dir not on the volume",
        _set_env("storage", "FLOWDOCK_DATA_DIR", "/var/blobs"),
        "service_env",
        "FLOWDOCK_DATA_DIR",
    ),
    (
        "metrics port changed without prometheus.yml",
        _set_env("auth", "FLOWDOCK_METRICS_PORT", "9111"),
        "prometheus",
        "auth:9111/metrics is not scraped",
    ),
    (
        "gateway stats port changed without prometheus.yml",
        _replace_in_command("gateway", "9902", "9903"),
        "prometheus",
        "gateway:9903/stats/prometheus is not scraped",
    ),
    (
        "envoy admin on every interface",
        _replace_in_command("gateway", "127.0.0.1", "0.0.0.0"),
        "gateway",
        "--admin-host should be 127.0.0.1",
    ),
    (
        "gateway without TLS",
        _compose_edit(
            lambda c: _svc(c, "gateway").update(
                {"command": [a for a in command_of(_svc(c, "gateway")) if not a.startswith(("--tls", "/tls"))]}
            )
        ),
        "gateway",
        "TLS must be on",
    ),
    (
        "gateway mounts another identity",
        _compose_edit(lambda c: _svc(c, "gateway")["volumes"][0]["volume"].update({"subpath": "auth_svc"})),
        "gateway",
        "subpath 'gateway'",
    ),
    (
        "service given another service's key",
        _set_env("storage", "FLOWDOCK_MESH_KEY_FILE", "/mesh/auth_svc.key"),
        "service_env",
        "FLOWDOCK_MESH_KEY_FILE",
    ),
    (
        "mesh tls switched off",
        _set_env("share", "FLOWDOCK_MESH_TLS", "off"),
        "service_env",
        "FLOWDOCK_MESH_TLS must stay on",
    ),
    (
        "service does not wait for the certs step",
        _compose_edit(lambda c: _svc(c, "auth")["depends_on"].pop("certs")),
        "service_env",
        "must wait for certs",
    ),
    (
        "plaintext healthcheck",
        _compose_edit(
            lambda c: _svc(c, "auth").update(
                {
                    "healthcheck": {
                        "test": ["CMD", "python", "-c", "grpc_health grpc.insecure_channel FLOWDOCK_GRPC_PORT"]
                    }
                }
            )
        ),
        "healthchecks",
        "auth: healthcheck must speak mutual TLS",
    ),
    (
        "certs step does not split the mesh",
        _compose_edit(
            lambda c: _svc(c, "certs").update({"command": ["sh", "-c", "python -m flowdock_kernel.mesh init /mesh"]})
        ),
        "mesh",
        "init /mesh --split",
    ),
    (
        "prometheus config mounted elsewhere",
        _compose_edit(
            lambda c: _svc(c, "prometheus").update({"volumes": ["./deploy/prometheus/prometheus.yml:/etc/prom.yml:ro"]})
        ),
        "prometheus",
        "is not mounted at its --config.file",
    ),
    (
        "mounted file missing",
        _compose_edit(
            lambda c: _svc(c, "prometheus").update({"volumes": ["./deploy/prom.yml:/etc/prometheus/prometheus.yml:ro"]})
        ),
        "referenced_files",
        "'./deploy/prom.yml'",
    ),
    (
        "build context dockerfile missing",
        _compose_edit(lambda c: _svc(c, "auth").update({"build": {"context": ".", "dockerfile": "Nope"}})),
        "referenced_files",
        "'Nope' does not exist",
    ),
    (
        "service role password not passed to postgres",
        _compose_edit(lambda c: _svc(c, "postgres")["environment"].update({"FLOWDOCK_DB_PASSWORD_SHARE": "other"})),
        "database_url",
        "share: FLOWDOCK_DB_URL password does not match",
    ),
    (
        "service logs in as the superuser",
        _set_env("auth", "FLOWDOCK_DB_URL", "postgresql://flowdock:flowdock@postgres:5432/flowdock"),
        "database_url",
        "logs in as the superuser",
    ),
    (
        "service uses another service's role",
        _set_env("share", "FLOWDOCK_DB_URL", "postgresql://flowdock_auth:flowdock-share@postgres:5432/flowdock"),
        "database_url",
        "user should be its own role 'flowdock_share'",
    ),
    (
        "roles init script not mounted",
        _compose_edit(lambda c: _svc(c, "postgres").update({"volumes": ["pgdata:/var/lib/postgresql/data"]})),
        "database_url",
        "init-roles.sh is not mounted",
    ),
    (
        "db host wrong",
        _set_env("auth", "FLOWDOCK_DB_URL", "postgresql://flowdock_auth:flowdock-auth@db:5432/flowdock"),
        "database_url",
        "host 'db'",
    ),
    (
        "named volume not declared",
        _compose_edit(lambda c: c["volumes"].pop("blobs")),
        "services",
        "'blobs'",
    ),
    (
        "required service missing",
        _compose_edit(lambda c: c["services"].pop("clamav")),
        "services",
        "required service 'clamav'",
    ),
    (
        "no restart policy",
        _compose_edit(lambda c: _svc(c, "gateway").pop("restart")),
        "services",
        "gateway: no restart policy",
    ),
    (
        "gateway not published",
        _compose_edit(lambda c: _svc(c, "gateway").pop("ports")),
        "services",
        "gateway: container port 8080",
    ),
    (
        "internal service published",
        _compose_edit(lambda c: _svc(c, "postgres").update({"ports": ["5432:5432"]})),
        "services",
        "postgres: publishes ports",
    ),
    (
        "service runs a different image",
        _compose_edit(lambda c: _svc(c, "share").update({"image": "flowdock:other"})),
        "services",
        "same FlowDock image",
    ),
    (
        "service runs the wrong module",
        _replace_in_command("share", "share_svc", "storage_svc"),
        "services",
        "share: command should be",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "check", "expected"),
    [pytest.param(m, c, e, id=i) for i, m, c, e in COMPOSE_MUTATIONS],
)
def test_broken_compose_is_reported(
    real: Deployment, mutate: Callable[[dict[str, Any]], None], check: str, expected: str
) -> None:
    compose = unaliased(real.compose)
    mutate(compose)
    problems = CHECKS[check](dataclasses.replace(real, compose=compose))
    assert any(expected in problem for problem in problems), problems


def _retarget(job: str, target: str) -> Callable[[dict[str, Any]], None]:
    def mutate(prometheus: dict[str, Any]) -> None:
        for scrape in prometheus["scrape_configs"]:
            if scrape["job_name"] == job:
                scrape["static_configs"] = [{"targets": [target]}]

    return mutate


def _drop_metrics_path(prometheus: dict[str, Any]) -> None:
    for scrape in prometheus["scrape_configs"]:
        scrape.pop("metrics_path", None)


def _add_stale_job(prometheus: dict[str, Any]) -> None:
    prometheus["scrape_configs"].append({"job_name": "old", "static_configs": [{"targets": ["files:9104"]}]})


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_retarget("share", "share:9102"), "share:9103/metrics is not scraped", id="wrong port"),
        pytest.param(_retarget("auth", "auth-svc:9101"), "target auth-svc:9101/metrics", id="wrong host"),
        pytest.param(_drop_metrics_path, "gateway:9902/stats/prometheus is not scraped", id="default path"),
        pytest.param(_add_stale_job, "files:9104/metrics", id="stale target"),
    ],
)
def test_broken_prometheus_is_reported(
    real: Deployment, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    prometheus = unaliased(real.prometheus)
    mutate(prometheus)
    problems = check_prometheus(dataclasses.replace(real, prometheus=prometheus))
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("USER 10001:10001", "USER root", "non-root USER", id="root user"),
        pytest.param("USER 10001:10001", "", "non-root USER", id="no user"),
        pytest.param('VOLUME ["/data"]', "", "VOLUME /data", id="no volume"),
        pytest.param("-c constraints.txt .", ".", "pip install", id="unconstrained install"),
        pytest.param("--no-cache-dir", "", "pip install", id="pip cache kept"),
        pytest.param("FROM python:3.11-slim AS runtime", "FROM python:3.12-slim AS runtime", "3.12", id="base"),
        pytest.param("FLOWDOCK_LOG_FORMAT=json", "FLOWDOCK_DB_PASSWORD=hunter2", "FLOWDOCK_DB_PASSWORD", id="secret"),
        pytest.param(
            "FLOWDOCK_LOG_FORMAT=json",
            "FLOWDOCK_DB_URL=postgresql://u:p@h/db",
            "FLOWDOCK_DB_URL",
            id="secret in url",
        ),
        pytest.param("pyproject.toml constraints.txt ./", "pyproject.toml ./", "constraints.txt", id="no pins"),
        pytest.param("gen/python/flowdock", "gen/python/other", "gen/python/flowdock", id="no generated package"),
    ],
)
def test_broken_dockerfile_is_reported(real: Deployment, old: str, new: str, expected: str) -> None:
    assert old in real.dockerfile
    broken = dataclasses.replace(real, dockerfile=real.dockerfile.replace(old, new))
    problems = check_dockerfile(broken)
    assert any(expected in problem for problem in problems), problems


def _complete_tree(root: Path, real: Deployment) -> None:
    """A repo skeleton holding exactly what the deployment files reference."""
    files = (COMPOSE_NAME, PROMETHEUS_NAME, "deploy/clamd.conf", "Dockerfile", ".dockerignore", "pyproject.toml")
    for name in (*files, ROLES_SQL, ROLES_SCRIPT):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((real.repo / name).read_text())
    # Grafana's provisioning and dashboards, and the alert rules next to prometheus.yml: mounted as folders/files.
    for folder in ("deploy/grafana/provisioning", "deploy/grafana/dashboards"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "deploy/prometheus/alerts.yml").write_text((real.repo / "deploy/prometheus/alerts.yml").read_text())
    for _, sources in copy_sources(real.dockerfile):
        for source in sources:
            path = root / source
            if PurePosixPath(source).suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)
    for svc in _flowdock_services(real).values():
        (root / str(module_of(svc)) / "__main__.py").touch()


def test_file_checks_pass_on_complete_tree(real: Deployment, tmp_path: Path) -> None:
    _complete_tree(tmp_path, real)
    complete = load_deployment(tmp_path)
    for check in ("referenced_files", "dockerfile_sources", "service_modules", "prometheus"):
        assert CHECKS[check](complete) == [], check


def test_file_checks_fail_on_empty_tree(real: Deployment, tmp_path: Path) -> None:
    empty = dataclasses.replace(real, repo=tmp_path)
    assert any("Dockerfile" in problem for problem in check_referenced_files(empty))
    assert any("deploy/prometheus/prometheus.yml" in problem for problem in check_referenced_files(empty))
    assert any("'constraints.txt' does not exist" in problem for problem in check_dockerfile_sources(empty))
    assert any("auth_svc/__main__.py" in problem for problem in check_service_modules(empty))


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        pytest.param("share_svc/__main__.py", "share_svc/__main__.py", id="module main"),
        pytest.param("constraints.txt", "'constraints.txt' does not exist", id="constraints"),
        pytest.param("gateway", "'gateway' does not exist", id="package dir"),
    ],
)
def test_file_checks_catch_one_missing_file(real: Deployment, tmp_path: Path, missing: str, expected: str) -> None:
    _complete_tree(tmp_path, real)
    target = tmp_path / missing
    if target.is_dir():
        target.rename(tmp_path / f"{missing}.moved")
    else:
        target.unlink()
    deployment = load_deployment(tmp_path)
    problems = check_dockerfile_sources(deployment) + check_service_modules(deployment)
    assert any(expected in problem for problem in problems), problems


def test_dockerignore_excluding_a_copy_source_is_reported(real: Deployment, tmp_path: Path) -> None:
    _complete_tree(tmp_path, real)
    deployment = load_deployment(tmp_path)
    assert check_dockerfile_sources(deployment) == []
    broken = dataclasses.replace(deployment, dockerignore=[*deployment.dockerignore, "gateway"])
    assert any("excluded by .dockerignore" in problem for problem in check_dockerfile_sources(broken))


def test_module_not_copied_or_packaged_is_reported(real: Deployment, tmp_path: Path) -> None:
    _complete_tree(tmp_path, real)
    deployment = load_deployment(tmp_path)
    dockerfile = deployment.dockerfile.replace("COPY share_svc share_svc\n", "")
    problems = check_service_modules(dataclasses.replace(deployment, dockerfile=dockerfile))
    assert any("does not copy share_svc/" in problem for problem in problems), problems
    pyproject = unaliased(deployment.pyproject)
    pyproject["tool"]["setuptools"]["packages"]["find"]["include"] = ["auth_svc*"]
    problems = check_service_modules(dataclasses.replace(deployment, pyproject=pyproject))
    assert any("share_svc is not included" in problem for problem in problems), problems


def test_dockerignore_missing_entries_are_reported(real: Deployment) -> None:
    broken = dataclasses.replace(real, dockerignore=[p for p in real.dockerignore if p not in (".venv", ".git")])
    problems = check_dockerignore(broken)
    assert ".dockerignore: .venv is not excluded" in problems
    assert ".dockerignore: .git is not excluded" in problems


# --------------------------------------------------------------------------------------------------------
# Database least privilege, for real: deploy/postgres/init-roles.sh against the local PostgreSQL
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def service_roles() -> Iterator[tuple[str, Any]]:
    """init-roles.sh run as the postgres image runs it, with a cluster-unique prefix (roles are cluster-wide)."""
    import shutil
    import subprocess
    import uuid

    import psycopg

    from tests.support.mesh import PG_URL, REQUIRE_SERVERS, need_postgres

    need_postgres()
    if shutil.which("psql") is None:
        if REQUIRE_SERVERS:
            pytest.fail("psql is not installed (FLOWDOCK_REQUIRE_SERVERS=1 forbids skipping; .ci/run installs it)")
        pytest.skip("psql is not installed")
    prefix = f"fdroles_{uuid.uuid4().hex[:8]}"
    server = urlsplit(PG_URL)
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": server.hostname or "127.0.0.1",
        "PGPORT": str(server.port or 5432),
        "POSTGRES_USER": server.username or "postgres",
        "POSTGRES_DB": "postgres",
        "FLOWDOCK_DB_PREFIX": prefix,
        "FLOWDOCK_ROLES_SQL": str(REPO / ROLES_SQL),
        **{f"FLOWDOCK_DB_PASSWORD_{name.upper()}": f"pw-{name}" for name in DB_SERVICES},
    }
    try:
        result = subprocess.run(["sh", str(REPO / ROLES_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        yield prefix, psycopg
    finally:
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as admin:
            for name in DB_SERVICES:
                admin.execute(f'DROP DATABASE IF EXISTS "{prefix}_{name}" WITH (FORCE)')
                admin.execute(f'DROP ROLE IF EXISTS "{prefix}_{name}"')


def test_each_service_role_owns_only_its_database_and_is_no_superuser(service_roles: tuple[str, Any]) -> None:
    from tests.support.mesh import PG_URL

    prefix, psycopg = service_roles
    server = urlsplit(PG_URL)
    host = f"{server.hostname or '127.0.0.1'}:{server.port or 5432}"
    with psycopg.connect(f"{PG_URL}/postgres") as admin:
        for name in DB_SERVICES:
            role = f"{prefix}_{name}"
            flags = admin.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
                "FROM pg_roles WHERE rolname = %s",
                (role,),
            ).fetchone()
            assert flags == (False, False, False, False, False, True), (role, flags)
            owned = admin.execute(
                "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = %s)",
                (role,),
            ).fetchall()
            assert owned == [(role,)]
    for name in DB_SERVICES:
        role = f"{prefix}_{name}"
        # Its own database: it can connect and create its schema (what its migrations do).
        with psycopg.connect(f"postgresql://{role}:pw-{name}@{host}/{role}", autocommit=True) as own:
            own.execute("CREATE TABLE probe (x int)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                own.execute(f'CREATE DATABASE "{role}_extra"')
            for other in DB_SERVICES:
                if other == name:
                    continue
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    own.execute(f"ALTER DATABASE \"{prefix}_{other}\" SET work_mem = '64MB'")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    own.execute(f'DROP DATABASE "{prefix}_{other}"')
        for other in DB_SERVICES:
            if other == name:
                continue
            # Another service's database refuses the connection outright (CONNECT revoked from PUBLIC).
            with pytest.raises(psycopg.OperationalError, match="CONNECT privilege|permission denied"):
                psycopg.connect(f"postgresql://{role}:pw-{name}@{host}/{prefix}_{other}").close()
