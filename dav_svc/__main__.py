"""`python -m dav_svc serve|migrate` (the same command line as the gRPC services')."""

from __future__ import annotations

import argparse
import sys

from dav_svc import bootstrap
from dav_svc.config import DavConfig


def main(argv: list[str] | None = None) -> None:
    from flowdock_kernel import config, logs
    from flowdock_kernel.datadir import make_private
    from flowdock_kernel.mesh import MeshError
    from flowdock_kernel.server import StartupError

    parser = argparse.ArgumentParser(prog="python -m dav_svc", description="FlowDock WebDAV service.")
    parser.add_argument(
        "command", choices=["serve", "migrate"], help="serve: run the WebDAV server; migrate: apply DB migrations"
    )
    args = parser.parse_args(argv)
    try:
        cfg = config.load(DavConfig)
        make_private(cfg.data_dir)
        logs.setup(bootstrap.NAME, cfg.log_level, cfg.log_format)
        bootstrap.migrate(cfg)
        if args.command == "serve":
            bootstrap.serve(cfg)
    except (StartupError, config.ConfigError, MeshError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
