"""`flowdock` entry point: one console script, subcommands with their own --help.

It lives in the runtime because it offers both sides: the server's commands (this package) and the user's client
(flowdock_cli, which imports no server code). `python -m flowdock_runtime` is the same command."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from flowdock_cli import account, files
from flowdock_runtime import doctor, operations, requestlog, supervisor


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
    supervisor.add_commands(sub)
    operations.add_commands(sub)
    doctor.add_commands(sub)
    requestlog.add_commands(sub)
    # After operations: `admin users` (the client's, over the API) joins the `admin` group created there.
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
