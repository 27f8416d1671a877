"""`flowdock` entry point: one console script, subcommands with their own --help."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from flowdock_cli import account, admin, files, storage_ops, up


def _version(_args: argparse.Namespace) -> int:
    try:
        version = metadata.version("flowdock")
    except metadata.PackageNotFoundError:
        version = "unknown"
    print(f"flowdock {version}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdock", description="FlowDock: self-hosted file storage and sharing (gRPC, grpc-web and REST)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up.add_commands(sub)
    admin.add_commands(sub)
    storage_ops.add_commands(sub)
    account.add_commands(sub)
    files.add_commands(sub)
    version = sub.add_parser("version", help="print the version", description="Print the FlowDock version.")
    version.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
