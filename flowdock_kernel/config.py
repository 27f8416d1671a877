"""Self-documenting configuration: one dataclass per service, each field a setting with its default and help.

Sources, highest first: environment (`FLOWDOCK_<FIELD>`), the TOML file named by `FLOWDOCK_CONFIG`, the default.
An invalid value stops the process with the key and the problem (see `ConfigError`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from flowdock_kernel.mesh import MeshTls, identity_of

ENV_PREFIX = "FLOWDOCK_"
SERVICE_PREFIXES = ("auth_", "storage_", "share_", "gateway_")

C = TypeVar("C", bound="CommonConfig")


class ConfigError(Exception):
    """A setting has a value the process cannot run with."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"invalid configuration {key}: {problem}")
        self.key = key
        self.problem = problem


def setting(default: Any, help: str, *, check: Callable[[Any], str | None] | None = None, secret: bool = False) -> Any:
    """Declare a setting: its default, a one-line description, and an optional check returning a problem.

    `secret`: a credential. It is left out of the config's repr (so of any log line or error showing the config)
    and an invalid value is never echoed; child processes still get it through `as_env`."""
    return dataclasses.field(
        default=default, repr=not secret, metadata={"help": help, "check": check, "secret": secret}
    )


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a TCP port between 0 and 65535 (0 = pick a free one)"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def db_url(value: Any) -> str | None:
    if value == "" or value.startswith(("postgresql://", "postgres://", "sqlite://")):
        return None
    return "must be empty (embedded SQLite), postgresql://user@host:port/name or sqlite://"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CommonConfig:
    """Settings every service reads."""

    data_dir: Path = setting(Path("flowdock-data"), "Folder for embedded databases, blobs, keys and run files.")
    db_url: str = setting(
        "",
        "Metadata database. Empty: SQLite files in data_dir. postgresql://user@host:port/NAME: each service uses "
        "its own database NAME_<service> (created if missing).",
        check=db_url,
    )
    listen_host: str = setting("127.0.0.1", "Address the gRPC and metrics servers bind to.")
    grpc_port: int = setting(0, "gRPC port of this service (0 = a free port, reported in ready_file).", check=port)
    metrics_port: int = setting(0, "Prometheus /metrics HTTP port (0 = a free port).", check=port)
    ready_file: str = setting("", "If set, the service writes its bound ports here as JSON once it is serving.")
    log_level: str = setting("info", "Log level.", check=one_of("debug", "info", "warning", "error"))
    log_format: str = setting("json", "Log line format.", check=one_of("json", "text"))
    max_message_bytes: int = setting(
        32 * 1024 * 1024,
        "Largest gRPC message a service sends or receives (must exceed storage_max_chunk_bytes plus framing).",
        check=positive,
    )
    shutdown_grace_seconds: float = setting(
        10.0, "On SIGTERM, how long in-flight calls may finish before they are cancelled.", check=non_negative
    )
    keepalive_seconds: float = setting(
        30.0,
        "How often idle internal HTTP/2 connections are pinged (service channels, Envoy's upstreams); servers accept "
        "pings from half this interval on (one policy for both ends: flowdock_kernel.channels.Keepalive).",
        check=positive,
    )
    auth_address: str = setting("", "host:port of auth_svc (signing keys for token checks).")
    storage_address: str = setting("", "host:port of storage_svc (admin calls from auth_svc).")
    share_address: str = setting("", "host:port of share_svc (access decisions for storage_svc).")
    jwt_issuer: str = setting("flowdock", "`iss` of access tokens.")
    jwt_audience: str = setting("flowdock", "`aud` of access tokens.")
    jwks_refresh_seconds: float = setting(
        60.0, "How long a service caches auth_svc's signing keys before fetching them again.", check=positive
    )
    mesh_tls: bool = setting(
        True,
        "Mutual TLS between services and from the gateway (docs/security.md). Off only for a single service run "
        "on its own (tests, a debugger): every caller is then trusted.",
    )
    mesh_ca_file: str = setting("", "Mesh CA certificate (PEM). Empty: data_dir/mesh/ca.pem.")
    mesh_cert_file: str = setting(
        "", "This service's mesh certificate (PEM, SAN = <service>_svc). Empty: data_dir/mesh/<service>_svc.pem."
    )
    mesh_key_file: str = setting("", "This service's mesh private key (PEM). Empty: data_dir/mesh/<service>_svc.key.")

    def mesh(self, service: str) -> MeshTls | None:
        """The service's mesh identity files, or None in plaintext mode."""
        if not self.mesh_tls:
            return None
        default = MeshTls.in_folder(self.data_dir / "mesh", identity_of(service))
        return MeshTls(
            Path(self.mesh_ca_file) if self.mesh_ca_file else default.ca_file,
            Path(self.mesh_cert_file) if self.mesh_cert_file else default.cert_file,
            Path(self.mesh_key_file) if self.mesh_key_file else default.key_file,
        )


def _convert(key: str, raw: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin in (types.UnionType, typing.Union):
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw).strip().replace("_", ""))
        if typ is float:
            return float(raw)
        if typ is Path:
            return Path(str(raw)).expanduser()
        if typ is str:
            if not isinstance(raw, str):
                raise ValueError
            return raw
    except ValueError:
        pass
    else:
        raise ConfigError(key, f"unsupported setting type {typ!r}")
    raise ConfigError(key, f"{raw!r} is not a valid {getattr(typ, '__name__', typ)}")


def fields(cls: type[CommonConfig]) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        yield f, hints[f.name]


def load(cls: type[C], env: Mapping[str, str] | None = None) -> C:
    """Build `cls` from the environment and the optional TOML file; raise ConfigError naming the bad key."""
    env = os.environ if env is None else env
    file_values: dict[str, Any] = {}
    config_path = env.get(ENV_PREFIX + "CONFIG", "")
    if config_path:
        try:
            file_values = tomllib.loads(Path(config_path).read_text())
        except OSError as exc:
            raise ConfigError(ENV_PREFIX + "CONFIG", f"cannot read {config_path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(ENV_PREFIX + "CONFIG", f"{config_path} is not valid TOML: {exc}") from exc
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for f, typ in fields(cls):
        env_key = ENV_PREFIX + f.name.upper()
        if env_key in env:
            key, raw = env_key, env[env_key]
        elif f.name in file_values:
            key, raw = f"{config_path}: {f.name}", file_values[f.name]
        else:
            continue
        value = _convert(key, raw, typ)
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(key, f"{'(the value given)' if f.metadata.get('secret') else repr(raw)} {problem}")
        values[f.name] = value
    # A shared file holds every service's keys: each service rejects unknown keys of its own prefix and
    # unknown keys with no service prefix at all.
    prefix = getattr(cls, "key_prefix", "")
    unknown = sorted(
        k for k in set(file_values) - known if (prefix and k.startswith(prefix)) or not k.startswith(SERVICE_PREFIXES)
    )
    if unknown:
        raise ConfigError(f"{config_path}: {unknown[0]}", "unknown setting (see docs/configuration.md)")
    return cls(**values)


def as_env(config: CommonConfig) -> dict[str, str]:
    """The environment that reproduces `config` in a child process."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[ENV_PREFIX + f.name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def markdown_table(classes: Mapping[str, type[CommonConfig]]) -> str:
    """The configuration reference (docs/configuration.md is generated from this)."""
    lines: list[str] = []
    seen: set[str] = set()
    for title, cls in classes.items():
        rows = [(f, t) for f, t in fields(cls) if f.name not in seen]
        if not rows:
            continue
        lines += [f"## {title}", "", "| env var | TOML key | default | meaning |", "|---|---|---|---|"]
        for f, _ in rows:
            seen.add(f.name)
            default = f.default
            shown = f"`{default}`" if default != "" else "(empty)"
            lines.append(f"| `{ENV_PREFIX}{f.name.upper()}` | `{f.name}` | {shown} | {f.metadata['help']} |")
        lines.append("")
    return "\n".join(lines)
