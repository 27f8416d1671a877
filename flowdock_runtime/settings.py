"""Where a server's data and configuration are: the options and resolution `flowdock up` and every operator command
share (--data-dir, --db, --config over FLOWDOCK_* and the TOML file).

Resolving reads configuration only: it binds no port and contacts nothing, so an operator command runs the same
whether the system is up or not.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

#: The services a server runs, in the order they are migrated and started.
SERVICES = ("auth", "share", "storage")
#: Services without gRPC contracts of their own (HTTP behind the gateway): started, health-checked and migrated
#: like the others, but not part of backups or `doctor`'s database checks (their state is soft: WebDAV locks and
#: dead properties).
HTTP_SERVICES = ("dav",)
#: Everything `flowdock up` starts, in order.
RUNNING = (*SERVICES, *HTTP_SERVICES)


class SetupError(Exception):
    """The runtime cannot do what was asked with this configuration; the message says why."""


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """--data-dir, --db and --config, as every server-side command takes them."""
    parser.add_argument("--data-dir", help="data folder (default: $FLOWDOCK_DATA_DIR or ./flowdock-data)")
    parser.add_argument("--db", help="database URL, e.g. postgresql://user@127.0.0.1:5432/flowdock (default: SQLite)")
    parser.add_argument("--config", help="TOML config file (see docs/configuration.md)")


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """This process's environment with the command line's --config, --data-dir and --db applied."""
    env = dict(os.environ)
    if getattr(args, "config", None):
        env["FLOWDOCK_CONFIG"] = str(Path(args.config).resolve())
    if getattr(args, "data_dir", None):
        env["FLOWDOCK_DATA_DIR"] = args.data_dir
    if getattr(args, "db", None):
        env["FLOWDOCK_DB_URL"] = args.db
    return env


@dataclass(frozen=True)
class ServerSettings:
    """The data folder and database every service of this server uses, and the environment they were read from."""

    data_dir: Path
    db_url: str
    env: dict[str, str]

    def command_env(self) -> dict[str, str]:
        """The environment for a service's own command (`python -m <svc> migrate`, `storage_svc.keys`, ...)."""
        return {**self.env, "FLOWDOCK_DATA_DIR": str(self.data_dir), "FLOWDOCK_DB_URL": self.db_url}


def resolve(args: argparse.Namespace) -> ServerSettings:
    """The settings shared by every service; SetupError naming the key when one is invalid."""
    from flowdock_kernel.config import CommonConfig, ConfigError, load

    env = server_env(args)
    try:
        common = load(CommonConfig, env)
    except ConfigError as exc:
        raise SetupError(str(exc)) from None
    return ServerSettings(data_dir=common.data_dir.resolve(), db_url=common.db_url, env=env)
