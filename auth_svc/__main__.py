"""`python -m auth_svc serve|migrate`."""

from __future__ import annotations

import argparse

from auth_svc import bootstrap
from auth_svc.config import AuthConfig
from flowdock_kernel import config, logs, server


async def _serve() -> None:
    cfg = config.load(AuthConfig)
    logs.setup(bootstrap.NAME, cfg.log_level, cfg.log_format)
    bootstrap.migrate(cfg)
    await server.serve(cfg, await bootstrap.build(cfg))


async def _migrate() -> None:
    cfg = config.load(AuthConfig)
    logs.setup(bootstrap.NAME, cfg.log_level, cfg.log_format)
    bootstrap.migrate(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m auth_svc", description="FlowDock accounts and tokens service.")
    parser.add_argument("command", choices=["serve", "migrate"], help="serve: run the gRPC service; migrate: apply DB migrations")
    args = parser.parse_args()
    server.run(_serve if args.command == "serve" else _migrate)


if __name__ == "__main__":
    main()
