"""docker-compose.yml and the other deployment files, read as Compose reads them (interpolation, both syntaxes
of each key): shared by the static checks (tests/deploy/test_compose.py) and the live ones (test_compose_live.py)."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_NAME = "docker-compose.yml"
PROMETHEUS_NAME = "deploy/prometheus/prometheus.yml"
# The contract of the stack (see the deployment brief): compose service -> module, gRPC port, metrics port.
GRPC_SERVICES: dict[str, tuple[str, int, int]] = {
    "auth": ("auth_svc", 50051, 9101),
    "storage": ("storage_svc", 50052, 9102),
    "share": ("share_svc", 50053, 9103),
}
# Services without a gRPC contract (HTTP behind the gateway, issue 20's WebDAV): module, port (FLOWDOCK_GRPC_PORT, the
# one port setting every service reads), metrics port. They have their own database role like the gRPC services.
HTTP_SERVICES: dict[str, tuple[str, int, int]] = {
    "dav": ("dav_svc", 50054, 9104),
}
# Every service with a database of its own (a role and a password each).
DB_SERVICES: dict[str, tuple[str, int, int]] = {**GRPC_SERVICES, **HTTP_SERVICES}
# Where each FlowDock container finds its mesh identity (its own subpath of the `mesh` volume).
MESH_MOUNT = "/mesh"


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style interpolation.

    Supports ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``$$``.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("plain"):
            return env.get(match.group("plain"), "")
        braced = _BRACED.match(match.group("braced"))
        if braced is None:
            raise ValueError(f"invalid interpolation {match.group(0)!r}")
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg") or ""
        value = env.get(name)
        is_set = value is not None and (value != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return value if is_set and value is not None else interpolate(arg, env)
        if op in (":?", "?"):
            if not is_set or value is None:
                raise ValueError(f"required variable {name} is not set: {arg}")
            return value
        if op in (":+", "+"):
            return interpolate(arg, env) if is_set else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def unaliased(node: Any) -> Any:
    """A deep copy that does not preserve YAML aliases, so a mutation touches exactly one service."""
    return json.loads(json.dumps(node))


@dataclasses.dataclass(frozen=True)
class Deployment:
    repo: Path
    compose: dict[str, Any]
    prometheus: dict[str, Any]
    dockerfile: str
    dockerignore: list[str]
    pyproject: dict[str, Any]


def load_deployment(repo: Path = REPO, env: Mapping[str, str] | None = None) -> Deployment:
    compose = yaml.safe_load((repo / COMPOSE_NAME).read_text())
    ignore_file = repo / ".dockerignore"
    ignore_lines = ignore_file.read_text().splitlines() if ignore_file.exists() else []
    return Deployment(
        repo=repo,
        compose=unaliased(_interpolate_tree(compose, env or {})),
        prometheus=yaml.safe_load((repo / PROMETHEUS_NAME).read_text()),
        dockerfile=(repo / "Dockerfile").read_text(),
        dockerignore=[line.strip() for line in ignore_lines if line.strip() and not line.startswith("#")],
        pyproject=tomllib.loads((repo / "pyproject.toml").read_text()),
    )


def services(d: Deployment) -> dict[str, dict[str, Any]]:
    found = d.compose.get("services") if isinstance(d.compose, dict) else None
    return found if isinstance(found, dict) else {}


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}
